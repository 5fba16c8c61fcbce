"""Questionnaire config, answers and their join to sessions; learning-curve tables."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest

from label_config import load_catalogue
from label_config.generate import validate_config
from tracking_analysis.learning_curve import implicit_vs_explicit, read_learning_curve, validate
from tracking_analysis.questionnaire import CONFIG_PATH, answers_frame, joined, match_sessions, summary
from tracking_analysis.snapshot import QuestionnaireAnswer, questionnaire_answer


def test_questionnaire_config_is_valid_and_offers_the_catalogue_minerals():
    xml = CONFIG_PATH.read_text()
    validate_config(xml)
    hardest = xml.split('<Choices name="hardest"')[1].split("</Choices>")[0]
    assert re.findall(r'<Choice value="([^"]+)"', hardest) == list(load_catalogue().names)
    assert [m for m in re.findall(r'<Rating name="(\w+)"', xml)] == ["usefulness", "trust", "effort"]


def test_questionnaire_answer_from_label_studio_result():
    annotation = {
        "id": 9,
        "created_at": "2026-01-05T10:30:00Z",
        "lead_time": 61.5,
        "completed_by": {"id": 3, "email": "x@example.org"},
        "result": [
            {"from_name": "usefulness", "type": "rating", "value": {"rating": 4}},
            {"from_name": "hardest", "type": "choices", "value": {"choices": ["Olivine", "Plagioclase"]}},
            {"from_name": "comments", "type": "textarea", "value": {"text": ["too many", "laths"]}},
        ],
    }
    answer = questionnaire_answer(annotation, {"id": 2, "data": {"session": "..."}}, b"k" * 32)
    assert answer.answers == {"usefulness": 4, "hardest": ["Olivine", "Plagioclase"], "comments": "too many\nlaths"}
    assert answer.annotator.startswith("u-") and "x@example.org" not in json.dumps(vars(answer))
    assert (answer.task, answer.lead_time, answer.session_key) == (2, 61.5, None)


def answer(i, who, when, session_key=None, **answers):
    return QuestionnaireAnswer(i, 1, who, f"2026-01-05T{when}Z", 60.0, answers, session_key)


SESSIONS = pd.DataFrame(
    [
        {"session": "a/p1/early", "annotator": "a", "start_ts": 1000.0, "end_ts": 2000.0},
        {"session": "a/p1/late", "annotator": "a", "start_ts": 5000.0, "end_ts": 6000.0},
        {"session": "b/p1/only", "annotator": "b", "start_ts": 1000.0, "end_ts": 2000.0},
    ]
)


def test_answers_match_the_latest_ended_session_of_the_same_annotator():
    base = pd.Timestamp("2026-01-05T00:00:00Z").timestamp()
    sessions = SESSIONS.assign(start_ts=SESSIONS["start_ts"] + base, end_ts=SESSIONS["end_ts"] + base)
    answers = answers_frame(
        [
            answer(1, "a", "01:00:00", usefulness=3),  # t=3600: after "early" ended, before "late" started
            answer(2, "a", "01:45:00", usefulness=5),  # t=6300: after "late"
            answer(3, "b", "01:00:00", usefulness=2, hardest=["Olivine"]),
            answer(4, "c", "01:00:00", usefulness=1),  # no session of c
            answer(5, "b", "01:00:00", session_key="a/p1/early", trust=4),  # an explicit key wins
        ]
    )
    assert match_sessions(answers, sessions).tolist() == ["a/p1/early", "a/p1/late", "b/p1/only", None, "a/p1/early"]
    assert match_sessions(answers, sessions, window=600).tolist() == [None, "a/p1/late", None, None, "a/p1/early"]
    indicators = pd.DataFrame({"session": ["a/p1/early", "a/p1/late", "b/p1/only"], "acceptance_rate": [0.1, 0.2, 0.3]})
    table = joined(answers, sessions, indicators)
    # two answers for a/p1/early at the same time: the later one (higher id, answer 5) wins
    assert table["session"].tolist() == ["a/p1/early", "a/p1/late", "b/p1/only"]
    assert table["acceptance_rate"].tolist() == [0.1, 0.2, 0.3]
    assert table["usefulness"].tolist()[1:] == [5.0, 2.0] and table["trust"].tolist()[0] == 4.0


def test_questionnaire_summary():
    answers = answers_frame(
        [
            answer(1, "a", "01:00:00", usefulness=4, effort=2, hardest=["Olivine", "Plagioclase"], comments="fine"),
            answer(2, "b", "01:00:00", usefulness=5, hardest=["Plagioclase"], most_time=["Small crystals"]),
        ]
    )
    out = summary(answers)
    assert out["answers"] == 2
    assert out["ratings"]["usefulness"] == {
        "answered": 2,
        "mean": 4.5,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1},
    }
    assert out["ratings"]["trust"]["answered"] == 0 and math.isnan(out["ratings"]["trust"]["mean"])
    assert out["choices"] == {"hardest": {"Plagioclase": 2, "Olivine": 1}, "most_time": {"Small crystals": 1}}
    assert out["comments"] == ["fine"]


CURVE = [
    {"n_labelled_tiles": 8, "mIoU": 0.5, "strategy": "entropy", "label_kind": "implicit"},
    {"n_labelled_tiles": 8, "mIoU": 0.6, "strategy": "entropy", "label_kind": "explicit"},
    {"n_labelled_tiles": 16, "mIoU": 0.7, "strategy": "entropy", "label_kind": "implicit", "seed": 0},
    {"n_labelled_tiles": 16, "mIoU": 0.6, "strategy": "entropy", "label_kind": "implicit", "seed": 1},
    {"n_labelled_tiles": 16, "mIoU": 0.8, "strategy": "entropy", "label_kind": "Explicit"},
    {"n_labelled_tiles": 8, "mIoU": 0.4, "strategy": "random", "label_kind": "implicit"},
]


def test_learning_curve_from_json_and_csv(tmp_path):
    (tmp_path / "curve.json").write_text(json.dumps({"rows": CURVE}))
    pd.DataFrame(CURVE).to_csv(tmp_path / "curve.csv", index=False)
    for name in ("curve.json", "curve.csv"):
        table = implicit_vs_explicit(read_learning_curve(tmp_path / name))
        assert table[["strategy", "n_labelled_tiles"]].values.tolist() == [["entropy", 8], ["entropy", 16]]
        assert table["implicit"].tolist() == pytest.approx([0.5, 0.65]) and table["explicit"].tolist() == [0.6, 0.8]
        assert table["ratio"].tolist() == pytest.approx([0.5 / 0.6, 0.65 / 0.8])  # random has no explicit run


def test_learning_curve_errors(tmp_path):
    with pytest.raises(ValueError, match="lacks column.*label_kind"):
        validate(pd.DataFrame([{"n_labelled_tiles": 1, "mIoU": 0.5, "strategy": "x"}]))
    with pytest.raises(ValueError, match="'weak' is not one of implicit, explicit"):
        validate(pd.DataFrame([{**CURVE[0], "label_kind": "weak"}]))
    with pytest.raises(ValueError, match=r"mIoU must lie in \[0, 1\]"):
        validate(pd.DataFrame([{**CURVE[0], "mIoU": 55.0}]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(OSError, match="cannot read learning curve"):
        read_learning_curve(tmp_path / "bad.json")
