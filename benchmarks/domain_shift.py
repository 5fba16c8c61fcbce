"""``scraiber bench domain-shift``: how the models hold on a microscope and a rock they never saw.

Leave-one-family-out over the generator families (:mod:`ml_backend.synthetic.families`):
for each family, an FCN trained on all the *other* families (``--models DIR/lofo-FAMILY``,
trained with ``python -m scraiber.commands.training --config
active_learning/training/minerals-families.toml --hold-out FAMILY``: stage 1 fine-tuned on the
other families) is measured on test fields of the family left out, as is

* the FCN with the fast learner on top, taught ``k`` corrected tiles of that family
  (the loop; ``k = 0`` is the FCN alone), with the time to fit it;
* the unsupervised segmenter, named and after optimal renaming (Hungarian);
* a plain Gaussian mixture on grey level (Hungarian), the baseline the unsupervised
  segmenter must beat;
* the shipped model, which saw every family in training (in-domain, for reference).

Test fields are seeds ``TEST_SEED_START + i``; corrected tiles are seeds
``TEST_SEED_START + 1000 + j``: never drawn in training, never the same as the test fields.
Every field has its own detector response, so this loop learns a *family* across microscopes.

The loop is also measured the way a project meets it (``--sections``): one section of 4 x 4
tiles (seeds ``TEST_SEED_START + 2000 + s``), imaged once, its tiles in a seeded random
order; the expert corrects the first ``k`` tiles and the learner is measured on the last
:data:`OPEN_TILES`, which it never saw (one learner per section, as one per project).
The real TESCAN field has no mineral map: its row is the share of pixels on which the
prediction's dark/bright split agrees with Otsu's threshold (two phases).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
from skimage.filters import threshold_otsu

from benchmarks.baselines import grey_gmm_segment
from label_config import Catalogue, load_catalogue
from ml_backend.fcn import FCNSegmenter, shipped_model_path
from ml_backend.metrics import class_iou, confusion_matrix, matched_confusion, mean_iou
from ml_backend.segmenters import create_segmenter
from ml_backend.segmenters.fast_learner import (
    FastLearnerConfig,
    PixelClassifier,
    PixelSamples,
    learner_features,
    sample_pixels,
)
from ml_backend.synthetic.families import TEST_SEED_START, family_names, generate_field
from ml_backend.tiling import tile_windows

CORRECTED_SEED_OFFSET = 1000
SECTION_SEED_OFFSET = 2000
SECTION_SIDE = 4  # tiles per side of a section
OPEN_TILES = 8  # tiles of a section the learner is measured on
REAL_FIELD = Path(__file__).resolve().parents[1] / "ml_backend" / "demo" / "real" / "tescan-tima-field1-bse.png"


@dataclass
class Row:
    """One method on one held-out family: pooled confusion over the test fields."""

    family: str
    method: str
    confusion: np.ndarray
    hungarian: bool = False
    seconds: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def iou(self, names: list[str]) -> dict[str, float]:
        """Per-class IoU (after optimal renaming for a Hungarian row)."""
        return class_iou(matched_confusion(self.confusion) if self.hungarian else self.confusion, names)


def lofo_model(models: Path, family: str) -> Path:
    """The leave-one-family-out model for ``family`` in ``models``.

    Raises:
        ValueError: if it is missing, with the command that trains it.
    """
    path = models / f"lofo-{family}" / "minerals-unet-mobilenet_v2.safetensors"
    if not path.is_file():
        raise ValueError(
            f"no leave-one-family-out model for {family!r} at {path}; train it with: python -m scraiber.commands.training "
            f"--config active_learning/training/minerals-families.toml --hold-out {family} --no-register --out {path.parent}"
        )
    return path


def loop_rows(
    family: str, base: FCNSegmenter, tests: list, corrected: list, ks: list[int], catalogue: Catalogue
) -> list[Row]:
    """The FCN alone (k = 0) and with the fast learner taught ``k`` corrected tiles, on the test fields."""
    config = FastLearnerConfig()
    n = len(catalogue)
    mpix = sum(f.image.size for f in tests) / 2**20
    started = time.perf_counter()
    test_features = [learner_features(f.image, base, config) for f in tests]
    features_per_mpix = (time.perf_counter() - started) / mpix
    rows = [Row(family, "FCN zero-shot", sum(confusion_matrix(f.classes, p.argmax(0), n)
                                            for f, (p, _) in zip(tests, test_features)))]  # fmt: skip
    rng = np.random.default_rng(0)
    parts = []
    for k in sorted(k for k in ks if k > 0):
        while len(parts) < k:
            tile = corrected[len(parts)]
            _, features = learner_features(tile.image, base, config)
            parts.append(
                sample_pixels(features, tile.classes, np.ones(tile.classes.shape, np.float32), rng, config.per_class)
            )
        started = time.perf_counter()
        classifier = PixelClassifier.fit(PixelSamples.concat(parts[:k]), n, config)
        fit = time.perf_counter() - started
        started = time.perf_counter()
        predicted = [classifier.predict_proba(x).argmax(0) for _, x in test_features]
        forest_per_mpix = (time.perf_counter() - started) / mpix
        matrix = sum(confusion_matrix(f.classes, p, n) for f, p in zip(tests, predicted))
        timing = {"features_s_per_mpix": features_per_mpix, "forest_s_per_mpix": forest_per_mpix}
        rows.append(Row(family, f"FCN + fast learner, {k} tiles", matrix, seconds=fit, extra=timing))
    return rows


def section_tiles(family: str, tile: int, seed: int, catalogue: Catalogue) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, classes) of the tiles of one section of ``family``, in a random order drawn from ``seed``."""
    section = generate_field(family, SECTION_SIDE * tile, seed, catalogue)
    windows = tile_windows(section.image.shape, tile, 0)
    order = np.random.default_rng(seed).permutation(len(windows))
    return [(section.image[windows[i].slices], section.classes[windows[i].slices]) for i in order]


def section_loop_rows(
    family: str, base: FCNSegmenter, seeds: list[int], ks: list[int], catalogue: Catalogue, tile: int
) -> list[Row]:
    """The loop within one section: ``k`` corrected tiles, measured on the section's open tiles.

    Raises:
        ValueError: if ``k`` exceeds the tiles left besides the open ones.
    """
    if max(ks) > SECTION_SIDE**2 - OPEN_TILES:
        raise ValueError(f"a section has {SECTION_SIDE**2 - OPEN_TILES} tiles to correct, --loop asks {max(ks)}")
    config = FastLearnerConfig()
    n = len(catalogue)
    matrices: dict[int, Any] = dict.fromkeys(ks, 0)
    fits: dict[int, list[float]] = {k: [] for k in ks}
    for seed in seeds:
        tiles = section_tiles(family, tile, seed, catalogue)
        features = [learner_features(image, base, config) for image, _ in tiles]
        open_tiles = range(len(tiles) - OPEN_TILES, len(tiles))
        rng = np.random.default_rng(0)
        parts = [sample_pixels(features[i][1], tiles[i][1], np.ones(tiles[i][1].shape, np.float32), rng,
                               config.per_class) for i in range(max(ks))]  # fmt: skip
        for k in ks:
            if k == 0:
                predicted = [features[i][0].argmax(0) for i in open_tiles]
            else:
                started = time.perf_counter()
                classifier = PixelClassifier.fit(PixelSamples.concat(parts[:k]), n, config)
                fits[k].append(time.perf_counter() - started)
                predicted = [classifier.predict_proba(features[i][1]).argmax(0) for i in open_tiles]
            matrices[k] = matrices[k] + sum(confusion_matrix(tiles[i][1], p, n) for i, p in zip(open_tiles, predicted))
    return [Row(family, "one section: FCN zero-shot" if k == 0 else f"one section: FCN + fast learner, {k} tiles",
                matrices[k], seconds=float(np.mean(fits[k])) if fits[k] else math.nan) for k in ks]  # fmt: skip


def unsupervised_rows(family: str, tests: list, catalogue: Catalogue) -> list[Row]:
    """The unsupervised segmenter (named and Hungarian) and the grey-level mixture (Hungarian)."""
    n = len(catalogue)
    named = hungarian = gmm = 0
    for f in tests:
        labels = create_segmenter("unsupervised", catalogue).segment(f.image)
        per_field = confusion_matrix(f.classes, labels, n)
        named = named + per_field
        hungarian = hungarian + matched_confusion(per_field)  # renaming is per field: names may change per image
        gmm = gmm + matched_confusion(confusion_matrix(f.classes, grey_gmm_segment(f.image, n), n))
    return [Row(family, "unsupervised", named), Row(family, "unsupervised (Hungarian)", hungarian),
            Row(family, "grey-level GMM (Hungarian)", gmm)]  # fmt: skip


def otsu_agreement(image: np.ndarray, labels: np.ndarray) -> float:
    """Share of pixels whose predicted class falls on the same side of Otsu's threshold as the pixel.

    Each predicted class is called dark or bright by its median grey level against the threshold.
    """
    threshold = threshold_otsu(image)
    bright_pixel = image > threshold
    bright_class = np.zeros(256, bool)
    for cls in np.unique(labels):
        bright_class[cls] = np.median(image[labels == cls]) > threshold
    return float(np.mean(bright_class[labels] == bright_pixel))


def real_rows(catalogue: Catalogue, shipped: FCNSegmenter) -> list[dict[str, Any]]:
    """Two-phase agreement on the real TESCAN field for the shipped FCN and the unsupervised segmenter."""
    from ml_backend.bse_io import read_bse

    image = read_bse(REAL_FIELD).pixels
    rows = []
    for name, segmenter in (("shipped FCN", shipped), ("unsupervised", create_segmenter("unsupervised", catalogue))):
        labels = segmenter.segment(image)
        share = {catalogue.names[c]: round(float(np.mean(labels == c)), 3) for c in np.unique(labels)}
        rows.append({"method": name, "otsu_agreement": round(otsu_agreement(image, labels), 4), "classes": share})
    return rows


def format_table(rows: list[Row], names: list[str]) -> str:
    """Markdown table: method, per-class IoU, mIoU, fit seconds."""
    head = "| held-out family | method | " + " | ".join(names) + " | mIoU | fit s |"
    lines = [head, "|" + " --- |" * (len(names) + 4)]
    for row in rows:
        iou = row.iou(names)
        cells = " | ".join("–" if math.isnan(iou[n]) else f"{iou[n]:.2f}" for n in names)
        seconds = "" if math.isnan(row.seconds) else f"{row.seconds:.1f}"
        lines.append(f"| {row.family} | {row.method} | {cells} | **{mean_iou(iou):.3f}** | {seconds} |")
    return "\n".join(lines)


@click.command("domain-shift")
@click.option("--models", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-models"),
              show_default=True, help="Folder with lofo-FAMILY/ models (leave-one-family-out).")  # fmt: skip
@click.option("--base", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="One FCN (weights) for every held-out family instead of --models; it must not have seen them "
                   "(e.g. the stage-1 FCN, porphyritic only, for vitrophyric and intergranular).")  # fmt: skip
@click.option("--family", "families", multiple=True, help="Held-out families to measure (default: all).")
@click.option("--fields", type=int, default=8, show_default=True, help="Test fields per family.")
@click.option("--size", type=int, default=512, show_default=True, help="Field side (px).")
@click.option(
    "--loop", "loop", default="0,2,4,8", show_default=True, help="Corrected tiles the fast learner is taught."
)
@click.option("--sections", type=int, default=2, show_default=True,
              help="Sections per family for the loop within one section (0: skip).")  # fmt: skip
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the figures as JSON."
)
def domain_shift_bench(models: Path, base: Path | None, families: tuple[str, ...], fields: int, size: int, loop: str,
                       sections: int, json_out: Path | None) -> None:  # fmt: skip
    """Leave-one-family-out: FCN, fast-learner loop, unsupervised and grey GMM on each held-out family."""
    catalogue = load_catalogue()
    names = list(catalogue.names)
    ks = sorted({int(k) for k in loop.split(",")})
    families = families or tuple(family_names())
    shipped = FCNSegmenter(catalogue, shipped_model_path(catalogue))
    rows: list[Row] = []
    for family in families:
        held_out = FCNSegmenter(catalogue, base if base is not None else lofo_model(models, family))
        started = time.perf_counter()
        tests = [generate_field(family, size, TEST_SEED_START + i, catalogue) for i in range(fields)]
        corrected = [generate_field(family, size, TEST_SEED_START + CORRECTED_SEED_OFFSET + j, catalogue)
                     for j in range(max(ks))]  # fmt: skip
        rows += loop_rows(family, held_out, tests, corrected, ks, catalogue)
        if sections > 0:
            seeds = [TEST_SEED_START + SECTION_SEED_OFFSET + s for s in range(sections)]
            rows += section_loop_rows(family, held_out, seeds, ks, catalogue, size)
        rows += unsupervised_rows(family, tests, catalogue)
        rows.append(Row(family, "shipped FCN (saw this family)",
                        sum(confusion_matrix(f.classes, shipped.segment(f.image), len(names)) for f in tests)))  # fmt: skip
        click.echo(f"{family}: {time.perf_counter() - started:.0f} s", err=True)
    click.echo(f"Test fields: {fields} x {size} px per family, seeds {TEST_SEED_START}+i; corrected tiles seeds "
               f"{TEST_SEED_START + CORRECTED_SEED_OFFSET}+j; sections: {sections} of {SECTION_SIDE} x {SECTION_SIDE} "
               f"tiles, seeds {TEST_SEED_START + SECTION_SEED_OFFSET}+s, measured on {OPEN_TILES} open tiles each; "
               f"held-out FCN: {base if base is not None else models}")  # fmt: skip
    click.echo(format_table(rows, names))
    for row in rows:
        if row.extra:
            click.echo(f"{row.family}, {row.method}: prediction {row.extra['features_s_per_mpix']:.2f} s/MPix features "
                       f"(FCN + filters) + {row.extra['forest_s_per_mpix']:.2f} s/MPix forest")  # fmt: skip
    real = real_rows(catalogue, shipped)
    for row in real:
        click.echo(f"real TESCAN field, {row['method']}: Otsu two-phase agreement {row['otsu_agreement']:.3f}, "
                   f"classes {row['classes']}")  # fmt: skip
    if json_out is not None:
        payload = [{"family": r.family, "method": r.method, "iou": r.iou(names), "miou": mean_iou(r.iou(names)),
                    "fit_seconds": None if math.isnan(r.seconds) else r.seconds, **r.extra} for r in rows]  # fmt: skip
        json_out.write_text(json.dumps({"rows": payload, "real": real}, indent=2, default=float), encoding="utf-8")
