"""Size classes, clusters and their descriptions, crystal size distribution and modal proportions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from label_config.catalogue import IGNORE_INDEX, load_catalogue
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.modal import modal_proportions
from ml_backend.crystals.populations import cluster_crystals, describe_clusters, size_classes
from ml_backend.crystals.size_distribution import plot_size_distribution, size_distribution

CAT = load_catalogue()


def test_size_class_thresholds_default_and_custom():
    ecd = np.array([5.0, 29.99, 30.0, 299.9, 300.0, 2000.0])
    assert size_classes(ecd, CrystalConfig()).tolist() == [
        "microlite",
        "microlite",
        "microphenocryst",
        "microphenocryst",
        "phenocryst",
        "phenocryst",
    ]
    custom = CrystalConfig(microphenocryst_min_um=100, phenocryst_min_um=500)
    assert size_classes(ecd, custom).tolist() == ["microlite"] * 3 + ["microphenocryst"] * 2 + ["phenocryst"]
    assert size_classes(None, CrystalConfig(), count=2).tolist() == ["unknown", "unknown"]
    with pytest.raises(ValueError, match="microphenocryst < phenocryst"):
        CrystalConfig(microphenocryst_min_um=500, phenocryst_min_um=100)


def _table(groups: list[tuple[str, float, float, str, int]], seed: int = 0) -> pd.DataFrame:
    """Crystals in groups of (mineral, median ECD µm, aspect, zoning, count), lognormal sizes."""
    rng = np.random.default_rng(seed)
    rows = []
    for mineral, ecd, aspect, zoning, count in groups:
        for _ in range(count):
            rows.append({
                "class_name": mineral, "ecd_um": ecd * np.exp(rng.normal(0, 0.15)), "ecd_px": ecd, "aspect_ratio": aspect * np.exp(rng.normal(0, 0.05)),
                "solidity": 0.97 + rng.normal(0, 0.01), "rim_minus_core": (0.05 if zoning == "normal" else 0.0) + rng.normal(0, 0.005),
                "core_level": 0.5 + rng.normal(0, 0.01), "touches_border": False, "zoning": zoning,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["noise_sigma"] = 0.02
    return table


def test_clusters_found_and_described():
    table = _table(
        [
            ("Olivine", 700.0, 1.3, "normal", 40),
            ("Olivine", 40.0, 1.2, "unzoned", 60),
            ("Plagioclase", 150.0, 5.0, "unzoned", 30),
        ]
    )
    table["cluster"] = cluster_crystals(table, CrystalConfig())
    assert sorted(table["cluster"].unique()) == ["Olivine-1", "Olivine-2", "Plagioclase-1"]
    big = table[table["cluster"] == "Olivine-1"]
    assert len(big) == 40 and (big["ecd_um"] > 300).all()  # cluster 1 = the largest crystals
    described = describe_clusters(table).set_index("cluster")
    sentence = described.loc["Olivine-1", "description"]
    assert sentence.startswith("Olivine, 0.") and " mm, equant, normally zoned, 40 crystals" in sentence
    assert described.loc["Plagioclase-1", "description"].endswith("µm, elongate (laths, needles), unzoned, 30 crystals")
    assert described.loc["Olivine-2", "count"] == 60 and described.loc["Olivine-2", "share_unzoned"] == 1.0


def test_few_crystals_form_one_cluster():
    table = _table([("Olivine", 700.0, 1.3, "normal", 5), ("Olivine", 40.0, 1.2, "unzoned", 5)])
    assert set(cluster_crystals(table, CrystalConfig())) == {"Olivine-1"}


def _csd_table(ecd_px: list[float], boxes: list[int], border: list[bool], pixel_size: float | None) -> pd.DataFrame:
    table = pd.DataFrame({
        "class_name": "Olivine", "ecd_px": ecd_px, "touches_border": border,
        "bbox_min_row": 0, "bbox_min_col": 0, "bbox_max_row": boxes, "bbox_max_col": boxes,
    })  # fmt: skip
    if pixel_size is not None:
        table["ecd_um"] = table["ecd_px"] * pixel_size
    table.attrs["pixel_size_um"] = pixel_size
    return table


def test_size_distribution_counts_edge_correction_and_units():
    # field 100 x 100 px at 10 µm/px = 1 mm^2
    table = _csd_table([2.0, 2.2, 5.0, 30.0], [2, 2, 50, 20], [False, False, False, True], 10.0)
    csd = size_distribution(table, (100, 100), 10_000, bins_per_decade=1)
    everything = csd[csd["class_name"] == "all"].set_index("bin_low")
    # sizes 20, 22, 50 and 300 µm: bins [10, 100) and [100, 1000)
    assert everything.index.tolist() == [10.0, 100.0]
    assert everything.loc[10.0, "count"] == 3 and everything.loc[100.0, "count"] == 0
    assert everything.loc[100.0, "count_cut_by_edge"] == 1
    # Miles-Lantuejoul: 2 x 100^2 / 98^2 + 100^2 / 50^2, per 1 mm^2
    assert everything.loc[10.0, "number_per_area"] == pytest.approx(2 * 1e4 / 98**2 + 1e4 / 50**2)
    assert everything.loc[10.0, "population_density"] == pytest.approx(everything.loc[10.0, "number_per_area"] / 0.09)
    assert set(csd["unit"]) == {"um"} and set(csd["class_name"]) == {"all", "Olivine"}
    in_px = size_distribution(
        _csd_table([2.0, 5.0], [2, 2], [False, False], None), (100, 100), 10_000, bins_per_decade=1
    )
    assert set(in_px["unit"]) == {"px"}
    assert in_px.loc[in_px["class_name"] == "all", "number_per_area"].sum() == pytest.approx(
        2 * 1e4 / 98**2 / 0.01
    )  # per million px


def test_size_distribution_plot_is_a_png(tmp_path):
    table = _csd_table([2.0, 2.2, 5.0, 30.0], [2, 2, 50, 20], [False, False, False, True], 10.0)
    path = plot_size_distribution(size_distribution(table, (100, 100), 10_000), tmp_path / "csd.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_modal_proportions_exact():
    mask = np.zeros((10, 10), np.uint8)  # 100 px: 20 epoxy, 50 groundmass, 20 olivine, 10 unlabelled
    mask[:2] = CAT.index_of("Epoxy")
    mask[2:7] = CAT.index_of("Groundmass")
    mask[7:9] = CAT.index_of("Olivine")
    mask[9] = IGNORE_INDEX
    modal = modal_proportions(mask, CAT, pixel_size_um=100.0).set_index("class_name")
    assert modal.loc["Olivine", "area_px"] == 20 and modal.loc["Olivine", "area_mm2"] == pytest.approx(0.2)
    assert modal.loc["Olivine", "percent"] == pytest.approx(100 * 20 / 90)
    assert modal.loc["Olivine", "percent_without_epoxy"] == pytest.approx(100 * 20 / 70)
    assert np.isnan(modal.loc["Epoxy", "percent_without_epoxy"])
    assert modal["percent"].sum() == pytest.approx(100.0)
    assert "area_mm2" not in modal_proportions(mask, CAT, None)
