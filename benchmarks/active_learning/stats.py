"""The benchmark's statistics, as pre-registered in docs/active-learning.md.

* **Budget to reach a target** (:func:`budget_to_reach`): the curve (metric against log2 budget)
  is made monotone by an isotonic fit, and the first crossing of the target is interpolated
  linearly in log2 budget between the two points around it. Not reached within the schedule:
  censored (``math.inf``).
* **Label efficiency** (:func:`efficiency`): per seed, ``log(random budget / strategy budget)``
  with the pre-registered censoring rule: a censored random budget counts as the largest budget
  (the ratio is then underestimated), a censored strategy budget as twice it, both censored as a
  ratio of 1. Geometric-mean ratio with a 95 % percentile bootstrap interval over seeds, and a
  one-sided Wilcoxon signed-rank test (H1: ratio > 1; zero differences split). The claim "at
  least 2x" needs the geometric mean >= 2 and the interval's lower end > 1.
* **Area under the curve** (:func:`normalised_auc`): mean of the metric over the log2 budget
  axis (trapezoids), divided by the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import wilcoxon
from sklearn.isotonic import IsotonicRegression

from ml_backend.metrics import bootstrap_interval


def isotonic(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Non-decreasing least-squares fit of ``y`` over increasing ``x``."""
    return IsotonicRegression(increasing=True).fit_transform(np.asarray(x, float), np.asarray(y, float))


def budget_to_reach(budgets: Sequence[float], values: Sequence[float], target: float) -> float:
    """Smallest budget at which the isotonic fit reaches ``target`` (log-linear interpolation); inf if never."""
    b = np.asarray(budgets, float)
    if b.size == 0:
        return math.inf
    fitted = isotonic(np.log2(b), values)
    above = np.flatnonzero(fitted >= target - 1e-12)
    if not above.size:
        return math.inf
    i = int(above[0])
    if i == 0:
        return float(b[0])
    x0, x1, y0, y1 = math.log2(b[i - 1]), math.log2(b[i]), fitted[i - 1], fitted[i]
    return float(2 ** (x0 + (target - y0) / (y1 - y0) * (x1 - x0)))


def normalised_auc(budgets: Sequence[float], values: Sequence[float], reference: float) -> float:
    """Mean metric over the log2 budget axis (trapezoids), as a share of ``reference``."""
    x, y = np.log2(np.asarray(budgets, float)), np.asarray(values, float)
    if x.size < 2:
        return float(y.mean() / reference) if y.size else math.nan
    return float(np.trapezoid(y, x) / (x[-1] - x[0]) / reference)


def censored_log_ratio(random_budget: float, strategy_budget: float, largest: float) -> float:
    """``log(random / strategy)`` under the pre-registered censoring rule (see the module docstring)."""
    if math.isinf(random_budget) and math.isinf(strategy_budget):
        return 0.0
    r = largest if math.isinf(random_budget) else random_budget
    s = 2 * largest if math.isinf(strategy_budget) else strategy_budget
    return math.log(r / s)


def efficiency(
    random_budgets: Sequence[float], strategy_budgets: Sequence[float], largest: float, n_boot: int = 10000
) -> dict[str, float]:
    """Paired label-efficiency statistics over seeds (see the module docstring).

    Returns:
        ``geometric_mean_ratio``, ``ci_low``, ``ci_high`` (95 % bootstrap over seeds), ``wilcoxon_p``
        (one-sided), ``seeds``, ``censored_random``, ``censored_strategy``, ``claim_2x`` (0/1).
    """
    logs = np.array([censored_log_ratio(r, s, largest) for r, s in zip(random_budgets, strategy_budgets)])
    if not logs.size:
        return {"seeds": 0}
    low, high = bootstrap_interval(logs.size, lambda i: float(logs[i].mean()), n_boot, 0.95, seed=1)
    p = float(wilcoxon(logs, alternative="greater", zero_method="zsplit").pvalue) if np.any(logs != 0) else 1.0
    gm = float(math.exp(logs.mean()))
    return {
        "seeds": int(logs.size), "geometric_mean_ratio": gm, "ci_low": math.exp(low), "ci_high": math.exp(high),
        "wilcoxon_p": p, "censored_random": int(sum(math.isinf(r) for r in random_budgets)),
        "censored_strategy": int(sum(math.isinf(s) for s in strategy_budgets)),
        "claim_2x": int(gm >= 2 and math.exp(low) > 1),
    }  # fmt: skip


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (family-wise error over the secondary comparisons)."""
    order = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[name]))
        adjusted[name] = running
    return adjusted
