"""The mineral catalogue: loading, lookup, brightness and validation errors."""

from pathlib import Path

import pytest

from label_config import load_catalogue
from label_config.chemistry import backscatter_coefficient, mass_fractions, mean_atomic_number


def test_default_catalogue_classes_in_index_order():
    catalogue = load_catalogue()
    assert catalogue.names == ["Epoxy", "Groundmass", "Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide"]
    assert [m.name for m in catalogue.disabled] == ["Orthopyroxene", "Apatite", "Sulfide"]


@pytest.mark.parametrize(
    ("label", "index"),
    [("Olivine", 4), ("ol", 4), ("FORSTERITE", 4), ("fe ti oxide", 5), ("Fe-Ti oxides", 5), ("Cpx", 3), ("resin", 0)],
)
def test_lookup_by_name_or_synonym(label, index):
    assert load_catalogue().index_of(label) == index


def test_unknown_label_lists_valid_names():
    catalogue = load_catalogue()
    assert catalogue.index_of("Quartz") is None
    with pytest.raises(KeyError, match="Epoxy, Groundmass"):
        catalogue.get("Quartz")


def test_mean_atomic_numbers_from_formulas():
    assert mean_atomic_number(mass_fractions("Mg2SiO4")) == pytest.approx(10.58, abs=0.01)
    assert mean_atomic_number(mass_fractions("Fe2SiO4")) == pytest.approx(18.69, abs=0.01)
    # oxide weight percentages are normalised to 100 %
    assert mass_fractions(oxides={"MgO": 40.0}) == pytest.approx(mass_fractions("MgO"))


def test_backscatter_coefficient_grows_with_z():
    etas = [backscatter_coefficient(z) for z in (6, 10, 14, 20, 26)]
    assert etas == sorted(etas)
    assert backscatter_coefficient(26) == pytest.approx(0.28, abs=0.01)  # iron, textbook value


def test_brightness_order_epoxy_darkest_oxide_brightest():
    catalogue = load_catalogue()
    order = catalogue.brightness_order()
    assert order[0] == catalogue.index_of("Epoxy")
    assert order[-1] == catalogue.index_of("Fe-Ti oxide")
    assert catalogue.get("Plagioclase").eta < catalogue.get("Olivine").eta


def test_olivine_solid_solution_fayalite_is_brighter():
    olivine = load_catalogue().get("Olivine").solid_solution
    assert olivine.variable == "Fo"
    assert olivine.eta_at(60) > olivine.eta_at(90)
    assert olivine.mean_z_at(100) == pytest.approx(mean_atomic_number(mass_fractions("Mg2SiO4")))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cat.toml"
    path.write_text(text)
    return path


MINIMAL = """
[[mineral]]
name = "Dark"
color = "#000000"
formula = "C"
[[mineral]]
name = "Bright"
color = "#FFFFFF"
formula = "Fe"
"""
SOLID = 'solid_solution = {{ variable = "Fo", high = "Mg2SiO4", low = "Fe2SiO4", range = {} }}'


def test_user_catalogue(tmp_path):
    catalogue = load_catalogue(_write(tmp_path, MINIMAL))
    assert catalogue.names == ["Dark", "Bright"]
    assert catalogue.brightness_order() == [0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "not a valid TOML"),
        (MINIMAL.replace('"#000000"', '"black"'), "'color' must look like"),
        (MINIMAL.replace('formula = "C"', 'formula = "Xx9"'), "cannot parse chemical formula"),
        (MINIMAL.replace('name = "Bright"', 'name = "Dark"'), "used twice"),
        (MINIMAL.replace('formula = "Fe"', 'formula = "Fe"\nsynonyms = ["dark"]'), "used by both"),
        (MINIMAL.rsplit("[[mineral]]", 1)[0], "at least 2"),
        (MINIMAL.replace('formula = "C"', 'formula = "C"\ndensity = 3'), "unknown keys"),
        (MINIMAL.replace('formula = "Fe"', 'formula = "Fe"\n' + SOLID.format("[1.0, 2.0, 3.0]")), "bad solid_solution"),
        (MINIMAL.replace('formula = "Fe"', 'formula = "Fe"\n' + SOLID.format("[]")), "bad solid_solution"),
    ],
)
def test_bad_catalogue_errors_name_file_and_problem(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)


def test_missing_catalogue_file(tmp_path):
    with pytest.raises(ValueError, match="catalogue file not found"):
        load_catalogue(tmp_path / "nope.toml")


def test_brush_colours_stand_out_on_grey_bse_and_from_each_other():
    """Brushes are drawn over grey BSE images: a grey colour (equal R, G, B) is nearly invisible there."""
    catalogue = load_catalogue()
    rgbs = {name: catalogue.get(name).rgb for name in catalogue.names}
    for name, rgb in rgbs.items():
        chroma = (max(rgb) - min(rgb)) / 255
        assert chroma >= 0.3, f"{name}'s colour {catalogue.get(name).color} is too grey to see on a BSE image"
    names = list(rgbs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            distance = sum((x - y) ** 2 for x, y in zip(rgbs[a], rgbs[b], strict=True)) ** 0.5
            assert distance >= 60, f"{a} and {b} have nearly the same colour"
