"""Which Label Studio control receives which catalogue class, read from a project's config.

Label names always come from the project's labelling config, matched to catalogue
classes by name or synonym, never hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from label_studio_sdk.label_interface import LabelInterface

from label_config import Catalogue


class LabelConfigError(ValueError):
    """The project's labelling config cannot receive this kind of pre-annotation."""


@dataclass(frozen=True)
class ControlTarget:
    """One labelling control (e.g. BrushLabels) and the catalogue classes it can show.

    Attributes:
        from_name: The control's name (``<BrushLabels name=...>``).
        to_name: The image object it labels.
        value_key: Key of the task data holding the image URL (``$image`` -> ``image``).
        labels: Catalogue class index -> the config's label text for it.
        unmatched: Config labels that match no catalogue class (never predicted).
        tag: The control's tag (``BrushLabels``, ``PolygonLabels``...).
    """

    from_name: str
    to_name: str
    value_key: str
    labels: dict[int, str]
    unmatched: tuple[str, ...]
    tag: str = "BrushLabels"


def control_target(label_config: str, catalogue: Catalogue, tag: str = "BrushLabels") -> ControlTarget:
    """Find the first ``tag`` control on an Image and map its labels to the catalogue.

    Raises:
        LabelConfigError: if the config does not parse, has no such control on an Image,
            or none of its labels matches a catalogue class.
    """
    return _control_target(label_config, catalogue, tag)


@lru_cache(maxsize=64)
def _control_target(label_config: str, catalogue: Catalogue, tag: str) -> ControlTarget:
    try:
        interface = LabelInterface(label_config)
    except Exception as exc:  # the SDK raises several unrelated types on bad XML
        raise LabelConfigError(f"the project's labelling config does not parse: {exc}") from exc
    objects = {o.name: o for o in interface.objects if o.tag == "Image"}
    for control in interface.controls:
        if control.tag != tag or not control.to_name or control.to_name[0] not in objects:
            continue
        image = objects[control.to_name[0]]
        labels: dict[int, str] = {}
        unmatched = []
        for label in control.labels:
            index = catalogue.index_of(label)
            if index is None or index in labels:
                unmatched.append(label)
            else:
                labels[index] = label
        if not labels:
            raise LabelConfigError(
                f"none of the {tag} labels {list(control.labels)} matches a mineral of the catalogue "
                f"({', '.join(catalogue.names)}); rename them or pass your own catalogue"
            )
        return ControlTarget(control.name, image.name, image.value.lstrip("$"), labels, tuple(unmatched), tag)
    raise LabelConfigError(
        f"the project's labelling config has no <{tag}> on an <Image>; use label_config/minerals.xml for "
        "mineral maps or label_config/crystals.xml for crystal review (`scraiber label-config` writes both)"
    )


def labelled_target(label_config: str, catalogue: Catalogue) -> ControlTarget:
    """The control scrAiber pre-annotates and harvests: BrushLabels (mineral maps), else PolygonLabels (crystals).

    Raises:
        LabelConfigError: if the config has neither on an Image matching the catalogue.
    """
    try:
        return control_target(label_config, catalogue)
    except LabelConfigError as brush_error:
        try:
            return control_target(label_config, catalogue, tag="PolygonLabels")
        except LabelConfigError:
            raise brush_error from None
