"""The answer path end to end on the smallest shipped model (SmolLM2-135M on llama.cpp): a run into
its folder, several contexts per question, a failing question, the default cascade, and a cascade
whose triage pass is an encoder reader."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from openbook.models import MODELS, ModelStore
from openbook.readers import LetterReader
from openbook.records import Context, Question, Reread
from tests.conftest import QUESTION, TINY_MODEL, article_text, fact_exam, read


@pytest.fixture
def backend(tiny_llm):
    return tiny_llm


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
    articles = [article_text(title) for title in ("Photosynthesis", "Mitochondrion", "Plate tectonics")]
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


def triage_margin(probabilities) -> float:
    top = sorted(probabilities.values(), reverse=True)
    return top[0] - top[1]


def test_cascade_escalates_the_hardest_questions_within_the_budget(trained_encoder, fact_index, tmp_path):
    """An encoder reader (fine-tuned once per session) triages; the letter reader on the tiny model
    re-reads the hardest questions within the budget."""
    pytest.importorskip("llama_cpp")
    from openbook.answer import AnswerOptions, execute, make_plan
    from openbook.answer.decide import margin
    from openbook.ensemble import Ensemble
    from openbook.errors import ConfigError
    from openbook.records import FRESH_RUN, EarlierRun

    trained, index = trained_encoder, fact_index
    ModelStore().pull(MODELS["smollm2-135m-instruct"], log=lambda _: None)
    questions = fact_exam(1)
    base = AnswerOptions(
        index=index,
        readers=["encoder"],
        encoder=str(trained[0]),
        encoder_tokens=96,
        context_tokens=48,
        model="smollm2-135m-instruct",
        n_ctx=1024,
        triage_readers=[],
        progress=False,
    )

    def answer(options: AnswerOptions, earlier: EarlierRun = FRESH_RUN):
        return execute(make_plan(options), questions, earlier=earlier)

    cheap = answer(base)
    margins = {r.question.id: margin(r.prediction) for r in cheap.results}
    alone = {r.question.id: r.prediction.probabilities for r in cheap.results}
    threshold = sorted(margins.values())[3]  # the three hardest questions
    # the encoder triages (same context as alone), the letter reader re-reads the hardest
    cascade = replace(base, readers=["letter"], triage_readers=["encoder"], triage_context_tokens=48)
    run = answer(replace(cascade, escalate_margin=threshold, budget_seconds=math.inf))
    escalated = {r.question.id for r in run.results if len(r.outputs) == 2}
    assert escalated == {qid for qid, m in margins.items() if m < threshold} and len(escalated) == 3
    assert run.cascade.reread == 3 and run.cascade.readers == ("letter",)
    assert run.cascade.budget_seconds is None  # inf: the margin alone decides
    assert run.reader_names == ("encoder@triage", "letter")  # whichever questions were re-read
    main_decides = answer(replace(cascade, escalate_margin=threshold, budget_seconds=math.inf, average_stages=False))
    for result, by_main in zip(run.results, main_decides.results, strict=True):
        assert result.outputs[0].reader == "encoder@triage"
        if result.question.id in escalated:  # unfitted, the mean of both stages decides, or the main reader alone
            triage, main = (output.probabilities for output in result.outputs)
            assert result.prediction.probabilities == pytest.approx({k: (triage[k] + main[k]) / 2 for k in main})
            assert by_main.prediction.probabilities == pytest.approx(by_main.outputs[1].probabilities)
            assert by_main.prediction.probabilities != pytest.approx(result.prediction.probabilities)
        else:
            assert result.prediction.probabilities == pytest.approx(result.outputs[0].probabilities)
            assert result.prediction.probabilities == pytest.approx(alone[result.question.id])
            assert by_main.prediction.probabilities == pytest.approx(result.prediction.probabilities)
    assert run.model_paths == {"triage": str(trained[0]), "main": run.model_paths["main"]}  # the encoder's folder
    assert run.model_paths["main"].endswith(".gguf")
    # a budget the triage pass has spent: the main stage is not even loaded
    tight = answer(replace(cascade, budget_seconds=0.001))
    assert tight.cascade.reread == 0 and tight.cascade.stopped_by_budget
    assert tight.model_paths["main"] is None
    per_question = answer(replace(cascade, budget_per_question=1e-6))
    assert per_question.cascade.budget_seconds == pytest.approx(len(questions) * 1e-6)
    assert per_question.cascade.reread == 0
    # resumed: the questions earlier runs answered count in the budget, and so does the time they took
    resumed = replace(cascade, escalate_margin=threshold, budget_per_question=1000.0)
    answered = frozenset(q.id for q in questions[:2])
    ample = answer(resumed, EarlierRun(answered=answered, seconds=10.0))
    assert ample.cascade.budget_seconds == pytest.approx(1000.0 * len(questions))
    assert ample.cascade.reread > 0 and len(ample.results) == len(questions) - 2
    answering = ample.seconds.total - ample.seconds.load_model  # s/question over the whole run
    assert ample.seconds.per_question == pytest.approx((10.0 + answering) / len(questions))
    spent = answer(resumed, EarlierRun(seconds=1000.0 * len(questions)))
    assert spent.cascade.reread == 0 and spent.cascade.stopped_by_budget
    assert spent.cascade.earlier_runs_seconds == 1000.0 * len(questions)
    with pytest.raises(ConfigError, match="budget once"):
        make_plan(replace(cascade, budget_seconds=1.0, budget_per_question=1.0))
    with pytest.raises(ConfigError, match=">= 0"):
        make_plan(replace(cascade, budget_seconds=math.nan))
    # a fitted ensemble decides the re-read questions; the triage outputs it was not fitted on are averaged
    ensemble = tmp_path / "ensemble.json"
    Ensemble("weighted", ["letter"], temperatures={"letter": 2.0}, weights={"letter": 1.0}).save(ensemble)
    fitted = answer(replace(cascade, escalate_margin=threshold, budget_seconds=math.inf, ensemble=ensemble))
    for result in fitted.results:
        assert result.prediction.calibrated == (result.question.id in escalated)
        if result.question.id not in escalated:
            assert result.prediction.probabilities == pytest.approx(alone[result.question.id])
    # a main stage that cannot load stops the run with every triage answer kept
    broken = answer(replace(cascade, model=str(tmp_path / "missing.gguf"), triage_model="smollm2-135m-instruct"))
    assert broken.failure.startswith("loading the main stage") and len(broken.results) == len(questions)
    # the main stage would read nothing new: no cascade
    same = replace(base, triage_readers=["encoder"], triage_context_tokens=48)
    assert not make_plan(same).is_cascade
    same_run = execute(make_plan(same), questions[:2])
    assert same_run.cascade is None and [o.reader for o in same_run.results[0].outputs] == ["encoder"]
