"""Query strategies: scorers (per-task informativeness, stored) and selectors (ranking stored scores).

    from active_learning.strategies import create_scorer, create_selector

    scorer = create_scorer("entropy")   # or "margin", "mc-dropout", "random", "top-k-entropy",
                                        # "class-weighted-entropy", "ensemble", "cost-aware"
    value = scorer.score(image, segmenter, probs)        # probs reused when given
    batch = create_selector("diverse", diversity=0.5).select(scored_tasks, k=10)   # or "top-k", "badge"

To add one, implement :class:`Scorer` or :class:`Selector` in its own module and add a
``name: "module:Class"`` line to the registry below; classes are imported when asked for.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any

from active_learning.strategies.base import ScoredTask, Scorer, Selector

_SCORERS: dict[str, str] = {
    "entropy": "active_learning.strategies.entropy:EntropyScorer",
    "margin": "active_learning.strategies.margin:MarginScorer",
    "mc-dropout": "active_learning.strategies.mc_dropout:MCDropoutScorer",
    "random": "active_learning.strategies.random:RandomScorer",
    "top-k-entropy": "active_learning.strategies.top_k_entropy:TopFractionEntropyScorer",
    "class-weighted-entropy": "active_learning.strategies.class_weighted:ClassWeightedEntropyScorer",
    "ensemble": "active_learning.strategies.ensemble:EnsembleScorer",
    "cost-aware": "active_learning.strategies.cost_aware:CostAwareScorer",
}
_SELECTORS: dict[str, str] = {
    "top-k": "active_learning.strategies.top_k:TopKSelector",
    "diverse": "active_learning.strategies.diversity:DiverseSelector",
    "badge": "active_learning.strategies.badge:BadgeSelector",
}

__all__ = [
    "ScoredTask", "Scorer", "Selector", "create_scorer", "create_selector", "scorer_names", "selector_names",
]  # fmt: skip


def scorer_names() -> list[str]:
    """Names of the registered scorers (query strategies), sorted."""
    return sorted(_SCORERS)


def selector_names() -> list[str]:
    """Names of the registered selectors, sorted."""
    return sorted(_SELECTORS)


def _create(registry: dict[str, str], kind: str, kinds: str, name: str, options: dict[str, Any]) -> Any:
    try:
        module, _, attribute = registry[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; valid {kinds}: {', '.join(sorted(registry))}") from None
    cls = getattr(import_module(module), attribute)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ValueError(f"{kind} {name!r} does not accept these options ({exc})") from None
    return cls(**options)


def create_scorer(name: str, **options: Any) -> Scorer:
    """The scorer (query strategy) ``name`` built with keyword ``options``.

    Raises:
        ValueError: for an unknown name (listing the valid ones) or option.
    """
    return _create(_SCORERS, "query strategy", "query strategies", name, options)


def create_selector(name: str, **options: Any) -> Selector:
    """The selector ``name`` built with keyword ``options``.

    Raises:
        ValueError: for an unknown name (listing the valid ones) or option.
    """
    return _create(_SELECTORS, "selector", "selectors", name, options)
