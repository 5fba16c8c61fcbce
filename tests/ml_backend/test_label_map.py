"""Label names come from the project's config, matched to the catalogue by name or synonym."""

import pytest

from label_config import load_catalogue
from label_config.generate import minerals_xml
from ml_backend.label_map import LabelConfigError, control_target

CUSTOM = """<View>
  <Image name="bse" value="$url"/>
  <BrushLabels name="phases" toName="bse">
    <Label value="Ol"/><Label value="plag"/><Label value="Quartz"/><Label value="Resin"/>
  </BrushLabels>
</View>"""


def test_generated_config_maps_every_class():
    catalogue = load_catalogue()
    target = control_target(minerals_xml(catalogue), catalogue)
    assert (target.from_name, target.to_name, target.value_key) == ("minerals", "image", "image")
    assert target.labels == dict(enumerate(catalogue.names))
    assert target.unmatched == ()


def test_synonyms_map_and_unknown_labels_are_reported():
    target = control_target(CUSTOM, load_catalogue())
    assert (target.from_name, target.to_name, target.value_key) == ("phases", "bse", "url")
    assert target.labels == {4: "Ol", 2: "plag", 0: "Resin"}
    assert target.unmatched == ("Quartz",)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '<View><Image name="i" value="$image"/><Choices name="c" toName="i"><Choice value="a"/></Choices></View>',
            "no <BrushLabels>",
        ),
        (
            '<View><Image name="i" value="$image"/><BrushLabels name="b" toName="i"><Label value="Quartz"/></BrushLabels></View>',
            "matches a mineral",
        ),
        ("<View><Image", "does not parse"),
    ],
)
def test_unusable_configs(config, message):
    with pytest.raises(LabelConfigError, match=message):
        control_target(config, load_catalogue())
