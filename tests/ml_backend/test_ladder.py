"""The brightness-ladder check of named predictions."""

import numpy as np
import pytest

from label_config import load_catalogue
from ml_backend.ladder import check_ladder
from ml_backend.synthetic import generate_section

CAT = load_catalogue()


def test_true_labels_of_a_synthetic_section_keep_the_ladder():
    section = generate_section(256, 3)
    check = check_ladder(section.image, section.classes, CAT)
    assert check.consistent and check.message() == ""
    assert check.levels["Epoxy"] < check.levels["Plagioclase"] < check.levels["Fe-Ti oxide"]


def strips(names_and_greys):
    image = np.zeros((60, 24 * len(names_and_greys)), np.uint16)
    labels = np.zeros(image.shape, np.uint8)
    for slot, (name, grey) in enumerate(names_and_greys):
        labels[:, slot * 24 : (slot + 1) * 24] = CAT.index_of(name)
        image[:, slot * 24 : (slot + 1) * 24] = grey
    return image, labels


def test_swapped_names_are_reported_but_near_equal_phases_are_not_compared():
    right = [("Epoxy", 100), ("Fe-Ti oxide", 900), ("Plagioclase", 400), ("Clinopyroxene", 500), ("Olivine", 450)]
    assert check_ladder(*strips(right), CAT, min_pixels=50).consistent
    clinopyroxene_darker_than_olivine = [("Epoxy", 100), ("Fe-Ti oxide", 900), ("Clinopyroxene", 440), ("Olivine", 500)]
    assert check_ladder(*strips(clinopyroxene_darker_than_olivine), CAT, min_pixels=50).consistent
    swapped = [("Epoxy", 100), ("Plagioclase", 900), ("Fe-Ti oxide", 400), ("Clinopyroxene", 500), ("Olivine", 450)]
    check = check_ladder(*strips(swapped), CAT, min_pixels=50)
    assert set(check.violations) == {("Clinopyroxene", "Fe-Ti oxide"), ("Olivine", "Fe-Ti oxide"),
                                     ("Plagioclase", "Clinopyroxene"), ("Plagioclase", "Fe-Ti oxide"),
                                     ("Plagioclase", "Olivine")}  # fmt: skip
    assert "Plagioclase looks brighter than Fe-Ti oxide" in check.message()


def test_ladder_check_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        check_ladder(np.zeros((4, 4)), np.zeros((4, 5), np.uint8), CAT)


def test_predictions_whose_names_break_the_ladder_say_so_on_the_regions():
    from contextlib import contextmanager
    from dataclasses import dataclass

    from label_config.generate import minerals_xml
    from ml_backend.predictor import Predictor
    from ml_backend.segmenters.base import Segmenter

    image, truth = strips([("Epoxy", 100), ("Plagioclase", 400), ("Fe-Ti oxide", 900)])
    swap = {
        CAT.index_of("Plagioclase"): CAT.index_of("Fe-Ti oxide"),
        CAT.index_of("Fe-Ti oxide"): CAT.index_of("Plagioclase"),
    }

    class Named(Segmenter):
        catalogue, version = CAT, "named-1"

        def __init__(self, mapping):
            self.mapping = mapping

        def predict_proba(self, pixels, progress=False):
            labels = np.vectorize(lambda c: self.mapping.get(int(c), int(c)))(truth)
            return np.eye(len(CAT), dtype=np.float32)[labels].transpose(2, 0, 1)

    @dataclass
    class Fetched:
        pixels: np.ndarray
        pixel_size_um: float | None = None

    class Images:
        @contextmanager
        def open(self, url, pixel_size_um=None):
            yield Fetched(image)

    task = [{"id": 1, "data": {"image": "/data/upload/1/a.png"}}]
    wrong = Predictor(CAT, lambda: Named(swap), Images()).predict(task, minerals_xml(CAT))[0]
    flagged = {r["value"]["brushlabels"][0]: r.get("meta", {}).get("text", [""])[0] for r in wrong["result"]}
    assert "Plagioclase looks brighter than Fe-Ti oxide" in flagged["Fe-Ti oxide"] and flagged["Epoxy"] == ""
    right = Predictor(CAT, lambda: Named({}), Images()).predict(task, minerals_xml(CAT))[0]
    assert all("meta" not in region for region in right["result"])
