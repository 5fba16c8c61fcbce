"""Crystal review pre-annotations: polygons with per-region population and zoning choices."""

from __future__ import annotations

import numpy as np
import pytest

from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.crystal_results import crystal_results, crystal_target
from ml_backend.crystals import crystal_polygons
from ml_backend.label_map import LabelConfigError
from ml_backend.synthetic import generate_section

CRYSTALS_XML = (CONFIG_DIR / "crystals.xml").read_text()


@pytest.fixture(scope="module")
def section():
    return generate_section(384, seed=11)


def test_target_finds_polygons_and_choices_by_their_values():
    target = crystal_target(CRYSTALS_XML, load_catalogue())
    assert (target.polygons.from_name, target.polygons.to_name) == ("crystals", "image")
    assert target.choices["population"][0] == "population"
    assert target.choices["zoning"][1]["normal"] == "Normal"


def test_choices_are_matched_whatever_their_names_and_case():
    config = """<View><Image name="bse" value="$img"/>
      <PolygonLabels name="outline" toName="bse"><Label value="Ol"/></PolygonLabels>
      <Choices name="kind" toName="bse" perRegion="true"><Choice value="PHENOCRYST"/><Choice value="microlite"/></Choices>
    </View>"""
    target = crystal_target(config, load_catalogue())
    assert target.polygons.labels == {4: "Ol"} and target.polygons.value_key == "img"
    assert target.choices == {"population": ("kind", {"phenocryst": "PHENOCRYST", "microlite": "microlite"})}


def test_config_without_polygons_is_refused():
    with pytest.raises(LabelConfigError, match="PolygonLabels"):
        crystal_target((CONFIG_DIR / "minerals.xml").read_text(), load_catalogue())


def test_one_polygon_per_crystal_with_choices_sharing_its_id(section):
    catalogue = load_catalogue()
    target = crystal_target(CRYSTALS_XML, catalogue)
    results = crystal_results(section.image, section.classes, target, section.pixel_size_um, catalogue)
    polygons = [r for r in results if r["type"] == "polygonlabels"]
    expected = crystal_polygons(section.image, section.classes, section.pixel_size_um, catalogue)
    assert len(polygons) == len(expected) > 5
    ids = {r["id"] for r in polygons}
    choices = [r for r in results if r["type"] == "choices"]
    assert choices and all(r["id"] in ids for r in choices)
    assert {r["from_name"] for r in choices} == {"population", "zoning"}
    for region in polygons:
        points = np.array(region["value"]["points"])
        assert points.shape[1] == 2 and ((points >= 0) & (points <= 100)).all()
        assert region["value"]["polygonlabels"][0] in catalogue.names
    populations = {r["value"]["choices"][0] for r in choices if r["from_name"] == "population"}
    assert populations <= {"Phenocryst", "Microphenocryst", "Microlite"}


def test_without_pixel_size_no_population_is_proposed(section):
    catalogue = load_catalogue()
    target = crystal_target(CRYSTALS_XML, catalogue)
    results = crystal_results(section.image, section.classes, target, None, catalogue)
    assert not [r for r in results if r["from_name"] == "population"]
    assert [r for r in results if r["from_name"] == "zoning"]
