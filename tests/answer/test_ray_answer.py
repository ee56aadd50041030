"""`openbook answer/eval --ray`: the readings spread over Ray actors on a real two-node cluster
(`two_nodes`: a head and a second raylet on 127.0.0.1), each actor holding SmolLM2; the answers,
the re-read decisions and the run log are the single process's."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openbook.answer import AnswerOptions
from openbook.cli.main import app
from openbook.evaluate.run import run_exam
from openbook.records import Question
from tests.conftest import TINY_MODEL, fact_exam, needs_llama_cpp

pytestmark = needs_llama_cpp

OFF_CORPUS = [  # nothing in the fact index covers these: a re-read completes their option orders
    Question(
        "off-0", "Which planet has the most moons?", {"A": "Saturn", "B": "Mars", "C": "Venus", "D": "Mercury"}, "A"
    ),
    Question(
        "off-1",
        "Which gas is a noble gas?",
        {"A": "Nitrogen", "B": "Argon", "C": "Oxygen", "D": "Hydrogen", "E": "Chlorine"},
        "B",
    ),
    Question("off-2", "What is 7 times 8?", {"A": "54", "B": "56", "C": "58", "D": "64", "E": "48"}, "B"),
]


def write_exam(path: Path, questions: list[Question]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt", "A", "B", "C", "D", "E", "answer"])
        for q in questions:
            writer.writerow([q.id, q.prompt, *(q.options.get(letter, "") for letter in "ABCDE"), q.answer])
    return path


@pytest.fixture
def exam(tmp_path) -> Path:
    return write_exam(tmp_path / "exam.csv", fact_exam(1) + OFF_CORPUS)


def options(exam: Path, fact_index: Path, out: Path) -> AnswerOptions:
    """The default cascade on SmolLM2, one thread, with a budget every re-read fits."""
    return AnswerOptions(
        exam=exam, out=out, index=fact_index, model=TINY_MODEL, threads=1, budget_seconds=1e6, progress=False
    )


def answers(out: Path) -> list[tuple]:
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return [(r["id"], r["probabilities"], r["readers"], r.get("reread"), r["ranking"]) for r in records]


def test_on_two_nodes_the_answers_are_the_single_process_ones(exam, fact_index, two_nodes, tmp_path):
    alone = run_exam(options(exam, fact_index, tmp_path / "alone"))
    assert alone.run.cluster is None
    result = CliRunner().invoke(
        app,
        [
            *("eval", str(exam), "--index", str(fact_index), "--out", str(tmp_path / "spread")),
            *("--model", TINY_MODEL, "--threads", "1", "--budget-seconds", "1e6", "--quiet"),
            *("--ray", two_nodes.address, "--ray-actors", "2"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert answers(tmp_path / "spread") == answers(tmp_path / "alone")  # every probability, bit for bit
    kinds = [reread for _, _, _, reread, _ in answers(tmp_path / "spread")]
    assert {"context", "orders"} <= set(kinds)  # both ways of re-reading went through the actors
    assert (tmp_path / "spread" / "submission.csv").read_text() == (tmp_path / "alone" / "submission.csv").read_text()
    run = json.loads((tmp_path / "spread" / "run.json").read_text())
    cluster = run["cluster"]
    assert cluster["nodes"] == 2 and cluster["actors"] == 2 and cluster["threads_per_actor"] == 1
    assert len(cluster["work"]["actors"]) == 2  # an actor on each node
    read = cluster["work"]["questions read"]
    assert len(read) == 2, read  # both nodes read questions
    # one reading measures the pace at start-up, the first pass reads every question, and each re-read one
    assert sum(read.values()) == 1 + len(kinds) + sum(kind is not None for kind in kinds)
    assert run["plan"]["cluster"] == {"address": two_nodes.address, "actors": 2, "threads": 1}


def test_a_run_stopped_on_the_cluster_resumes_there_to_the_same_answers(exam, fact_index, two_nodes, tmp_path):
    alone = run_exam(options(exam, fact_index, tmp_path / "alone"))
    spread = replace(options(exam, fact_index, tmp_path / "spread"), ray=two_nodes.address, ray_actors=2)
    first = run_exam(replace(spread, limit=3))
    assert len(first.run.results) == 3
    rest = run_exam(replace(spread, resume=True))
    assert rest.answered_before == 3 and len(rest.run.results) == len(alone.run.results) - 3
    assert answers(tmp_path / "spread") == answers(tmp_path / "alone")


def test_a_question_failing_on_an_actor_stops_the_run_as_in_one_process(fact_index, two_nodes, tmp_path):
    too_long = Question("long", "Why? " * 400, {"A": "yes", "B": "no"}, "A")
    exam = write_exam(tmp_path / "exam.csv", [*OFF_CORPUS, too_long])
    small = replace(options(exam, fact_index, tmp_path / "alone"), n_ctx=256, budget_seconds=None)
    alone = run_exam(small)
    spread = run_exam(replace(small, out=tmp_path / "spread", ray=two_nodes.address))
    assert alone.run.failure is not None and "'long'" in alone.run.failure
    assert spread.run.failure == alone.run.failure  # the reader's own error, not Ray's wrapping of it
    assert type(spread.run.error) is type(alone.run.error)
    assert len(spread.run.results) == len(alone.run.results) == 3  # the answers before it are kept
    assert answers(tmp_path / "spread") == answers(tmp_path / "alone")


def test_more_actors_than_the_cluster_has_cpus_for_is_refused_before_any_loads(exam, fact_index, two_nodes, tmp_path):
    from openbook.errors import ConfigError

    crowded = replace(options(exam, fact_index, tmp_path / "run"), ray=two_nodes.address, ray_actors=3)
    with pytest.raises(ConfigError, match="3 reading actors of 1 CPU threads need 3 CPUs; .* has 2"):
        run_exam(crowded)


def test_an_actor_killed_mid_run_is_started_again_and_the_answers_are_the_same(exam, fact_index, two_nodes, tmp_path):
    import os
    import signal
    import threading
    import time

    import psutil

    alone = run_exam(options(exam, fact_index, tmp_path / "alone"))
    log = tmp_path / "spread" / "predictions.jsonl"
    killed: list[int] = []

    def kill_an_actor_once_three_answers_are_logged() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if log.is_file() and len(log.read_text().splitlines()) >= 3:
                for process in psutil.process_iter(["pid", "cmdline"]):
                    if "ReadingActor" in " ".join(process.info["cmdline"] or []):
                        os.kill(process.info["pid"], signal.SIGKILL)
                        killed.append(process.info["pid"])
                        return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_an_actor_once_three_answers_are_logged)
    killer.start()
    spread = run_exam(replace(options(exam, fact_index, tmp_path / "spread"), ray=two_nodes.address, ray_actors=2))
    killer.join()
    assert killed, "no reading actor was found to kill"
    assert spread.run.failure is None
    assert answers(tmp_path / "spread") == answers(tmp_path / "alone")
    assert len(alone.run.results) == len(spread.run.results)
