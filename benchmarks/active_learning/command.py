"""``scraiber bench active-learning``: does active learning on implicit labels save experts' time? With statistics.

Three phases (all by default; ``--only`` runs one), each seed's results saved under ``--out`` as
soon as it is done (a rerun skips seeds already there, so a long run can be cut into pieces):

1. **tune** (seeds ``--tuning-seeds``, expert A): every strategy with hand-set confidence; the
   primary strategy is the one with the smallest geometric-mean budget to 95 % of the reference
   (ties: larger AUC), and the confidence calibration is fitted on a uniform 10 % audit of
   expert A's submissions;
2. **report** (seeds ``--seeds``, expert B on even seeds, C on odd ones): every arm, implicit labels
   weighted by the calibrated confidence, plus random with the hand-set confidence, random with
   explicit labels and the primary strategy with explicit labels;
3. **analyse**: learning curves, endpoints and tests, implicit vs explicit, calibration (on B and
   C; leave one annotator out), champion rule; printed as Markdown and written as
   ``results.json``, ``learning_curve.json`` and ``calibration.json`` (for ``scraiber report``).

The learner is the product's fast learner on the base FCN's cached features; the FCN itself is
not retrained (see docs/active-learning.md for why, and for the FCN variant on a GPU).
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from active_learning.calibration import CalibrationModel
from benchmarks.active_learning import analysis
from benchmarks.active_learning.calibration_audit import (
    AUDIT_SHARE,
    audit,
    concat,
    ece_report,
    fit_on_audit,
    join,
    leave_one_annotator_out,
    rows,
    with_own_audits,
)
from benchmarks.active_learning.champion_rule import cycles, rule_report
from benchmarks.active_learning.loop import BUDGETS, STRATEGIES, Context, evaluate, parse_arm, reference, run_arm
from benchmarks.active_learning.pool import PoolConfig, build_pool, model_digest
from benchmarks.active_learning.stats import censored_log_ratio
from benchmarks.experts import EXPERTS
from label_config import load_catalogue
from ml_backend.fcn import FCNSegmenter
from ml_backend.segmenters.fast_learner import FastLearnerConfig

DEFAULT_BASE = Path("bench-models/stage1/minerals-unet-mobilenet_v2.safetensors")
STAGE1_COMMIT = "f93cf4d"


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return out


def report_expert(seed: int) -> str:
    """B on even reporting seeds, C on odd ones."""
    return "B" if seed % 2 == 0 else "C"


def run_seed(seed: int, expert: str, arms: list[str], config: PoolConfig, base: FCNSegmenter, budgets: tuple[int, ...],
             calibrator: CalibrationModel | None, catalogue, echo) -> tuple[dict[str, Any], list[dict[str, np.ndarray]]]:  # fmt: skip
    """One seed: pool, start, references, every arm; (result JSON, calibration records of implicit submissions)."""
    started = time.perf_counter()
    pool = build_pool(seed, config, base, catalogue)
    ctx = Context.build(pool, EXPERTS[expert], seed, budgets, calibrator)
    result: dict[str, Any] = {"seed": seed, "expert": expert, "composition": pool.composition(), "arms": {}}
    result["start"] = evaluate(ctx, None)
    result["reference"] = reference(ctx)
    doubled = FastLearnerConfig(
        max_training_pixels=2 * ctx.learner.max_training_pixels, n_estimators=2 * ctx.learner.n_estimators
    )
    result["reference_doubled"] = reference(ctx, doubled)
    echo(f"seed {seed} (expert {expert}): start {result['start']['miou']:.3f}, reference {result['reference']['miou']:.3f}, "
         f"doubled {result['reference_doubled']['miou']:.3f} ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    records: list[dict[str, np.ndarray]] = []
    for name in arms:
        t = time.perf_counter()
        arm = parse_arm(name)
        mine: list[dict[str, np.ndarray]] = []
        points = run_arm(ctx, arm, mine if arm.labels == "implicit" else None)
        result["arms"][arm.name] = [p.to_dict() for p in points]
        for r in mine:
            r["arm"] = np.full(len(r["correct"]), arm.name)
        records += mine
        echo(f"  {arm.name:28} " + " ".join(f"{p.miou:.3f}" for p in points) + f"  ({time.perf_counter() - t:.0f} s)")
    result["runtime_s"] = round(time.perf_counter() - started, 1)
    return result, records


def _save(folder: Path, seed: int, result: dict[str, Any], records: list[dict[str, np.ndarray]], expert: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = concat(records, expert, seed)
    np.savez_compressed(folder / f"records-{seed}.npz", **table)
    (folder / f"seed-{seed}.json").write_text(json.dumps(result, default=float), encoding="utf-8")


def _load(folder: Path, seeds: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, np.ndarray]]]:
    results, tables = [], []
    for seed in seeds:
        path = folder / f"seed-{seed}.json"
        if path.is_file():
            results.append(json.loads(path.read_text(encoding="utf-8")))
            with np.load(folder / f"records-{seed}.npz", allow_pickle=False) as data:
                tables.append({k: data[k] for k in data.files})
    return results, tables


def choose_primary(results: list[dict[str, Any]], largest: float) -> dict[str, Any]:
    """The pre-registered choice on tuning seeds: smallest geometric-mean budget to 95 % (censored at 2x largest), then AUC."""
    ends = analysis.endpoints(results)
    table = {}
    for arm, e in ends.items():
        strategy = arm.split("/")[0]
        if strategy == "random":
            continue
        logs = [math.log(2 * largest) if math.isinf(b) else math.log(b) for b in e["budget"]]
        table[strategy] = {"geometric_mean_budget": math.exp(float(np.mean(logs))), "auc": float(np.mean(e["auc"]))}
    primary = (
        min(table, key=lambda s: (table[s]["geometric_mean_budget"], -table[s]["auc"])) if table else "top-k-entropy"
    )
    return {
        "primary": primary,
        "table": table,
        "rule": "smallest geometric-mean budget to 95 % on the tuning seeds, then AUC",
    }


@click.command("active-learning")
@click.option(
    "--base",
    type=click.Path(path_type=Path),
    default=DEFAULT_BASE,
    show_default=True,
    help="Base FCN (weights) whose features the fast learner reads; must not have seen the families.",
)
@click.option(
    "--families", default="vitrophyric,intergranular", show_default=True, help="Generator families of the samples."
)
@click.option("--samples", type=int, default=10, show_default=True, help="Simulated sections per seed.")
@click.option("--field", type=int, default=896, show_default=True, help="Field side (px).")
@click.option("--tile", type=int, default=128, show_default=True, help="Tile side (px).")
@click.option("--region", type=int, default=64, show_default=True, help="Region side (px) of region-level arms.")
@click.option("--test-per-sample", type=int, default=5, show_default=True)
@click.option("--val-per-sample", type=int, default=2, show_default=True)
@click.option(
    "--budgets", default=",".join(map(str, BUDGETS)), show_default=True, help="Tile-equivalents labelled at each point."
)
@click.option(
    "--arms", default=",".join(STRATEGIES), show_default=True, help="Strategies (implicit labels) of the report phase."
)
@click.option("--tuning-seeds", default="100-102", show_default=True, help="Seeds of the tune phase (expert A).")
@click.option("--seeds", default="0-9", show_default=True, help="Reporting seeds (experts B and C).")
@click.option("--only", type=click.Choice(["tune", "report", "analyse"]), default=None, help="Run one phase only.")
@click.option(
    "--min-tiles", type=int, default=15, show_default=True, help="Champion rule: fewest paired validation tiles."
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out/active-learning"),
              show_default=True)  # fmt: skip
def active_learning_bench(base, families, samples, field, tile, region, test_per_sample, val_per_sample, budgets, arms,
                          tuning_seeds, seeds, only, min_tiles, out) -> None:  # fmt: skip
    """Learning curves of query strategies with simulated experts, label efficiency tests, calibration, champion rule."""
    echo = lambda text: click.echo(text, err=True)  # noqa: E731
    config = PoolConfig(
        tuple(filter(None, families.split(","))), samples, field, tile, test_per_sample, val_per_sample, region
    )
    budget_list = tuple(int(b) for b in budgets.split(","))
    strategies = [a for a in arms.split(",") if a]
    catalogue = load_catalogue()
    out.mkdir(parents=True, exist_ok=True)
    needs_model = only != "analyse"
    if needs_model and not Path(base).is_file():
        raise click.UsageError(
            f"base FCN {base} not found. The pre-registered base is the stage-1 FCN (porphyritic family only); get it with "
            f"`git show {STAGE1_COMMIT}:ml_backend/weights/minerals-unet-mobilenet_v2.safetensors > stage1.safetensors` "
            f"(and the .json beside it) or pass --base"
        )  # fmt: skip
    fcn = FCNSegmenter(catalogue, Path(base)) if needs_model else None
    meta = {"base": str(base), "base_sha256_12": model_digest(base) if needs_model else None, "config": config.__dict__,
            "budgets": budget_list, "command": " ".join(sys.argv), "date": datetime.date.today().isoformat()}  # fmt: skip
    if needs_model:
        (out / "meta.json").write_text(json.dumps(meta, indent=2, default=list), encoding="utf-8")
    tune_dir, report_dir = out / "tune", out / "report"
    if only in (None, "tune"):
        for seed in _seeds(tuning_seeds):
            if not (tune_dir / f"seed-{seed}.json").is_file():
                result, records = run_seed(seed, "A", [f"{s}/hand-set" for s in strategies], config, fcn, budget_list,
                                           None, catalogue, echo)  # fmt: skip
                _save(tune_dir, seed, result, records, "A")
        tuned, tables = _load(tune_dir, _seeds(tuning_seeds))
        choice = choose_primary(tuned, max(budget_list))
        audited = audit(join(tables), seed=0)
        for name, with_probability in (("calibration-A.json", False), ("calibration-A-probability.json", True)):
            (out / name).write_text(fit_on_audit(audited, with_probability).to_json(), encoding="utf-8")
        (out / "tuning.json").write_text(json.dumps(choice, indent=2), encoding="utf-8")
        echo(f"primary strategy (chosen on tuning seeds {tuning_seeds}): {choice['primary']}")
    choice = json.loads((out / "tuning.json").read_text(encoding="utf-8"))
    primary = choice["primary"]
    if only in (None, "report"):
        calibrator = CalibrationModel.from_dict(json.loads((out / "calibration-A.json").read_text(encoding="utf-8")))
        report_arms = strategies + ["random/hand-set", "random/explicit", f"{primary}/explicit"]
        for seed in _seeds(seeds):
            if not (report_dir / f"seed-{seed}.json").is_file():
                expert = report_expert(seed)
                result, records = run_seed(seed, expert, list(dict.fromkeys(report_arms)), config, fcn, budget_list,
                                           calibrator, catalogue, echo)  # fmt: skip
                _save(report_dir, seed, result, records, expert)
    if only in (None, "analyse"):
        results, tables = _load(report_dir, _seeds(seeds))
        tuned, tune_tables = _load(tune_dir, _seeds(tuning_seeds))
        if not results:
            raise click.UsageError(f"no reporting seeds in {report_dir}: run the report phase first")
        figures = analyse(results, tables, tune_tables, out, primary, max(budget_list), min_tiles)
        figures["tuning"] = choice
        figures["meta"] = json.loads((out / "meta.json").read_text(encoding="utf-8"))
        (out / "results.json").write_text(json.dumps(figures, indent=2, default=float), encoding="utf-8")
        click.echo(f"scrAiber active-learning benchmark, {figures['meta']['date']}; base {figures['meta']['base']} "
                   f"(sha256 {figures['meta']['base_sha256_12']}); reporting seeds {seeds} (experts B/C); tuning seeds "
                   f"{tuning_seeds} (expert A); primary strategy {primary} (chosen on the tuning seeds)")  # fmt: skip
        composition = [r["composition"] for r in results]
        click.echo(f"Per seed: {composition[0]['pool_tiles']} pool tiles, {composition[0]['test_tiles']} test tiles, "
                   f"{composition[0]['val_tiles']} validation tiles from {len(composition[0]['samples'])} sections; "
                   f"groundmass-only pool tiles {np.mean([c['groundmass_only'] for c in composition]):.0f}, olivine-rich "
                   f"{np.mean([c['olivine_rich'] for c in composition]):.0f}, oxide-rich "
                   f"{np.mean([c['oxide_rich'] for c in composition]):.0f} (means); pixel sizes "
                   f"{min(s['pixel_size_um'] for c in composition for s in c['samples']):.2f}-"
                   f"{max(s['pixel_size_um'] for c in composition for s in c['samples']):.2f} um")  # fmt: skip
        click.echo(analysis.text_tables(figures))


def analyse(results, tables, tune_tables, out: Path, primary: str, largest: float, min_tiles: int) -> dict[str, Any]:
    """Every figure of the benchmark from the saved seeds (see the module docstring)."""
    start = [r["start"]["miou"] for r in results]
    ref = [r["reference"]["miou"] for r in results]
    ref2 = [r["reference_doubled"]["miou"] for r in results]
    sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
    figures: dict[str, Any] = {
        "baseline": {
            "start": float(np.mean(start)),
            "start_sd": sd(start),
            "reference": float(np.mean(ref)),
            "reference_sd": sd(ref),
            "reference_doubled": float(np.mean(ref2)),
            "reference_doubled_sd": sd(ref2),
            "start_ratio": float(np.mean(np.array(start) / np.array(ref))),
        },  # fmt: skip
        "curves": analysis.curves(results),
        "implicit_vs_explicit": analysis.implicit_vs_explicit(results),
    }
    ends = analysis.endpoints(results)
    figures["endpoints"] = {arm: {k: [float(x) for x in v] for k, v in e.items()} for arm, e in ends.items()}
    figures["comparisons"] = analysis.comparisons(results, f"{primary}" if f"{primary}" in ends else None, largest)
    figures["log_ratios"] = {arm: [censored_log_ratio(r, s, largest) for r, s in zip(ends["random"]["budget"], e["budget"])]
                             for arm, e in ends.items() if "random" in ends and "/explicit" not in arm}  # fmt: skip
    by_expert = {}
    if tune_tables:
        by_expert["A"] = join(tune_tables)
    report = join(tables)
    for expert in ("B", "C"):
        if report and (report["expert"] == expert).any():
            by_expert[expert] = {k: v[report["expert"] == expert] for k, v in report.items()}
    calibration: dict[str, Any] = {"table": []}
    model_path = out / "calibration-A.json"
    if model_path.is_file():
        for name, path in (
            ("A (harvest features)", model_path),
            ("A (with model probability)", out / "calibration-A-probability.json"),
        ):
            model = CalibrationModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
            for expert in ("B", "C"):
                if expert in by_expert:
                    row = ece_report(by_expert[expert], model)
                    calibration["table"].append({"fitted_on": name, "measured_on": expert, **row})
        if "A" in by_expert:
            audited_a = audit(by_expert["A"], seed=0)  # the audit calibration-A.json was fitted on
            rest = rows(by_expert["A"], ~np.isin(by_expert["A"]["submission"], audited_a["submission"]))
            model = CalibrationModel.from_dict(json.loads(model_path.read_text(encoding="utf-8")))
            calibration["table"].append(
                {"fitted_on": "A (harvest features)", "measured_on": "A (not audited)", **ece_report(rest, model)}
            )
            for expert in ("B", "C"):
                if expert in by_expert:
                    calibration["table"].append({"fitted_on": f"A + {AUDIT_SHARE:.0%} of {expert}'s own (own map)",
                                                 "measured_on": f"{expert} (not audited)",
                                                 **with_own_audits(audited_a, by_expert[expert], expert)})  # fmt: skip
    if len(by_expert) == 3:
        for held, row in leave_one_annotator_out(by_expert).items():
            others = "+".join(e for e in by_expert if e != held)
            calibration["table"].append(
                {"fitted_on": f"{others} (leave one annotator out)", "measured_on": held, **row}
            )
    figures["calibration"] = calibration
    figures["champion"] = rule_report(cycles(results), min_tiles=min_tiles)
    (out / "learning_curve.json").write_text(json.dumps({"rows": analysis.learning_curve_rows(results)}, default=float),
                                             encoding="utf-8")  # fmt: skip
    reliability = next((row for row in calibration["table"] if "calibrated" in row), None)
    if reliability is not None:
        (out / "calibration.json").write_text(json.dumps({
            "fitted_on": reliability["fitted_on"], "measured_on": reliability["measured_on"],
            "ece": reliability["calibrated"]["ece"], "ece_hand_set": reliability["hand_set"]["ece"],
            "reliability": reliability["reliability"], "reliability_hand_set": reliability["reliability_hand_set"]},
            default=float), encoding="utf-8")  # fmt: skip
    return figures
