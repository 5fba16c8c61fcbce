"""``scraiber bench active-learning``: learning curves of the whole loop, on a real Label Studio.

A new "sample" (synthetic sections from a shifted domain: finer pixel size, Fe-richer olivine,
lower beam dose; the shipped model was not trained on it) is uploaded to a real Label
Studio and pre-annotated by the real backend. In rounds, the simulated expert corrects
``--per-round`` tasks (implicit labels) or labels them from scratch (explicit labels),
chosen by prediction score (uncertainty, as Label Studio users sort) or at random; the
backend's worker harvests the annotations from the webhooks; a retraining cycle (the
product's: one task in five held out for validation, fine-tuning, champion rule on the
synthetic + held-out set, re-prediction of the open tasks) follows; the
champion is scored on a separate test set of the same sample. A reference model is
fine-tuned on every tile of the pool with its true labels ("full data").

Prints one row per round and arm, the tiles each arm needs for 95 % of the full-data
mIoU, and writes ``learning_curve.csv`` / ``.json`` (the format ``scraiber report
--learning-curve`` reads) and ``learning_curve.png``.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from PIL import Image

from active_learning.event_log import EventLog
from active_learning.harvest_log import HarvestLog
from active_learning.registry import ModelRegistry
from active_learning.retrain import RetrainCycle
from active_learning.serve import image_source
from active_learning.simulated_expert import ExpertConfig, SimulatedExpert, TruthLookup
from active_learning.stack import backend_process
from active_learning.store import open_store
from active_learning.training import HarvestedSample, TrainConfig, run_training
from ml_backend.metrics import class_iou, confusion_matrix, mean_iou
from active_learning.training_queue import TrainingQueue
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.fcn import FCNSegmenter, shipped_model_path
from ml_backend.label_studio import LabelStudioClient
from ml_backend.label_studio_server import LabelStudioAccount, LabelStudioServer
from ml_backend.processes import free_port
from ml_backend.settings import Settings
from ml_backend.synthetic import SynthConfig, generate_section, write_section

#: The new sample: outside the shipped model's training ranges (pixel size 0.7-3 µm, dose >= 1500 e-).
SHIFTED = SynthConfig(
    pixel_size_um=(0.3, 0.5), olivine_core_fo_normal=(66.0, 74.0), olivine_core_fo_reverse=(60.0, 68.0),
    olivine_fo_unzoned=(60.0, 72.0), dose_electrons=(600.0, 1200.0),
)  # fmt: skip
ARMS = {
    "uncertainty-implicit": ("uncertainty", "correct"),
    "random-implicit": ("random", "correct"),
    "uncertainty-explicit": ("uncertainty", "explicit"),
}


@dataclass
class Point:
    """One point of a learning curve."""

    arm: str
    round: int
    labelled: int
    fraction: float
    miou: float
    model_version: str
    promoted: bool
    candidate_miou: float | None = None


def _test_miou(model: Path | None, catalogue, test) -> float:
    segmenter = FCNSegmenter(catalogue, model)
    confusion = np.zeros((len(catalogue), len(catalogue)), np.int64)
    for section in test:
        confusion += confusion_matrix(section.classes, segmenter.segment(section.image), len(catalogue))
    return mean_iou(class_iou(confusion, catalogue.names))


def _config(steps: int, threads: int, lr: float) -> TrainConfig:
    return TrainConfig(
        arch="unet-mobilenet_v2", steps=steps, val_every=steps, batch_size=4, patch=192, section_size=256,
        patches_per_section=2, val_sections=1, val_size=256, lr=lr, warmup_steps=5, patience=0,
        harvest_ratio=0.75, threads=threads,
    )  # fmt: skip


def _arm(name, label_studio, pool_dir, pool_paths, catalogue, test, args, echo) -> list[Point]:
    order, mode = ARMS[name]
    data_dir = Path(tempfile.mkdtemp(prefix=f"scraiber-al-{name}-"))
    port = free_port()
    env = {"SCRAIBER_DEMO": "true", "SCRAIBER_DATA_DIR": str(data_dir), "LABEL_STUDIO_URL": label_studio.url,
           "LABEL_STUDIO_API_KEY": label_studio.api_key, "SCRAIBER_WEB_WORKERS": "1",
           "SCRAIBER_MODEL_POLL_SECONDS": "1", "SCRAIBER_RETRAIN_ON_START_TRAINING": "false"}  # fmt: skip
    settings = Settings(**env)
    client = LabelStudioClient(label_studio.url, label_studio.api_key, timeout=1800)
    points: list[Point] = []
    with backend_process(env, port, data_dir / "backend.log", [label_studio.api_key]):
        project = client.create_project(f"Active learning {name}", (CONFIG_DIR / "minerals.xml").read_text())
        client.upload_files(project["id"], pool_paths)
        connection = client.connect_ml_backend(project["id"], f"http://127.0.0.1:{port}", "scrAiber")
        client.retrieve_predictions(project["id"])
        engine = EventLog.from_url(settings.resolved_event_log_url).engine
        harvests = HarvestLog(engine)
        cycle = RetrainCycle(
            settings, catalogue, harvests, open_store(settings.resolved_artefact_uri, settings, create_bucket=True),
            TrainingQueue(engine), client, image_source(settings), lambda: [project["id"]],
            _config(args["steps"], args["threads"], args["lr"]),
        )  # fmt: skip
        expert = SimulatedExpert(client, project["id"], TruthLookup(pool_dir), ExpertConfig(mode=mode, seed=args["seed"]))
        rng = random.Random(args["seed"])
        model = shipped_model_path(catalogue)
        points.append(Point(name, 0, 0, 0.0, _test_miou(model, catalogue, test), "shipped", True))
        echo(f"{name:22} round 0: 0 tiles, mIoU {points[-1].miou:.3f}")
        labelled = 0
        for round_ in range(1, args["rounds"] + 1):
            for _ in range(args["per_round"]):
                if order == "uncertainty":
                    picked = expert.next_task()
                else:
                    open_tasks = [t for t in client.list_tasks(project["id"]) if not t.get("total_annotations")]
                    task = rng.choice(open_tasks)
                    predictions = client.task_predictions(task["id"])
                    picked = (task, max(predictions, key=lambda p: p["id"]) if predictions else None)
                expert.annotate(*picked)
                labelled += 1
            deadline = time.monotonic() + 300
            while harvests.count_labels() < labelled and time.monotonic() < deadline:
                time.sleep(1)
            foreign = {r.project_id for r in harvests.records()} - {project["id"]}
            if foreign:
                raise RuntimeError(f"arm {name} harvested other projects {sorted(foreign)}: arms must not share labels")
            result = cycle.run(f"bench round {round_}")
            candidate = None
            if result.model_version is not None:
                trained = ModelRegistry.from_settings(settings).download_model(result.model_version)
                candidate = _test_miou(trained, catalogue, test)
                if result.status == "promoted":
                    model = trained
            points.append(Point(name, round_, labelled, labelled / len(pool_paths), _test_miou(model, catalogue, test),
                                f"v{result.model_version}", result.status == "promoted", candidate))  # fmt: skip
            echo(f"{name:22} round {round_}: {labelled} tiles, served mIoU {points[-1].miou:.3f} ({result.status}), "
                 f"candidate {candidate if candidate is None else round(candidate, 3)}")  # fmt: skip
        # the backend stops with the arm: leave Label Studio no connection to a dead port
        client.disconnect_ml_backend(connection["id"])
    return points


def _full_data(pool, catalogue, test, args) -> float:
    samples = [HarvestedSample(s.image, s.classes, np.ones(s.classes.shape, np.float32)) for s in pool]
    config = _config(args["steps"] * args["rounds"], args["threads"], args["lr"]).replace(
        init_from=str(shipped_model_path(catalogue)),
        checkpoint_dir=tempfile.mkdtemp(prefix="scraiber-al-full-"),
    )
    result = run_training(config, None, catalogue=catalogue, harvested=samples, register=False, progress=False)
    return _test_miou(result.model_path, catalogue, test)


def _tiles_for(points: list[Point], target: float) -> int | None:
    reached = [p.labelled for p in points if p.miou >= target]
    return min(reached) if reached else None


@click.command("active-learning")
@click.option("--pool", default=20, show_default=True, help="Tiles of the new sample in Label Studio.")
@click.option("--test", "n_test", default=6, show_default=True, help="Test tiles (never labelled).")
@click.option("--size", default=256, show_default=True, help="Tile side in px.")
@click.option("--rounds", default=4, show_default=True)
@click.option("--per-round", default=3, show_default=True, help="Tiles corrected per round.")
@click.option("--steps", default=40, show_default=True, help="Fine-tuning steps per round.")
@click.option("--arms", default=",".join(ARMS), show_default=True)
@click.option("--lr", default=1e-4, show_default=True, help="Fine-tuning learning rate.")
@click.option("--threads", default=0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out/active-learning"),
              show_default=True)  # fmt: skip
def bench_active_learning(pool: int, n_test: int, size: int, rounds: int, per_round: int, steps: int, arms: str,
                          lr: float, threads: int, seed: int, out: Path) -> None:  # fmt: skip
    """Learning curves: uncertainty vs random selection, implicit vs explicit labels (real Label Studio)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a.strip() for a in arms.split(",") if a.strip()]
    unknown = sorted(set(names) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; valid arms: {', '.join(ARMS)}")
    catalogue = load_catalogue()
    args = {"rounds": rounds, "per_round": per_round, "steps": steps, "lr": lr, "threads": threads, "seed": seed}
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scraiber-al-"))
    pool_sections = [generate_section(size, seed=seed * 1000 + i, config=SHIFTED) for i in range(pool)]
    test = [generate_section(size, seed=seed * 1000 + 500 + i, config=SHIFTED) for i in range(n_test)]
    paths = []
    for i, section in enumerate(pool_sections):
        paths.append(work / f"tile{i:03d}.png")
        Image.fromarray(section.image).save(paths[-1])
        write_section(section, work, f"tile{i:03d}")
    click.echo(f"pool {pool} x {size} px, test {n_test}, {rounds} rounds x {per_round} tiles, {steps} steps per round")
    full = _full_data(pool_sections, catalogue, test, args)
    click.echo(f"full data (all {pool} tiles, true labels): mIoU {full:.3f}")
    account = LabelStudioAccount.generate("bench@scraiber.local")
    points: list[Point] = []
    with LabelStudioServer(work / "label-studio", account) as label_studio:
        for name in names:
            points += _arm(name, label_studio, work, paths, catalogue, test, args, click.echo)
    rows = [p.__dict__ | {"n_labelled_tiles": p.labelled, "mIoU": p.miou, "strategy": ARMS[p.arm][0],
                          "label_kind": "implicit" if ARMS[p.arm][1] == "correct" else "explicit"} for p in points]  # fmt: skip
    (out / "learning_curve.json").write_text(json.dumps({"full_data_miou": full, "rows": rows}, indent=2))
    header = "arm,round,n_labelled_tiles,fraction,mIoU,candidate_miou,strategy,label_kind,model_version,promoted"
    (out / "learning_curve.csv").write_text(
        header + "\n" + "\n".join(",".join(str(r[k]) for k in header.split(",")) for r in rows) + "\n"
    )
    click.echo("\narm                    tiles  fraction  served mIoU  of full  candidate mIoU  promoted")
    for p in points:
        candidate = "" if p.candidate_miou is None else f"{p.candidate_miou:.3f}"
        click.echo(f"{p.arm:22} {p.labelled:5d}  {p.fraction:8.2f}  {p.miou:11.3f}  {p.miou / full:7.1%}  "
                   f"{candidate:>14}  {p.promoted}")  # fmt: skip
    for name in names:
        mine = [p for p in points if p.arm == name]
        need = _tiles_for(mine, 0.95 * full)
        click.echo(f"{name}: 95 % of full-data mIoU with "
                   f"{'not reached' if need is None else f'{need} tiles ({need / pool:.0%} of the pool)'}")  # fmt: skip
    figure, axis = plt.subplots(figsize=(6, 4))
    for name in names:
        mine = [p for p in points if p.arm == name]
        line = axis.plot([p.labelled for p in mine], [p.miou for p in mine], marker="o", label=f"{name} (served)")
        trained = [p for p in mine if p.candidate_miou is not None]
        axis.plot([p.labelled for p in trained], [p.candidate_miou for p in trained], marker="x", linestyle=":",
                  color=line[0].get_color(), label=f"{name} (candidate)")  # fmt: skip
    axis.axhline(full, color="k", linestyle="--", label="full data")
    axis.axhline(0.95 * full, color="grey", linestyle=":", label="95 % of full data")
    axis.set_xlabel("tiles corrected / labelled")
    axis.set_ylabel("test mIoU")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "learning_curve.png", dpi=120)
    click.echo(f"wrote {out / 'learning_curve.csv'}, .json and .png")
