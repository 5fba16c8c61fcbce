"""Label Studio configs are generated from the catalogue and parse in Label Studio's SDK."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from label_studio_sdk.label_interface import LabelInterface

from label_config import load_catalogue
from label_config.generate import CONFIG_DIR, GENERATED, crystals_xml, minerals_xml, validate_config
from scraiber.cli import main


@pytest.mark.parametrize("filename", sorted(GENERATED))
def test_committed_config_is_not_stale(filename):
    expected = GENERATED[filename](load_catalogue())
    committed = (CONFIG_DIR / filename).read_text(encoding="utf-8")
    assert committed == expected, f"label_config/{filename} is stale: run `scraiber label-config` and commit it"


def test_minerals_config_has_brush_labels_for_every_class():
    catalogue = load_catalogue()
    interface = LabelInterface(minerals_xml(catalogue))
    brush = interface.get_control("minerals")
    assert brush.tag == "BrushLabels"
    assert brush.to_name == ["image"]
    assert list(brush.labels) == catalogue.names


def test_crystals_config_has_polygons_and_per_region_choices():
    interface = LabelInterface(crystals_xml(load_catalogue()))
    assert interface.get_control("crystals").tag == "PolygonLabels"
    assert interface.get_control("population").tag == "Choices"
    assert "Reverse" in interface.get_control("zoning").labels


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="not found"):
        validate_config(
            '<View><Image name="i" value="$image"/><BrushLabels name="b" toName="x"><Label value="a"/></BrushLabels></View>'
        )


def test_cli_generates_from_user_catalogue(tmp_path: Path):
    catalogue = tmp_path / "cat.toml"
    catalogue.write_text(
        '[[mineral]]\nname = "Quartz"\ncolor = "#111111"\nformula = "SiO2"\n'
        '[[mineral]]\nname = "Pyrite"\ncolor = "#EEEEEE"\nformula = "FeS2"\n'
    )
    result = CliRunner().invoke(main, ["label-config", "--catalogue", str(catalogue), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    xml = (tmp_path / "out" / "minerals.xml").read_text()
    assert 'value="Quartz"' in xml and 'value="Pyrite"' in xml and "Olivine" not in xml
