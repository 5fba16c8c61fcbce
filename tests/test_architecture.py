"""The rooms import downward only, and no module reaches itself through imports (grimp's import graph).

Layers, top to bottom: benchmarks and simulated experts, the composition package, then the four
rooms of the design card. Function-local imports count too (a lazy import is still a dependency);
imports under ``TYPE_CHECKING`` do not.
"""

from __future__ import annotations

import grimp
import pytest

LAYERS = ("benchmarks", "scraiber", "tracking_analysis", "active_learning", "ml_backend", "label_config")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*LAYERS, exclude_type_checking_imports=True)


def test_graph_sees_lazy_imports(graph: grimp.ImportGraph):
    # audit.py imports the settings inside its command function: the graph must hold that edge
    assert graph.direct_import_exists(importer="active_learning.audit", imported="ml_backend.settings")


def test_no_room_imports_a_room_above_it(graph: grimp.ImportGraph):
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS)
    described = sorted(
        f"{d.importer} -> {d.imported}, e.g. {' -> '.join((min(r.heads), *r.middle, min(r.tails)))}"
        for d in illegal
        for r in sorted(d.routes, key=lambda r: len(r.middle))[:1]
    )
    assert not described, "\n".join(described)


def test_no_import_cycle(graph: grimp.ImportGraph):
    cycles = sorted(
        f"{module} -> {imported} -> ... -> {module}"
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(importer=imported, imported=module)
    )
    assert not cycles, "\n".join(cycles)
