"""The grey-level Gaussian-mixture baseline, and the unsupervised segmenter beating it on every family."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.baselines import grey_gmm_segment
from benchmarks.unsupervised_families import field_scores, importable_families
from label_config.catalogue import load_catalogue
from ml_backend.segmenters import create_segmenter
from ml_backend.synthetic.families import TEST_SEED_START, generate_field

FIELDS = (TEST_SEED_START, TEST_SEED_START + 1)  # test seeds: never tuned on
SIZE = 384


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_grey_gmm_labels_grey_levels_darkest_first():
    truth = np.repeat(np.arange(3), 400).reshape(30, 40)  # three bands of 10 rows
    image = (1000 + 2000 * truth + np.random.default_rng(0).normal(0, 20, truth.shape)).astype(np.uint16)
    labels = grey_gmm_segment(image, n_classes=3)
    assert labels.dtype == np.uint8 and labels.shape == image.shape
    np.testing.assert_array_equal(labels, truth)
    np.testing.assert_array_equal(grey_gmm_segment(image, n_classes=3), labels)  # seeded


def test_grey_gmm_refuses_bad_input():
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\)"):
        grey_gmm_segment(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="n_classes"):
        grey_gmm_segment(np.zeros((8, 8)), n_classes=0)


@pytest.mark.parametrize("family", importable_families())
def test_unsupervised_beats_grey_gmm_on_test_fields(catalogue, family):
    """Hungarian mIoU (labels renamed by the best one-to-one matching), mean over two test fields."""
    segmenter = create_segmenter("unsupervised", catalogue)
    ours, grey = [], []
    for seed in FIELDS:
        section = generate_field(family, SIZE, seed, catalogue)
        ours.append(field_scores(section.classes, segmenter.segment(section.image), catalogue)[0])
        grey.append(field_scores(section.classes, grey_gmm_segment(section.image, len(catalogue)), catalogue)[0])
    print(f"{family}: unsupervised {np.round(ours, 3)}, grey GMM {np.round(grey, 3)}")
    assert np.mean(ours) > np.mean(grey)
