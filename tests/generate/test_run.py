"""The generation run on a scripted writer and a scripted reader: every draft's outcome counted with
its reason, answers spread over A-E, the exam file in the Kaggle layout with context and source, and
a stopped run resumed to what an uninterrupted one writes."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import pytest

from openbook.errors import ConfigError
from openbook.exam import read_exam
from openbook.generate import GenerateSettings, generate
from openbook.generate.filters import (
    ACCEPTED,
    DUPLICATE_OPTIONS,
    KEY_DISAGREES,
    MALFORMED,
    NEAR_DUPLICATE_QUESTION,
    TOO_EASY,
    ReaderChecks,
)
from openbook.generate.run import attempts_path
from openbook.generate.writer import Written
from openbook.records import LETTERS, Passage
from tests.scripted_backend import ScriptedBackend

TOPICS = ["argon", "boron", "carbon", "neon", "sodium", "xenon", "helium", "iron", "zinc", "lead"]


def reply(topic: str, **changes: object) -> str:
    options = {letter: f"{topic} option {letter.lower()} {n}" for n, letter in enumerate(LETTERS)}
    body = {"question": f"Which property of {topic} does the passage give first?", **options, "answer": "A"}
    return json.dumps({**body, **changes})


# per passage: what the writer replies (the passage's topic decides it)
SCRIPT = {
    "argon": reply("argon"),
    "boron": "{cut off",  # a reply cut at the token limit
    "carbon": reply("carbon", B="carbon option a 0"),  # B repeats A
    "neon": reply("argon"),  # the argon question again
    "sodium": reply("sodium", answer="C"),  # the reader, shown the passage, picks A
    "xenon": reply("xenon", question="Which xenon fact is common knowledge?"),  # answered without the passage
    "helium": reply("helium"),
    "iron": reply("iron"),
    "zinc": reply("zinc"),
    "lead": reply("lead"),
}


@dataclass
class ScriptedWriter:
    """Writes the scripted reply for a passage's topic; counts its calls."""

    calls: int = 0

    def write(self, passage: Passage, seed: int) -> Written:
        self.calls += 1
        text = SCRIPT[passage.title]
        return Written(text, finished=not text.startswith("{cut"), tokens=len(text.split()), seconds=0.0)


def score(prompt: str, option: str, with_context: bool) -> float:
    """The reader picks each question's option a with the passage, and without it only for xenon."""
    right = " option a " in option
    return 3.0 if right and (with_context or prompt.startswith("Which xenon")) else 0.0


PASSAGES = [Passage(f"p{n}", f"d{n}", topic, f"{topic.title()} is an element. " * 5) for n, topic in enumerate(TOPICS)]


def run(out, count=10, **settings):
    checks = ReaderChecks(ScriptedBackend(score=score))
    writer = ScriptedWriter()
    report = generate(GenerateSettings(count=count, **settings), PASSAGES, writer, checks, out, progress=False)  # type: ignore[arg-type]
    return report, writer


def test_every_draft_is_counted_with_its_reason_and_the_kept_are_an_exam(tmp_path):
    out = tmp_path / "questions.csv"
    report, _ = run(out, keep_easy=0.0)
    assert dict(report.outcomes) == {
        ACCEPTED: 5,
        MALFORMED: 1,
        DUPLICATE_OPTIONS: 1,
        NEAR_DUPLICATE_QUESTION: 1,
        KEY_DISAGREES: 1,
        TOO_EASY: 1,
    }
    assert report.kept == 5 and report.acceptance == pytest.approx(0.5) and report.passages_left == 0
    exam = read_exam(out)
    assert [q.id for q in exam] == [f"gen-{n:05d}" for n in range(1, 6)]
    assert sorted(q.answer for q in exam) == list(LETTERS)  # one answer per letter
    for question in exam:
        assert " option a " in question.options[question.answer]  # the right text moved with its letter
        source = next(p for p in PASSAGES if p.id == question.extra["source"])
        assert question.extra["context"] == source.text and source.title in question.prompt
    with out.open(newline="") as table:
        assert next(csv.reader(table)) == ["id", "prompt", *LETTERS, "answer", "context", "source"]


def test_a_share_of_the_too_easy_is_kept_and_said(tmp_path):
    report, _ = run(tmp_path / "q.csv", keep_easy=1.0)
    assert report.outcomes["accepted, too easy but kept"] == 1 and TOO_EASY not in report.outcomes


def test_a_stopped_run_resumes_at_the_next_passage_to_the_same_exam(tmp_path):
    whole = tmp_path / "whole.csv"
    _, uninterrupted = run(whole, count=4)
    parts = tmp_path / "parts.csv"
    _, first = run(parts, count=4, max_attempts=3)
    assert first.calls == 3 and len(read_exam(parts)) == 1
    with attempts_path(parts).open("a") as log:
        log.write('{"passage": "p3", "outc')  # a stop in mid-line: that attempt is made again
    _, second = run(parts, count=4, max_attempts=3)
    _, third = run(parts, count=4)
    assert first.calls + second.calls + third.calls == uninterrupted.calls  # no passage tried twice
    assert parts.read_text() == whole.read_text()
    logged = [json.loads(line).get("passage") for line in attempts_path(parts).read_text().splitlines()[1:]]
    assert logged == [f"p{n}" for n in range(uninterrupted.calls)]


def test_other_settings_or_a_foreign_file_are_refused_not_mixed(tmp_path):
    out = tmp_path / "q.csv"
    run(out, count=2)
    with pytest.raises(ConfigError, match="other settings \\(seed\\)"):
        run(out, count=2, seed=1)
    foreign = tmp_path / "mine.csv"
    foreign.write_text("id,prompt\n")
    with pytest.raises(ConfigError, match="was not written by `openbook generate`"):
        run(foreign)
    assert foreign.read_text() == "id,prompt\n"
