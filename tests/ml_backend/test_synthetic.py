"""Tests of the synthetic BSE thin-section generator (ml_backend.synthetic)."""

from __future__ import annotations

import json

import click
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

from label_config.catalogue import load_catalogue
from ml_backend.bse_io import read_bse
from ml_backend.synthetic import CRYSTAL_COLUMNS, SynthConfig, SyntheticSection, generate_section, write_section
from scraiber.cli import main

CAT = load_catalogue()
EPOXY, GROUNDMASS, PLAG, CPX, OLIVINE, OXIDE = (
    CAT.index_of(n) for n in ("Epoxy", "Groundmass", "Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide")
)
NO_CRACKS = {"olivine_cracks_per_mm": (0.0, 0.0), "other_cracks_per_mm": (0.0, 0.0), "section_cracks": (0.0, 0.0)}


def _olivine_config(weights: tuple[float, float, float]) -> SynthConfig:
    return SynthConfig.ideal(
        olivine_zoning_weights=weights,
        pixel_size_um=(1.0, 1.0),
        olivine_fraction=(0.3, 0.3),
        olivine_size_um=(50.0, 90.0),
        zoning_width_um=(15.0, 15.0),
        oxide_inclusion_probability=0.0,
        **NO_CRACKS,
    )


def test_same_seed_gives_identical_arrays():
    a, b = generate_section(128, 11), generate_section(128, 11)
    for name in ("image", "classes", "instances", "eta"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.crystals, b.crystals)
    assert a.pixel_size_um == b.pixel_size_um and a.seed == b.seed == 11


def test_different_seeds_differ():
    a, b = generate_section(128, 1), generate_section(128, 2)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.classes, b.classes)


def test_dtype_and_shape_contract():
    config = SynthConfig(pixel_size_um=(1.2, 1.6))
    s = generate_section((96, 160), 3, config)
    assert isinstance(s, SyntheticSection)
    assert s.image.shape == s.classes.shape == s.instances.shape == (96, 160)
    assert (s.image.dtype, s.classes.dtype, s.instances.dtype) == (np.uint16, np.uint8, np.int32)
    assert 1.2 <= s.pixel_size_um <= 1.6
    assert tuple(s.crystals.columns) == CRYSTAL_COLUMNS
    assert s.class_names == CAT.names and s.config == config


def test_class_mask_holds_only_catalogue_indices():
    s = generate_section(192, 4)
    assert set(np.unique(s.classes)) <= set(range(len(CAT)))
    assert set(np.unique(s.classes)) >= {GROUNDMASS, PLAG, OLIVINE}


@pytest.mark.parametrize(("weights", "zoning"), [((1.0, 0.0, 0.0), "normal"), ((0.0, 1.0, 0.0), "reverse")])
def test_olivine_zoning_brightness(weights, zoning):
    s = generate_section(256, 21, _olivine_config(weights))
    olivines = s.crystals[(s.crystals.class_index == OLIVINE) & ~s.crystals.touches_border & (s.crystals.area_px > 400)]
    assert len(olivines) >= 1
    for row in olivines.itertuples():
        assert row.zoning == zoning
        assert (row.core_composition > row.rim_composition) == (zoning == "normal")
        depth = ndimage.distance_transform_edt(s.instances == row.id)
        rim = s.image[depth == 1].astype(float).mean()
        core = s.image[depth == depth.max()].astype(float).mean()
        assert (rim > core) == (zoning == "normal"), (row.id, rim, core)
        assert abs(rim - core) > 100  # Fo contrast of several mol % is well above rounding


def test_unzoned_olivine_is_flat_in_ideal_rendering():
    s = generate_section(256, 21, _olivine_config((0.0, 0.0, 1.0)))
    olivines = s.crystals[s.crystals.class_index == OLIVINE]
    assert len(olivines) >= 1 and set(olivines.zoning) == {"unzoned"}
    for row in olivines.itertuples():
        values = s.image[(s.instances == row.id) & (s.classes == OLIVINE)]
        assert values.max() - values.min() <= 1
        assert row.core_composition == row.rim_composition


def test_phase_brightness_follows_eta_order_without_noise():
    config = SynthConfig.ideal(vesicle_fraction=(0.08, 0.1), oxide_fraction=(0.02, 0.03), **NO_CRACKS)
    s = generate_section(256, 8, config)
    mean = {k: s.image[s.classes == k].astype(float).mean() for k in (EPOXY, GROUNDMASS, PLAG, CPX, OLIVINE, OXIDE)}
    assert min(mean, key=mean.get) == EPOXY
    assert max(mean, key=mean.get) == OXIDE
    assert mean[PLAG] < mean[OLIVINE] and mean[PLAG] < mean[CPX]
    # ideal rendering is affine in eta, with the catalogue's eta for unzoned phases
    gain, offset = s.params["gain_dn"], s.params["offset_dn"]
    assert mean[EPOXY] == pytest.approx(CAT.classes[EPOXY].eta * gain + offset, abs=1.0)
    assert mean[OXIDE] == pytest.approx(CAT.classes[OXIDE].eta * gain + offset, abs=1.0)


def test_groundmass_has_catalogue_mean_but_microlite_texture():
    config = SynthConfig.ideal(**NO_CRACKS)
    s = generate_section(256, 5, config)
    gm = s.eta[s.classes == GROUNDMASS]
    assert gm.mean() == pytest.approx(CAT.classes[GROUNDMASS].eta, rel=0.02)
    cpx_ids = s.crystals.id[s.crystals.class_index == CPX]
    assert len(cpx_ids) >= 1
    inner_std = [s.eta[s.instances == i].std() for i in cpx_ids]
    assert gm.std() > 10 * max(inner_std)
    assert (s.instances[s.classes == GROUNDMASS] == 0).all()  # microlites are not instances


def test_crystal_table_matches_instance_map():
    s = generate_section(256, 9)
    table = s.crystals
    ids = np.unique(s.instances[s.instances > 0])
    np.testing.assert_array_equal(table.id.to_numpy(), np.arange(1, len(table) + 1))
    np.testing.assert_array_equal(ids, table.id.to_numpy())
    areas = np.bincount(s.instances.ravel(), minlength=len(table) + 1)[1:]
    np.testing.assert_array_equal(table.area_px.to_numpy(), areas)
    rows, cols = np.nonzero(s.instances == table.id.iloc[0])
    assert table.centroid_row.iloc[0] == pytest.approx(rows.mean())
    assert table.centroid_col.iloc[0] == pytest.approx(cols.mean())
    np.testing.assert_allclose(table.equivalent_diameter_um, np.sqrt(4 * areas / np.pi) * s.pixel_size_um)
    for row in table.itertuples():
        assert row.class_name == CAT.names[row.class_index]
        inside = s.classes[s.instances == row.id]
        assert np.bincount(inside).argmax() == row.class_index
        assert row.zoning in ("normal", "reverse", "unzoned")
        assert row.population in ("phenocryst", "microphenocryst", "microlite")
        if row.class_index in (OLIVINE, PLAG):
            assert row.composition_variable == ("Fo" if row.class_index == OLIVINE else "An")
            assert CAT.classes[row.class_index].solid_solution.range[0] <= row.rim_composition
        else:
            assert np.isnan(row.core_composition) and np.isnan(row.rim_composition)


def test_crack_keeps_single_instance_id():
    config = SynthConfig.ideal(
        olivine_cracks_per_mm=(40.0, 40.0), crack_width_um=(3.0, 3.0), oxide_inclusion_probability=0.0,
        olivine_fraction=(0.2, 0.2), olivine_size_um=(150.0, 250.0),
    )  # fmt: skip
    s = generate_section(256, 13, config)
    cracked = 0
    for row in s.crystals[s.crystals.class_index == OLIVINE].itertuples():
        region = s.instances == row.id
        if not (s.classes[region] == EPOXY).any():
            continue
        _, n_region = ndimage.label(region)
        _, n_mineral = ndimage.label(region & (s.classes == OLIVINE))
        assert n_region == 1
        cracked += n_mineral >= 2  # the crack cuts the crystal's mineral pixels apart, not its id
    assert cracked >= 1


def test_write_section_round_trip(tmp_path):
    s = generate_section(128, 6)
    paths = write_section(s, tmp_path / "out", "field_x")
    assert set(paths) == {"image", "classes", "instances", "crystals", "metadata"}
    bse = read_bse(paths["image"])
    assert bse.pixel_size_source == "fei"
    assert bse.pixel_size_um == pytest.approx(s.pixel_size_um, rel=1e-9)
    np.testing.assert_array_equal(bse.pixels, s.image)
    assert bse.pixels.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(Image.open(paths["classes"])), s.classes)
    np.testing.assert_array_equal(tifffile.imread(paths["instances"]), s.instances)
    table = pd.read_csv(paths["crystals"])
    assert list(table.columns) == list(CRYSTAL_COLUMNS)
    np.testing.assert_array_equal(table.area_px, s.crystals.area_px)
    meta = json.loads(paths["metadata"].read_text())
    assert (meta["seed"], meta["size"], meta["class_names"]) == (6, [128, 128], CAT.names)
    assert meta["pixel_size_um"] == s.pixel_size_um
    assert SynthConfig.from_dict(meta["config"]) == s.config


def test_config_from_file_and_bad_keys(tmp_path):
    toml = tmp_path / "synth.toml"
    toml.write_text("pixel_size_um = [0.5, 0.5]\nnoise = false\n")
    config = SynthConfig.from_file(toml)
    assert config.pixel_size_um == (0.5, 0.5) and config.noise is False
    (tmp_path / "bad.json").write_text('{"pixel_size": [1, 2]}')
    with pytest.raises(ValueError, match="unknown synthetic config key.*pixel_size_um"):
        SynthConfig.from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="low <= high"):
        SynthConfig(gain_dn=(2.0, 1.0))
    with pytest.raises(ValueError, match="size must be between"):
        generate_section(8, 0)


def test_cli_writes_sections(tmp_path):
    assert "synth" in main.list_commands(click.Context(main))  # registered as an entry point
    result = CliRunner().invoke(
        main, ["synth", "--out", str(tmp_path / "d"), "--n", "2", "--size", "64", "--seed", "4"]
    )
    assert result.exit_code == 0, result.output
    for k in (0, 1):
        for suffix in (".tif", "_classes.png", "_instances.tif", "_crystals.csv", ".json"):
            assert (tmp_path / "d" / f"field_{k:03d}{suffix}").is_file()
    second = generate_section(64, 5)
    np.testing.assert_array_equal(read_bse(tmp_path / "d" / "field_001.tif").pixels, second.image)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "8"], "scraiber: error: --size must be between 32 and 16384 px, got 8"),
        (["--n", "0"], "scraiber: error: --n must be at least 1, got 0"),
        (["--out", "UNDER_FILE"], "scraiber: error: cannot create output folder"),
    ],
)
def test_cli_bad_arguments(tmp_path, args, message):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    args = [str(blocker / "sub") if a == "UNDER_FILE" else a for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "ok")]
    result = CliRunner().invoke(main, ["synth", *args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not list(tmp_path.glob("**/field_*"))


def test_cli_config_file_overrides_ranges(tmp_path):
    config = tmp_path / "synth.json"
    config.write_text('{"pixel_size_um": [0.8, 0.8], "noise": false}')
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path), "--size", "48", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert read_bse(tmp_path / "field_000.tif").pixel_size_um == pytest.approx(0.8)
    assert json.loads((tmp_path / "field_000.json").read_text())["config"]["noise"] is False
