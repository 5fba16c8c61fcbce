"""Generator-independent augmentations and the multi-family section source of training."""

from __future__ import annotations

import numpy as np
import pytest

from active_learning.training import TrainConfig
from active_learning.training.augment import IntensityAugment, monotone_curve, pad_to, rescale
from active_learning.training.sections import SectionSource
from label_config import load_catalogue
from label_config.catalogue import IGNORE_INDEX
from ml_backend.synthetic import generate_section
from ml_backend.synthetic.families import generate_field

CAT = load_catalogue()


def test_monotone_curve_never_swaps_two_grey_levels():
    rng = np.random.default_rng(3)
    ramp = np.linspace(0.0, 1.0, 1001, dtype=np.float32)[None, :]
    for _ in range(20):
        mapped = monotone_curve(rng, ramp)[0]
        assert np.all(np.diff(mapped) >= -1e-6)
        assert mapped[0] == pytest.approx(0.0, abs=1e-6) and mapped[-1] == pytest.approx(1.0, abs=1e-6)
    assert np.abs(monotone_curve(np.random.default_rng(4), ramp) - ramp).max() > 0.02  # it does bend


def test_augmentation_keeps_the_brightness_order_of_phases_and_is_reproducible():
    label = np.zeros((128, 128), np.uint8)
    label[:, 64:] = 1
    image = np.where(label == 1, 0.7, 0.3).astype(np.float32)
    strong = IntensityAugment(scale=0.0, curve=1, gamma=1, shading=0, blur=1, noise=1, scan_lines=1, quantise=1)
    for seed in range(25):
        out, same = strong.apply(np.random.default_rng(seed), image, label)
        assert same is label
        assert out[label == 0].mean() < out[label == 1].mean()
        again, _ = strong.apply(np.random.default_rng(seed), image, label)
        np.testing.assert_array_equal(out, again)


def test_rescale_moves_labels_with_the_image_and_pad_marks_new_pixels_unlabelled():
    section = generate_section(96, 5)
    grey = section.image.astype(np.float32) / 65535
    big, big_label = rescale(grey, section.classes, 1.5)
    assert big.shape == big_label.shape == (144, 144)
    assert set(np.unique(big_label)) <= set(np.unique(section.classes))
    small, small_label = rescale(grey, section.classes, 0.5)
    padded, padded_label = pad_to(small, small_label, 64)
    assert padded.shape == (64, 64) and (padded_label[48:] == IGNORE_INDEX).all()
    assert (padded_label[:48, :48] == small_label).all()


def test_section_source_draws_each_family_and_caches_the_generators_arrays(tmp_path):
    config = TrainConfig(arch="fpn-mobilenet_v2", patch=64, section_size=96, section_pool=3,
                         pool_dir=str(tmp_path / "pool"), families={"vitrophyric": 1.0, "intergranular": 0.0})  # fmt: skip
    source = SectionSource(config, CAT)
    image, classes = source.draw(np.random.default_rng(1))
    cached = list((tmp_path / "pool" / "vitrophyric").glob("96-*.npz"))
    assert len(cached) == 1
    seed = int(cached[0].stem.split("-")[1])
    assert 0 <= seed < 3
    truth = generate_field("vitrophyric", 96, seed, CAT)
    np.testing.assert_array_equal(image, truth.image)
    np.testing.assert_array_equal(classes, truth.classes)
    again = source.section("vitrophyric", seed)  # read back from the cache file
    np.testing.assert_array_equal(again[0], truth.image)
    assert not (tmp_path / "pool" / "intergranular").exists()  # weight 0: never drawn


def test_porphyritic_cache_folder_follows_the_synthetic_overrides(tmp_path):
    base = dict(arch="fpn-mobilenet_v2", patch=64, section_size=96, section_pool=2, pool_dir=str(tmp_path),
                families={"porphyritic": 1.0})  # fmt: skip
    one = SectionSource(TrainConfig(**base), CAT).folders["porphyritic"]
    two = SectionSource(TrainConfig(**base, synth={"pixel_size_um": [2.0, 2.5]}), CAT).folders["porphyritic"]
    assert one != two and one.startswith("porphyritic-")
