"""Options become a plan once: the stages, the re-read rule and the budget, every mistake refused
before a model loads."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from openbook.answer import AnswerOptions, make_plan
from openbook.errors import ConfigError
from openbook.index.build import build_index


@pytest.fixture
def index(tmp_path, articles_jsonl):
    folder = tmp_path / "index"
    build_index([articles_jsonl], folder, show_progress=False)
    return folder


def test_the_default_plan_is_the_cascade(index):
    plan = make_plan(AnswerOptions(index=index))
    first, rule = plan.first, plan.reread
    assert (first.name, first.readers, first.rotations, first.context, first.output_suffix) == (
        "triage",
        ("letter",),
        3,
        None,
        "@triage",
    )
    assert rule.stage.name == "main" and rule.stage.readers == ("letter",) and rule.stage.rotations == 1
    assert rule.stage.context.retrieval == ("bm25",)  # auto, on an index without a dense part
    assert (
        rule.stage.context.tokens == 500
        and rule.stage.context.evidence == "passages"
        and rule.stage.context.passages == 8
    )
    assert rule.margin == 1.0 and rule.decided_by == "mean of both stages" and rule.shares_model
    assert rule.coverage_threshold == 0.5 and rule.completion.orders_read == 3
    assert rule.budget.total(10) == 100.0 and not plan.letter_prior
    json.dumps(plan.as_dict())  # run.json records it


def test_without_an_index_there_is_nothing_to_reread_and_one_stage():
    plan = make_plan(AnswerOptions())
    assert plan.reread is None and plan.first.name == "answer" and plan.first.context is None
    assert plan.first.rotations == 1 and plan.first.output_suffix == ""


@pytest.mark.parametrize(
    "changed",
    [
        dict(context_coverage=0.0),
        dict(context_tokens=0),
        dict(readers=["letter", "yesno"], triage_readers=["letter"]),
        dict(triage_readers=["yesno"]),
        dict(triage_model="another.gguf"),
        dict(triage_context_tokens=100),
        dict(triage_rotations=5),
    ],
)
def test_remaining_orders_are_read_only_where_the_main_stage_adds_nothing_but_context(index, changed):
    """The remaining-orders re-read replaces the triage's letter reading, so it is only taken where the
    main stage adds nothing but context to a no-context letter triage of the same model."""
    plan = make_plan(replace(AnswerOptions(index=index), **changed))
    if plan.reread is not None:
        assert plan.reread.completion is None and plan.reread.coverage_threshold is None


def test_the_main_stage_may_add_a_reader_and_still_complete_the_orders(index):
    plan = make_plan(AnswerOptions(index=index, readers=["letter", "yesno"]))
    assert plan.reread.completion is not None and plan.first.readers == ("letter", "yesno")


def test_a_fitted_ensemble_decides_and_every_reread_reads_context(index, tmp_path):
    plan = make_plan(AnswerOptions(index=index, ensemble=tmp_path / "ensemble.json"))
    assert plan.reread is None  # `auto` triage stands aside for an ensemble fitted on particular readers
    plan = make_plan(AnswerOptions(index=index, ensemble=tmp_path / "e.json", triage_readers=["letter"]))
    assert plan.reread.decided_by == "ensemble" and plan.reread.completion is None


def test_a_different_triage_model_is_loaded_apart(index):
    plan = make_plan(AnswerOptions(index=index, triage_model="smollm2-135m-instruct"))
    assert plan.first.model.name == "smollm2-135m-instruct" and not plan.reread.shares_model


@pytest.mark.parametrize(
    "changed, message",
    [
        (dict(triage_readers=["none"], budget_seconds=5.0), "needs triage readers"),
        (dict(budget_seconds=5.0, budget_per_question=1.0), "give the cascade's budget once"),
        (dict(context_coverage=1.5), "--context-coverage must be 0-1"),
        (dict(budget_seconds=math.nan), "--budget-seconds must be a number >= 0"),
        (dict(budget_per_question=-1.0), "--budget-per-question must be >= 0"),
        (dict(rotations=6), "--rotations must be 1-5"),
        (dict(passages=0), "--passages must be >= 1"),
        (dict(limit=0), "--limit must be >= 1"),
        (dict(readers=["letters"]), "unknown reader 'letters'"),
        (dict(readers=["letter", "letter"]), "names a reader twice"),
        (dict(readers=["encoder"]), "needs a model: pass --encoder"),
        (dict(adapter="lora"), "need the transformers backend"),
        (dict(dense_engine="annoy"), "unknown dense engine"),
        (dict(retrieval=["bm25", "bm25/joint"]), "names the pipeline bm25 twice"),
        (dict(retrieval=["bm26"]), "unknown retriever"),
    ],
)
def test_mistakes_are_refused_when_planning(index, changed, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make_plan(replace(AnswerOptions(index=index), **changed))


def test_a_budget_without_anything_to_reread_is_said_not_ignored():
    with pytest.raises(ConfigError, match="has none"):
        make_plan(AnswerOptions(budget_seconds=10.0))


def test_an_infinite_budget_is_no_limit(index):
    plan = make_plan(AnswerOptions(index=index, budget_seconds=math.inf))
    assert plan.reread.budget.total(3) == math.inf and plan.reread.budget.describe() == "no limit"


def test_the_plan_describes_itself(index):
    text = make_plan(AnswerOptions(index=index)).describe()
    assert text.splitlines()[0].startswith(
        "stage 1: triage - letter in up to 3 option orders on qwen2.5-coder-1.5b-instruct"
    )
    assert "stage 2: main - letter in 1 option order" in text and "context: bm25, 8 passages packed into 500" in text
    assert "budget: 10 s per question of the run, every reading costed in the prompt tokens" in text
    assert "first pass: within 60% of the budget, every question 1 option order, then a 2nd, up to 3" in text
    assert "smallest first, each where its own cost fits the budget left" in text
    assert "routing: context where one packed passage holds >= 0.5" in text and "(up to 5) without context" in text
