"""How often a champion rule promotes a worse model or refuses a better one, over the benchmark's cycles.

A *cycle* is a champion and a candidate from one seed's learning curves: each point and the next
point of the same arm, in both roles (the later model is usually better, so the reversed pair
is usually worse: the set holds both kinds of candidate). The truth is the test set: the candidate
should be promoted when its mean per-tile test mIoU is above the champion's plus the margin
(-0.01). Rules compared:

* ``sign-flip`` and ``bootstrap``: :func:`active_learning.champion.decide` on the validation tiles
  labelled from scratch by the seed's expert (separate from training and test tiles);
* ``point estimate (3 tiles)``: the old rule, candidate's mean mIoU on 3 validation tiles >= the
  champion's.

False promotion rate: promoted among candidates that should not be; false refusal rate: refused
among those that should be; agreement: decisions equal to the test set's over all cycles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from active_learning.champion import ChampionRule, decide

OLD_RULE_TILES = 3


def cycles(seed_results: Iterable[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """(champion point, candidate point) pairs: consecutive points of every arm of every seed, both ways."""
    pairs = []
    for result in seed_results:
        for points in result["arms"].values():
            curve = [result["start"]] + list(points)
            for a, b in zip(curve, curve[1:]):
                pairs += [(a, b), (b, a)]
    return pairs


def _mean_difference(champion: list[float], candidate: list[float]) -> float:
    d = np.array(candidate, float) - np.array(champion, float)
    return float(np.nanmean(d)) if np.isfinite(d).any() else math.nan


def rule_report(
    pairs: list[tuple[dict, dict]], margin: float = -0.01, min_tiles: int = 15
) -> dict[str, dict[str, float]]:
    """Per rule: cycles, should-promote count, promotions, false promotion and refusal rates, agreement."""
    rules = {"sign-flip": ChampionRule(margin=margin, min_tiles=min_tiles),
             "bootstrap": ChampionRule(margin=margin, method="bootstrap", min_tiles=min_tiles)}  # fmt: skip
    decisions: dict[str, list[bool]] = {name: [] for name in [*rules, f"point estimate ({OLD_RULE_TILES} tiles)"]}
    should = []
    for champion, candidate in pairs:
        should.append(_mean_difference(champion["test_tiles"], candidate["test_tiles"]) > margin)
        ids = [str(i) for i in range(len(champion["val_expert"]))]
        for name, rule in rules.items():
            decisions[name].append(decide(dict(zip(ids, champion["val_expert"])), dict(zip(ids, candidate["val_expert"])),
                                          rule).promote)  # fmt: skip
        old_a = np.nanmean(champion["val_expert"][:OLD_RULE_TILES])
        old_b = np.nanmean(candidate["val_expert"][:OLD_RULE_TILES])
        decisions[f"point estimate ({OLD_RULE_TILES} tiles)"].append(bool(old_b >= old_a))
    truth = np.array(should, bool)
    out = {}
    for name, made in decisions.items():
        made = np.array(made, bool)
        out[name] = {
            "cycles": int(truth.size), "should_promote": int(truth.sum()), "promoted": int(made.sum()),
            "false_promotion_rate": float((made & ~truth).sum() / max((~truth).sum(), 1)),
            "false_refusal_rate": float((~made & truth).sum() / max(truth.sum(), 1)),
            "agreement": float((made == truth).mean()) if truth.size else math.nan,
        }  # fmt: skip
    return out
