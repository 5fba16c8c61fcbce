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
    return grimp.build_graph(*LAYERS, exclude_type_checking_imports=True, cache_dir=None)


def test_graph_sees_lazy_imports(graph: grimp.ImportGraph):
    # the training loop imports its MLflow log inside a function: the graph must hold that edge
    assert graph.direct_import_exists(
        importer="active_learning.training.loop", imported="active_learning.training.mlflow_log"
    )


def test_rooms_never_name_the_composition_package():
    # not even for type hints: a room states what it reads from the settings as a protocol
    graph = grimp.build_graph(*LAYERS, exclude_type_checking_imports=False, cache_dir=None)
    rooms = LAYERS[2:]
    named = sorted(
        f"{module} -> {imported}"
        for module in graph.modules
        if module.split(".")[0] in rooms
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.split(".")[0] in ("scraiber", "benchmarks")
    )
    assert not named, "\n".join(named)


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
