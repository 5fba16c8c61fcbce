"""From the seeds' results to the benchmark's figures: curves, endpoints, tests, implicit vs explicit, text tables."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from benchmarks.active_learning.stats import budget_to_reach, efficiency, holm, normalised_auc

TARGET = 0.95


def explicit_twin(arm: str) -> str:
    """The explicit-label arm with the same strategy and unit as ``arm``."""
    parts = [p for p in arm.split("/") if p not in ("hand-set", "explicit")]
    return "/".join([parts[0], "explicit", *parts[1:]])


def endpoints(results: list[dict[str, Any]], target: float = TARGET) -> dict[str, dict[str, list[float]]]:
    """Per arm, per seed: budget (tile-equivalents) and expert seconds to reach ``target`` x the seed's reference, AUC."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        goal = target * result["reference"]["miou"]
        for arm, points in result["arms"].items():
            budgets = [p["budget"] for p in points]
            values = [p["miou"] for p in points]
            out[arm]["budget"].append(budget_to_reach(budgets, values, goal))
            seconds = [max(p["seconds"], 1e-6) for p in points]
            order = np.argsort(seconds)
            out[arm]["seconds"].append(budget_to_reach(np.array(seconds)[order], np.array(values)[order], goal))
            out[arm]["auc"].append(normalised_auc(budgets, values, result["reference"]["miou"]))
            out[arm]["largest_seconds"].append(max(seconds))
    return out


def comparisons(results: list[dict[str, Any]], primary: str | None, largest: float) -> dict[str, dict[str, float]]:
    """Label efficiency of every arm against ``random`` of the same label kind (budget and seconds), Holm over the secondary ones."""
    ends = endpoints(results)
    out = {}
    for arm in ends:
        if arm.startswith("random"):
            continue
        base = "random/explicit" if "/explicit" in arm else "random"
        if base not in ends:
            continue
        stats = efficiency(ends[base]["budget"], ends[arm]["budget"], largest)
        longest = float(np.median(ends[arm]["largest_seconds"] + ends[base]["largest_seconds"]))
        by_time = efficiency(ends[base]["seconds"], ends[arm]["seconds"], longest)
        out[arm] = {**stats, "seconds_ratio": by_time.get("geometric_mean_ratio", math.nan),
                    "seconds_ci_low": by_time.get("ci_low", math.nan), "seconds_wilcoxon_p": by_time.get("wilcoxon_p", math.nan),
                    "primary": arm == primary}  # fmt: skip
    secondary = {arm: s["wilcoxon_p"] for arm, s in out.items() if not s["primary"] and "wilcoxon_p" in s}
    for arm, p in holm(secondary).items():
        out[arm]["holm_p"] = p
    return out


def curves(results: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Per arm: mean and SD over seeds of mIoU and seconds at each budget (budget 0: the base FCN)."""
    table: dict[str, dict[float, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for result in results:
        for arm, points in result["arms"].items():
            table[arm][0.0]["miou"].append(result["start"]["miou"])
            table[arm][0.0]["seconds"].append(0.0)
            for p in points:
                table[arm][p["budget"]]["miou"].append(p["miou"])
                table[arm][p["budget"]]["seconds"].append(p["seconds"])
                if p.get("label_accuracy") is not None:
                    table[arm][p["budget"]]["label_accuracy"].append(p["label_accuracy"])
    out = {}
    for arm, by_budget in table.items():
        out[arm] = [{"budget": b, "miou": float(np.mean(v["miou"])), "sd": float(np.std(v["miou"], ddof=1)) if len(v["miou"]) > 1 else 0.0,
                     "seconds": float(np.mean(v["seconds"])), "seeds": len(v["miou"]),
                     "label_accuracy": float(np.mean(v["label_accuracy"])) if v["label_accuracy"] else None}
                    for b, v in sorted(by_budget.items())]  # fmt: skip
    return out


def implicit_vs_explicit(results: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Per implicit arm with an explicit twin: mean over seeds of mIoU(implicit) / mIoU(explicit) at each budget."""
    out: dict[str, list[dict[str, float]]] = {}
    arms = set.intersection(*(set(r["arms"]) for r in results)) if results else set()
    for arm in sorted(arms):
        twin = explicit_twin(arm)
        if "/explicit" in arm or twin not in arms:
            continue
        ratios: dict[float, list[float]] = defaultdict(list)
        for result in results:
            for a, b in zip(result["arms"][arm], result["arms"][twin]):
                ratios[a["budget"]].append(a["miou"] / b["miou"])
        out[arm] = [
            {"budget": b, "ratio": float(np.mean(v)), "min": float(np.min(v))} for b, v in sorted(ratios.items())
        ]
    return out


def learning_curve_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the format ``scraiber report --learning-curve`` reads (one per arm, seed and budget)."""
    rows = []
    for result in results:
        for arm, points in result["arms"].items():
            kind = "explicit" if "/explicit" in arm else "implicit"
            strategy = arm.replace("/explicit", "")
            rows.append({"n_labelled_tiles": 0, "mIoU": result["start"]["miou"], "strategy": strategy, "label_kind": kind,
                         "seed": result["seed"], "expert_seconds": 0.0})  # fmt: skip
            for p in points:
                rows.append({"n_labelled_tiles": int(round(p["budget"])), "mIoU": p["miou"], "strategy": strategy,
                             "label_kind": kind, "seed": result["seed"], "expert_seconds": p["seconds"]})  # fmt: skip
    return rows


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "> max"
    return f"{value:.{digits}f}"


def text_tables(analysis: dict[str, Any]) -> str:
    """The printed report (Markdown)."""
    lines = []
    base = analysis["baseline"]
    lines += ["### Start and reference (test mIoU, mean ± SD over seeds)", "",
              "| base FCN (start) | reference: all pool tiles, true labels | reference, 2x pixels and trees | start / reference |",
              "| --- | --- | --- | --- |",
              f"| {base['start']:.3f} ± {base['start_sd']:.3f} | {base['reference']:.3f} ± {base['reference_sd']:.3f} | "
              f"{base['reference_doubled']:.3f} ± {base['reference_doubled_sd']:.3f} | {base['start_ratio']:.2f} |", ""]  # fmt: skip
    budgets = sorted({p["budget"] for rows in analysis["curves"].values() for p in rows})
    lines += ["### Learning curves (test mIoU, mean over seeds; budget in tile-equivalents of labelled area)", "",
              "| arm | " + " | ".join(f"{b:g}" for b in budgets) + " | expert s at the largest budget |",
              "|" + " --- |" * (len(budgets) + 2)]  # fmt: skip
    for arm, rows in sorted(analysis["curves"].items()):
        by = {p["budget"]: p for p in rows}
        cells = " | ".join(f"{by[b]['miou']:.3f}" if b in by else "" for b in budgets)
        lines.append(f"| {arm} | {cells} | {rows[-1]['seconds']:.0f} |")
    lines += ["", f"### Label efficiency at {TARGET:.0%} of the reference (vs random of the same label kind)", "",
              "| arm | median budget to 95 % (censored) | AUC / reference | ratio random/arm (geometric mean) | 95 % CI | "
              "Wilcoxon p (one-sided) | Holm p | 2x claim | ratio in expert seconds | seconds CI low |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    ends = analysis["endpoints"]
    for arm in sorted(ends):
        e = ends[arm]
        c = analysis["comparisons"].get(arm, {})
        median = float(np.median(e["budget"]))
        censored = sum(math.isinf(b) for b in e["budget"])
        mark = " (primary)" if c.get("primary") else ""
        lines.append(
            f"| {arm}{mark} | {_fmt(median, 1)} ({censored}) | {np.mean(e['auc']):.3f} | {_fmt(c.get('geometric_mean_ratio'), 2)} | "
            f"{_fmt(c.get('ci_low'), 2)}–{_fmt(c.get('ci_high'), 2)} | {_fmt(c.get('wilcoxon_p'), 4)} | {_fmt(c.get('holm_p'), 4)} | "
            f"{'yes' if c.get('claim_2x') else ('no' if c else '')} | {_fmt(c.get('seconds_ratio'), 2)} | {_fmt(c.get('seconds_ci_low'), 2)} |"
        )
    if analysis.get("implicit_vs_explicit"):
        lines += ["", "### Implicit / explicit labels at the same budget (mean over seeds of the mIoU ratio)", "",
                  "| arm | " + " | ".join(f"{b:g}" for b in budgets if b > 0) + " |", "|" + " --- |" * (len(budgets))]  # fmt: skip
        for arm, rows in analysis["implicit_vs_explicit"].items():
            by = {p["budget"]: p for p in rows}
            lines.append(
                f"| {arm} | " + " | ".join(f"{by[b]['ratio']:.3f}" if b in by else "" for b in budgets if b > 0) + " |"
            )
    cal = analysis.get("calibration")
    if cal:
        lines += ["", "### Implicit-label confidence (adaptive 15-bin ECE, 95 % submission-clustered bootstrap CI)", "",
                  "| fitted on | measured on | label accuracy | hand-set ECE | calibrated ECE | pixels | submissions |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for row in cal["table"]:
            h, c = row["hand_set"], row.get("calibrated") or {}
            lines.append(f"| {row['fitted_on']} | {row['measured_on']} | {row['accuracy']:.3f} | "
                         f"{h['ece']:.3f} ({h['ci_low']:.3f}–{h['ci_high']:.3f}) | "
                         f"{_fmt(c.get('ece'))} ({_fmt(c.get('ci_low'))}–{_fmt(c.get('ci_high'))}) | {h['pixels']} | {h['submissions']} |")  # fmt: skip
    champ = analysis.get("champion")
    if champ:
        lines += ["", "### Champion rule over the cycles (truth: mean per-tile test mIoU difference > -0.01)", "",
                  "| rule | cycles | should promote | promoted | false promotions (of worse) | false refusals (of not worse) | agreement |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, r in champ.items():
            lines.append(f"| {name} | {r['cycles']} | {r['should_promote']} | {r['promoted']} | {r['false_promotion_rate']:.1%} | "
                         f"{r['false_refusal_rate']:.1%} | {r['agreement']:.1%} |")  # fmt: skip
    return "\n".join(lines)
