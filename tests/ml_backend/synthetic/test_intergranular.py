"""Tests of the ``intergranular`` generator family (ml_backend.synthetic.families.intergranular)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from label_config.catalogue import load_catalogue
from ml_backend.synthetic import CRYSTAL_COLUMNS, SyntheticSection
from ml_backend.synthetic.families import generate_field
from ml_backend.synthetic.families.intergranular import generate
from ml_backend.synthetic.families.intergranular.preparation import pluck
from ml_backend.synthetic.scene import role_indices

CAT = load_catalogue()
PHASES = ("Epoxy", "Groundmass", "Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide")
EPOXY, GROUNDMASS, PLAG, CPX, OLIVINE, OXIDE = (CAT.index_of(name) for name in PHASES)
SEEDS = range(8)


@pytest.fixture(scope="module")
def fields() -> list[SyntheticSection]:
    return [generate(384, seed, CAT) for seed in SEEDS]


def _contacts(instances: np.ndarray) -> tuple[int, int]:
    """(crystal-crystal, crystal-any) counts of 4-neighbour pixel pairs across a crystal's edge."""
    touching = edges = 0
    for a, b in ((instances[:, 1:], instances[:, :-1]), (instances[1:], instances[:-1])):
        differ = a != b
        both = differ & (a > 0) & (b > 0)
        touching += int(both.sum())
        edges += int((differ & ((a > 0) | (b > 0))).sum())
    return touching, edges


def test_same_seed_gives_identical_arrays():
    a, b = generate(96, 5), generate(96, 5)
    for name in ("image", "classes", "instances", "eta"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.crystals, b.crystals)
    assert a.params == b.params and a.pixel_size_um == b.pixel_size_um and a.seed == b.seed == 5


def test_different_seeds_differ():
    a, b = generate(96, 1), generate(96, 2)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.classes, b.classes)


def test_dtype_and_shape_contract():
    s = generate((80, 120), 3, CAT)
    assert isinstance(s, SyntheticSection)
    assert s.image.shape == s.classes.shape == s.instances.shape == s.eta.shape == (80, 120)
    assert (s.image.dtype, s.classes.dtype, s.instances.dtype, s.eta.dtype) == (
        np.uint16,
        np.uint8,
        np.int32,
        np.float32,
    )
    assert 1.0 <= s.pixel_size_um <= 5.0
    assert tuple(s.crystals.columns) == CRYSTAL_COLUMNS
    assert s.class_names == CAT.names and s.config is None
    assert s.params["family"] == "intergranular" and s.params["pixel_size_um"] == s.pixel_size_um
    json.dumps(s.params)  # every drawn parameter is JSON-able


def test_registered_in_family_registry():
    a, b = generate_field("intergranular", 64, 9), generate(64, 9)
    np.testing.assert_array_equal(a.image, b.image)


def test_all_six_phases_appear_over_a_few_seeds(fields):
    seen = set().union(*(np.unique(s.classes).tolist() for s in fields))
    assert seen == {EPOXY, GROUNDMASS, PLAG, CPX, OLIVINE, OXIDE}


def test_instance_ids_agree_with_crystal_table(fields):
    for s in fields:
        table = s.crystals
        n = len(table)
        np.testing.assert_array_equal(table["id"].to_numpy(), np.arange(1, n + 1))
        area = np.bincount(s.instances.ravel(), minlength=n + 1)
        assert len(area) == n + 1
        np.testing.assert_array_equal(area[1:], table["area_px"].to_numpy())
        crystal = s.instances > 0
        # a crystal pixel carries its crystal's class; matrix and epoxy carry no id
        np.testing.assert_array_equal(s.classes[crystal], table["class_index"].to_numpy()[s.instances[crystal] - 1])
        assert not crystal[(s.classes == GROUNDMASS) | (s.classes == EPOXY)].any()
        assert crystal[~np.isin(s.classes, (GROUNDMASS, EPOXY))].all()
        hosts = table["host_id"].to_numpy()
        assert ((hosts >= 0) & (hosts <= n)).all()
        assert (table.loc[hosts > 0, "class_index"] == PLAG).all()  # chadacrysts in oikocrysts
        assert (table.loc[table["host_id"] > 0, "host_id"].map(table.set_index("id")["class_index"]) == CPX).all()


def test_crystals_touch(fields):
    touching, edges = map(sum, zip(*(_contacts(s.instances) for s in fields)))
    assert edges > 0 and touching / edges > 0.3  # porphyritic family on the same seeds: 0.06
    densest = max(fields, key=lambda s: s.params["fabric"]["crystal_cover"])
    t, e = _contacts(densest.instances)
    assert t / e > 0.4


def test_plucking_turns_crystal_pixels_into_epoxy():
    s = generate(192, 2, CAT)
    classes, instances, eta = s.classes.copy(), s.instances.copy(), s.eta.copy()
    epoxy_eta = CAT.classes[EPOXY].eta
    realised = pluck(classes, instances, eta, role_indices(CAT), epoxy_eta, 0.5, np.random.default_rng(0))
    holes = (classes == EPOXY) & (s.classes != EPOXY)
    assert realised["plucked_crystals"] > 0 and realised["plucked_px"] == int(holes.sum()) > 0
    assert (s.instances[holes] > 0).all()  # every hole was a crystal
    assert (instances[holes] == 0).all() and (eta[holes] == np.float32(epoxy_eta)).all()
    np.testing.assert_array_equal(classes[~holes], s.classes[~holes])
    np.testing.assert_array_equal(instances[~holes], s.instances[~holes])
    whole = set(np.unique(s.instances[holes])) - set(np.unique(instances))
    assert 0 < len(whole) <= realised["plucked_whole"]


def test_generated_epoxy_is_exactly_the_plucked_pixels(fields):
    for s in fields:
        assert int((s.classes == EPOXY).sum()) == s.params["preparation"]["plucked_px"]
    assert sum(s.params["preparation"]["plucked_px"] for s in fields) > 0


def test_epoxy_darkest_and_oxide_brightest_per_field(fields):
    for s in fields:
        means = {c: float(s.eta[s.classes == c].mean()) for c in np.unique(s.classes)}
        others = [m for c, m in means.items() if c not in (EPOXY, OXIDE)]
        if EPOXY in means:
            assert means[EPOXY] < min(others)
        if OXIDE in means:
            assert means[OXIDE] > max(others)


def test_plagioclase_is_normally_zoned(fields):
    table = pd.concat([s.crystals for s in fields])
    plag = table[table["class_index"] == PLAG]
    zoned = plag[plag["zoning"] == "normal"]
    assert len(zoned) > 0.5 * len(plag) > 0
    assert (zoned["core_composition"] >= zoned["rim_composition"]).all()
    assert set(plag["composition_variable"]) == {"An"}


@pytest.mark.parametrize("size", [0, 31, 16385, (64,), (64, 64, 3), 64.0, "64", (64, 16.5)])
def test_bad_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        generate(size, 0)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", None, True])
def test_bad_seed_raises(seed):
    with pytest.raises(ValueError, match="seed"):
        generate(64, seed)
