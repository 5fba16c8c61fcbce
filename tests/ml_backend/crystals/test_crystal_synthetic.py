"""Recovery of the synthetic generator's truth: instances, sizes, olivine zoning and Fo calibration.

Measured values (this test's seeds; README "Crystals"): matched-instance F1 0.992 / 0.983 /
0.960 (mean 0.978) at IoU >= 0.5; ECD error median 0.0 %, 90th percentile 0.3 %; olivine
zoning 43 / 43 correct on resolved crystals (1 unresolved); Fo calibration on 15 held-out
points: median |error| 0.45 mol %, max 2.35, 14 / 15 inside their 95 % prediction interval
(half-width about 2 mol %), fitted slope 0.92 and 0.98 x the catalogue's; core Fo of 15
unzoned crystals: median |error| 0.70 mol %. The asserts leave a margin below these figures.
Each test takes 2-5 s here (10-20 s when other jobs load the 2 cores).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from label_config.catalogue import load_catalogue
from ml_backend.crystals import CrystalConfig, ProbePoints, analyse_crystals, label_crystals
from ml_backend.crystals.calibration import calibrate, sample_levels
from ml_backend.crystals.evaluate import match_instances
from ml_backend.normalise import percentile_range
from ml_backend.synthetic import SynthConfig, generate_section

CAT = load_catalogue()
OLIVINE = CAT.index_of("Olivine")
MIN_AREA = CrystalConfig().min_area_px
# olivine-rich, mostly unzoned (uniform, known Fo over a wide range), realistic noise and blur, no shading
FO_SECTIONS = SynthConfig(
    olivine_fraction=(0.25, 0.25), olivine_size_um=(100.0, 300.0), pixel_size_um=(1.5, 1.5),
    olivine_zoning_weights=(0.2, 0.1, 0.7), olivine_fo_unzoned=(65.0, 92.0), shading=False,
)  # fmt: skip


def test_split_quality_and_size_recovery():
    f1, errors = [], []
    for seed in (10, 11, 12):
        section = generate_section(1024, seed)
        inst = label_crystals(section.classes, CAT)
        match = match_instances(inst.labels, section.instances, 0.5, MIN_AREA)
        f1.append(match.f1)
        area = np.bincount(inst.labels.ravel())
        found = np.sqrt(4 * area[match.pairs[:, 0]] / np.pi)
        true = (
            section.crystals.set_index("id").loc[match.pairs[:, 1], "equivalent_diameter_um"].to_numpy()
            / section.pixel_size_um
        )
        errors.append((found / true - 1)[true >= 10])
    errors = np.abs(np.concatenate(errors))
    assert min(f1) >= 0.93 and np.mean(f1) >= 0.95
    assert np.median(errors) <= 0.01 and np.percentile(errors, 90) <= 0.03


def test_olivine_zoning_against_the_generator():
    config = SynthConfig(olivine_fraction=(0.3, 0.3), olivine_size_um=(100.0, 400.0), pixel_size_um=(1.5, 1.5))
    rows = []
    for seed in (0, 1):
        section = generate_section(1024, seed, config)  # realistic blur, shading and noise
        analysis = analyse_crystals(section.image, section.classes, section.pixel_size_um, CAT)
        match = match_instances(analysis.instances.labels, section.instances, 0.5, MIN_AREA)
        found = analysis.table.set_index("id").loc[match.pairs[:, 0], "zoning"].to_numpy()
        truth = section.crystals.set_index("id").loc[match.pairs[:, 1]]
        olivine = (truth["class_index"] == OLIVINE).to_numpy()
        rows.append(pd.DataFrame({"truth": truth["zoning"].to_numpy()[olivine], "found": found[olivine]}))
    table = pd.concat(rows)
    resolved = table[table["found"] != "unresolved"]
    assert len(resolved) >= 35 and set(resolved["truth"]) == {"normal", "reverse", "unzoned"}
    assert (resolved["truth"] == resolved["found"]).mean() >= 0.9
    assert not ((resolved["truth"] == "normal") & (resolved["found"] == "reverse")).any()  # never the wrong sign
    assert not ((resolved["truth"] == "reverse") & (resolved["found"] == "normal")).any()


def _probe_points(section) -> np.ndarray:
    """(x, y, Fo) at the deepest crack-free point of every unzoned olivine (uniform, known Fo)."""
    olivine_9x9 = ndi.binary_erosion(section.classes == OLIVINE, np.ones((9, 9)))
    points = []
    for row in section.crystals[
        (section.crystals["class_index"] == OLIVINE) & (section.crystals["zoning"] == "unzoned")
    ].itertuples():
        own = section.instances == row.id
        depth = ndi.distance_transform_edt(own) * (own & olivine_9x9)
        if depth.max() > 0:
            y, x = np.unravel_index(np.argmax(depth), depth.shape)
            points.append((x, y, row.core_composition))
    return np.array(points)


def test_fo_calibration_recovers_the_generators_compositions():
    errors, covered, slopes = [], [], []
    for seed in (0, 1):
        section = generate_section(1024, seed, FO_SECTIONS)
        points = _probe_points(section)
        fit, held = points[::2], points[1::2]
        image = percentile_range(section.image).apply(section.image)
        cal, table = calibrate(image, section.classes, ProbePoints(fit[:, 0], fit[:, 1], fit[:, 2], "Fo"), OLIVINE, CAT)
        assert cal.n >= 7 and table["used"].all()
        levels, _ = sample_levels(image, held[:, 0], held[:, 1], 3.0, section.classes == OLIVINE)
        value, half = cal.predict(levels, outside="nan")
        errors.append(value - held[:, 2])
        covered.append(np.abs(value - held[:, 2]) <= half)
        slopes.append(cal.slope / cal.theory_slope)
    errors, covered = np.concatenate(errors), np.concatenate(covered)
    assert np.isfinite(errors).all()
    assert np.median(np.abs(errors)) <= 1.0 and np.max(np.abs(errors)) <= 3.5
    assert covered.mean() >= 0.8
    assert all(0.8 <= ratio <= 1.2 for ratio in slopes)  # the fitted slope agrees with the catalogue's eta(Fo)


def test_core_fo_of_crystals_from_a_calibrated_analysis():
    section = generate_section(1024, 0, FO_SECTIONS)
    points = _probe_points(section)
    analysis = analyse_crystals(
        section.image, section.classes, section.pixel_size_um, CAT, probe_points=ProbePoints(*points.T, "Fo")
    )
    match = match_instances(analysis.instances.labels, section.instances, 0.5, MIN_AREA)
    found = analysis.table.set_index("id").loc[match.pairs[:, 0]]
    truth = section.crystals.set_index("id").loc[match.pairs[:, 1]]
    unzoned = ((truth["class_index"] == OLIVINE) & (truth["zoning"] == "unzoned")).to_numpy()
    error = found["core_Fo"].to_numpy()[unzoned] - truth["core_composition"].to_numpy()[unzoned]
    assert unzoned.sum() >= 10 and np.nanmedian(np.abs(error)) <= 1.5
    fo_map = analysis.calibrated.composition_map
    assert (
        np.isnan(fo_map[section.classes != OLIVINE]).all()
        and np.isfinite(fo_map[section.classes == OLIVINE]).mean() > 0.95
    )
    assert analysis.zoning_summary.set_index("class_name").loc["Olivine", "median_core_Fo"] == pytest.approx(
        np.nanmedian(found["core_Fo"].to_numpy()[(truth["class_index"] == OLIVINE).to_numpy()]), abs=3.0
    )
