"""The writer's grammar path with the smallest shipped model: whatever SmolLM2-135M writes, a reply
it finishes parses into a question with five options and a letter, and the same seed writes the same
draft; and `openbook generate` end to end on the fact index."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openbook.cli.main import app
from openbook.generate.filters import REASONS, Draft, parse_draft
from openbook.generate.run import attempts_path
from openbook.records import Passage
from tests.conftest import ARTICLES, TINY_MODEL

pytest.importorskip("llama_cpp", reason="the writer runs on llama.cpp (pip install -e .[dev])")


@pytest.fixture(scope="module")
def writer(tiny_llm):  # noqa: ARG001  (the tiny model pulled)
    from openbook.generate.writer import QuestionWriter

    return QuestionWriter(TINY_MODEL)


def test_every_finished_reply_parses_and_a_seed_writes_the_same_draft(writer):
    passages = [Passage(pid, pid, title, text) for pid, title, text in ARTICLES[:3]]
    for passage in passages:
        written = writer.write(passage, seed=7)
        assert written.finished and written.tokens > 0, written.text
        assert isinstance(parse_draft(written.text), Draft), written.text
    again = writer.write(passages[0], seed=7)
    assert again.text == writer.write(passages[0], seed=7).text


def test_generate_through_the_command(fact_index, tiny_llm, tmp_path):  # noqa: ARG001
    out = tmp_path / "generated.csv"
    like = tmp_path / "like.csv"
    like.write_text("id,prompt,A,B\nq1,Which organelle makes ATP?,mitochondrion,nucleus\n")
    command = ["generate", "--index", str(fact_index), "--out", str(out), "-n", "3", "--model", TINY_MODEL]
    command += ["--like", str(like), "--max-attempts", "2", "--quiet"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    lines = attempts_path(out).read_text().splitlines()
    assert json.loads(lines[0])["settings"]["model"] == TINY_MODEL and len(lines) == 3
    outcomes = [json.loads(line)["outcome"] for line in lines[1:]]
    assert all(o in REASONS or o.startswith("accepted") for o in outcomes)
    assert "2 drafts" in " ".join(result.output.split())
    both = ["generate", "--index", str(fact_index), "--out", str(tmp_path / "x.csv"), "--like", str(like)]
    refused = CliRunner().invoke(app, [*both, "--topics", str(like)])
    assert refused.exit_code == 2 and "not both" in refused.output
