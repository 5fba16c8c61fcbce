"""The post-session questionnaire (``label_config/questionnaire.xml``): answers, summary, join to sessions.

``scraiber up`` creates the Label Studio project "scrAiber session questionnaire" with one
template task (:func:`scraiber.stack.bootstrap_questionnaire`); an annotator adds one
annotation to it after each labelling session. An answer is joined to a session of the
analysed project (:mod:`tracking_analysis.sessions`) thus:

1. if its task carries ``data.session_key`` (a task made for one session), to that session;
2. else to the **latest session of the same annotator** (pseudonym) that ended at most
   ``window`` seconds (default 24 h) before the answer was submitted; answers given during
   a session (before its end) count for that session.

Answers that match no session stay in the summary but not in the per-annotator table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from active_learning.harvest_log import timestamp
from label_config.generate import CONFIG_DIR
from tracking_analysis.snapshot import QuestionnaireAnswer

CONFIG_PATH = CONFIG_DIR / "questionnaire.xml"
RATINGS = ("usefulness", "trust", "effort")
CHOICES = ("hardest", "most_time")
TEXT = "comments"
DEFAULT_WINDOW_SECONDS = 24 * 3600.0


def answers_frame(answers: Sequence[QuestionnaireAnswer]) -> pd.DataFrame:
    """One row per answer: ``answer_id``, ``annotator``, ``submitted_ts``, ``session_key``, the
    ratings (NaN if unanswered), the choices (lists) and ``comments``."""
    rows = []
    for a in answers:
        row = {
            "answer_id": a.id,
            "annotator": a.annotator,
            "submitted_ts": timestamp(a.created_at),
            "session_key": a.session_key,
            **{name: float(a.answers[name]) if name in a.answers else np.nan for name in RATINGS},
            **{name: list(a.answers.get(name) or []) for name in CHOICES},
            TEXT: a.answers.get(TEXT, ""),
        }
        rows.append(row)
    columns = ["answer_id", "annotator", "submitted_ts", "session_key", *RATINGS, *CHOICES, TEXT]
    return pd.DataFrame(rows, columns=columns)


def match_sessions(answers: pd.DataFrame, sessions: pd.DataFrame, window: float = DEFAULT_WINDOW_SECONDS) -> pd.Series:
    """The session key each answer belongs to (None: none), by the rules of the module docstring.

    Args:
        answers: :func:`answers_frame`.
        sessions: :func:`tracking_analysis.sessions.session_table`.
        window: Seconds after a session's end within which an answer still refers to it.
    """
    keys = set(sessions["session"])
    matched = []
    for _, answer in answers.iterrows():
        if answer["session_key"] in keys:
            matched.append(answer["session_key"])
            continue
        own = sessions[
            (sessions["annotator"] == answer["annotator"])
            & (sessions["start_ts"] <= answer["submitted_ts"])
            & (sessions["end_ts"] >= answer["submitted_ts"] - window)
        ]
        matched.append(own.sort_values("end_ts")["session"].iloc[-1] if len(own) else None)
    return pd.Series(matched, index=answers.index, dtype=object)


def summary(answers: pd.DataFrame) -> dict:
    """Answers count, mean and distribution (1-5) of each rating, choice counts (most first), comments."""
    out: dict = {"answers": int(len(answers)), "ratings": {}, "choices": {}, "comments": []}
    for name in RATINGS:
        values = answers[name].dropna()
        out["ratings"][name] = {
            "answered": int(len(values)),
            "mean": float(values.mean()) if len(values) else float("nan"),
            "distribution": {str(k): int((values == k).sum()) for k in range(1, 6)},
        }
    for name in CHOICES:
        counts = Counter(choice for chosen in answers[name] for choice in chosen)
        out["choices"][name] = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    out["comments"] = [text for text in answers[TEXT] if text]
    return out


def joined(
    answers: pd.DataFrame, sessions: pd.DataFrame, indicators: pd.DataFrame, window: float = DEFAULT_WINDOW_SECONDS
) -> pd.DataFrame:
    """Per-session indicators beside the questionnaire answer of that session.

    Args:
        answers: :func:`answers_frame`.
        sessions: :func:`tracking_analysis.sessions.session_table`.
        indicators: :func:`tracking_analysis.indicators.summary` grouped by ``session``.
        window: See :func:`match_sessions`.

    Returns:
        One row per session with an answer: ``session``, ``annotator``, the ratings and
        choices, and the session's indicators (the latest answer wins if there are several).
    """
    with_keys = answers.assign(session=match_sessions(answers, sessions, window)).dropna(subset=["session"])
    latest = with_keys.sort_values(["submitted_ts", "answer_id"]).drop_duplicates("session", keep="last")
    table = latest[["session", "annotator", *RATINGS, *CHOICES, TEXT]].merge(indicators, on="session", how="left")
    return table.sort_values("session").reset_index(drop=True)
