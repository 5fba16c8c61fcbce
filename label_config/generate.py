"""Label Studio labelling configs generated from the catalogue, and their validation."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from label_config.catalogue import Catalogue

CONFIG_DIR = Path(__file__).parent
IMAGE_TAG = '  <Image name="image" value="$image" zoom="true" zoomControl="true" brightnessControl="true" contrastControl="true"/>'
POPULATIONS = ("Phenocryst", "Microphenocryst", "Microlite")
ZONING = ("Normal", "Reverse", "Unzoned", "Oscillatory", "Unresolved")


def _hint(description: str, synonyms: tuple[str, ...]) -> str:
    return f"{description} Also called: {', '.join(synonyms)}." if synonyms else description


def _labels(catalogue: Catalogue) -> list[str]:
    return [
        f"    <Label value={quoteattr(m.name)} background={quoteattr(m.color)}"
        f" hint={quoteattr(_hint(m.description, m.synonyms))}/>"
        for m in catalogue.classes
    ]


def minerals_xml(catalogue: Catalogue) -> str:
    """Segmentation config: BrushLabels on an Image, one label per catalogue class.

    A smart KeyPointLabels tool sends the expert's clicks to the backend for
    interactive refinement of the mask.
    """
    lines = [
        "<View>",
        f"  <Header value={quoteattr(f'Mineral map ({catalogue.name}): correct the pre-annotation, then submit')}/>",
        IMAGE_TAG,
        '  <BrushLabels name="minerals" toName="image">',
        *_labels(catalogue),
        "  </BrushLabels>",
        '  <KeyPointLabels name="hint" toName="image" smart="true" smartOnly="true">',
        *_labels(catalogue),
        "  </KeyPointLabels>",
        "</View>",
    ]
    return "\n".join(lines) + "\n"


def crystals_xml(catalogue: Catalogue) -> str:
    """Crystal review config: a polygon per crystal with per-region population and zoning."""
    population = "\n".join(f'    <Choice value="{p}"/>' for p in POPULATIONS)
    zoning = "\n".join(f'    <Choice value="{z}"/>' for z in ZONING)
    lines = [
        "<View>",
        f"  <Header value={quoteattr(f'Crystals ({catalogue.name}): check outlines, population and zoning')}/>",
        IMAGE_TAG,
        '  <PolygonLabels name="crystals" toName="image" strokeWidth="2" opacity="0.3">',
        *_labels(catalogue),
        "  </PolygonLabels>",
        '  <View visibleWhen="region-selected">',
        '    <Header value="Population"/>',
        '    <Choices name="population" toName="image" perRegion="true" choice="single-radio">',
        population.replace("    <Choice", "      <Choice"),
        "    </Choices>",
        '    <Header value="Zoning"/>',
        '    <Choices name="zoning" toName="image" perRegion="true" choice="single-radio">',
        zoning.replace("    <Choice", "      <Choice"),
        "    </Choices>",
        "  </View>",
        "</View>",
    ]
    return "\n".join(lines) + "\n"


def validate_config(xml: str) -> None:
    """Parse a config with label_studio_sdk's label interface.

    Raises:
        ValueError: if Label Studio's own parser rejects the config.
    """
    from label_studio_sdk.label_interface import LabelInterface

    try:
        interface = LabelInterface(xml)
        interface.validate()
    except Exception as exc:  # the SDK raises several unrelated types on bad XML
        raise ValueError(f"invalid Label Studio config: {exc}") from exc


GENERATED = {"minerals.xml": minerals_xml, "crystals.xml": crystals_xml}


def write_configs(catalogue: Catalogue, out_dir: Path = CONFIG_DIR) -> list[Path]:
    """Generate, validate and write every catalogue-derived config into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, build in GENERATED.items():
        xml = build(catalogue)
        validate_config(xml)
        path = out_dir / filename
        path.write_text(xml, encoding="utf-8")
        written.append(path)
    return written
