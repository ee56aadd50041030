"""Retrieval beyond BM25: fusion, query forms, rerankers, pipeline specs and source-passage evaluation.

Everything here runs without an embedding model; `test_dense_retrieval.py` uses a real one."""

from __future__ import annotations

import json

import pytest

from openbook.errors import ConfigError, OpenbookError
from openbook.evaluate.retrieval import score_ranks
from openbook.index.build import build_index
from openbook.records import Hit, Passage, Question
from openbook.retrieve import Retrieval, RetrievalSpec
from openbook.retrieve.fusion import HybridRetriever, reciprocal_rank_fusion, weighted_score_fusion
from openbook.retrieve.query import joint_query, option_queries, queries_for, search_questions
from openbook.retrieve.rerank import EditDistanceReranker
from openbook.retrieve.source import first_source_rank, overlap_with_source

QUESTION = Question(id="q", prompt="What do green plants release?", options={"A": "oxygen", "B": "argon", "D": "neon"})


def hits(*ids_scores, retriever="x"):
    return [
        Hit(Passage(pid, pid, "", f"text {pid}"), score, rank, retriever)
        for rank, (pid, score) in enumerate(ids_scores)
    ]


def ids(hit_list):
    return [h.passage.id for h in hit_list]


def test_rrf_rewards_agreement_and_follows_its_formula():
    fused = reciprocal_rank_fusion([hits(("a", 9), ("b", 8), ("c", 7)), hits(("c", 0.9), ("a", 0.8))], k=3)
    assert ids(fused) == ["a", "c", "b"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 63 + 1 / 61)
    assert [h.rank for h in fused] == [0, 1, 2] and fused[0].retriever == "rrf"
    weighted = reciprocal_rank_fusion([hits(("a", 9), ("b", 8)), hits(("b", 1), ("a", 0))], k=2, weights=[1, 3])
    assert ids(weighted) == ["b", "a"]
    # equal fused scores: the better place in one list, then the earlier list (ids would say z9 < z10 < ...)
    tied = reciprocal_rank_fusion([hits(("z9", 5), ("z10", 4)), hits(("z2", 0.9), ("z1", 0.8))], k=4)
    assert ids(tied) == ["z9", "z2", "z10", "z1"]


def test_weighted_fusion_normalises_each_list_before_weighting():
    bm25 = hits(("a", 30.0), ("b", 20.0), ("c", 10.0))  # normalised 1, .5, 0
    dense = hits(("c", 0.9), ("b", 0.8), ("d", 0.5))  # normalised 1, .75, 0
    fused = weighted_score_fusion([bm25, dense], k=4, weights=[1.0, 1.0])
    assert ids(fused) == ["b", "a", "c", "d"]
    assert [h.score for h in fused] == pytest.approx([1.25, 1.0, 1.0, 0.0])
    assert ids(weighted_score_fusion([bm25, dense], k=1, weights=[0.1, 1.0])) == ["c"]


def test_query_forms():
    assert joint_query(QUESTION) == "What do green plants release? oxygen argon neon"
    assert option_queries(QUESTION)[2] == "What do green plants release? neon"
    assert len(queries_for(QUESTION, "both")) == 4
    with pytest.raises(ConfigError, match="unknown query form"):
        queries_for(QUESTION, "all")


def test_per_option_queries_are_searched_in_one_batch_and_fused():
    class Recorder:
        name = "rec"
        calls: list[list[str]] = []

        def search(self, queries, k):
            self.calls.append(list(queries))
            return [hits((q.split()[-1], 1.0), ("shared", 0.5)) for q in queries]

    retriever = Recorder()
    (merged,) = search_questions(retriever, [QUESTION], "per-option", k=5)
    assert len(retriever.calls) == 1 and len(retriever.calls[0]) == 3
    assert ids(merged)[0] == "shared"  # found by every option's query
    assert set(ids(merged)) == {"shared", "oxygen", "argon", "neon"} and merged[0].retriever == "rec"


def test_spec_grammar_and_errors():
    spec = RetrievalSpec.parse("hybrid-rrf/both+embed")
    assert (spec.retriever, spec.query, spec.rerank) == ("hybrid-rrf", "both", "embed")
    assert spec.label() == "hybrid-rrf/both+embed" and RetrievalSpec.parse("bm25").label() == "bm25"
    assert RetrievalSpec.parse("dense+cross:/models/ce").rerank == "cross:/models/ce"
    for bad, problem in [
        ("sparse", "unknown retriever"),
        ("bm25/all", "unknown query form"),
        ("bm25+magic", "unknown reranker"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            RetrievalSpec.parse(bad)


def test_edit_distance_reranker_puts_the_closest_passage_first():
    question = Question("q", "Which organelle produces ATP?", {"A": "mitochondrion", "B": "ribosome"})
    candidates = [
        Hit(Passage("x", "x", "Volcano", "Volcanoes erupt lava at plate boundaries."), 5.0, 0, "bm25"),
        Hit(
            Passage("y", "y", "Mitochondrion", "The mitochondrion is the organelle that produces ATP."), 4.0, 1, "bm25"
        ),
    ]
    (reranked,) = EditDistanceReranker().rerank([question], [candidates])
    assert ids(reranked) == ["y", "x"] and reranked[0].retriever == "bm25>edit" and reranked[0].rank == 0


def test_bm25_pipeline_with_reranker_keeps_k_of_the_candidates(tmp_path, articles_jsonl):
    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    retrieval = Retrieval(index, candidates=4)
    question = Question(
        "q", "How fast does light travel in vacuum?", {"A": "299792458 metres per second", "B": "slowly"}
    )
    (plain,) = retrieval.search([question], RetrievalSpec.parse("bm25"), k=2)
    (reranked,) = retrieval.search([question], RetrievalSpec.parse("bm25/both+edit"), k=2)
    assert plain[0].passage.title == reranked[0].passage.title == "Speed of light"
    assert len(reranked) == 2 and reranked[0].retriever == "bm25>edit"
    with pytest.raises(Exception, match="no dense index"):
        retrieval.search([question], RetrievalSpec.parse("dense"), k=2)
    assert retrieval.resolve("auto") == RetrievalSpec.parse("bm25")  # no dense part: plain BM25
    from openbook.answer import AnswerOptions, make_plan

    def plan(*texts: str):
        return make_plan(AnswerOptions(index=index, retrieval=list(texts), triage_readers=["none"]))

    assert plan("auto", "bm25/both").first.context.retrieval == ("bm25", "bm25/both")  # labels as resolved here
    for twice in (["bm25", "bm25/joint"], ["auto", "bm25"]):  # one pipeline under two spellings
        with pytest.raises(ConfigError, match="names the pipeline bm25 twice"):
            plan(*twice)


def test_hybrid_retriever_asks_each_retriever_for_depth_candidates():
    class Fixed:
        def __init__(self, name, result):
            self.name, self.result, self.asked = name, result, []

        def search(self, queries, k):
            self.asked.append(k)
            return [self.result for _ in queries]

    sparse, dense = Fixed("bm25", hits(("a", 3), ("b", 2))), Fixed("dense", hits(("b", 0.9), ("c", 0.1)))
    (fused,) = HybridRetriever([sparse, dense], "rrf", depth=30).search(["q"], k=2)
    assert sparse.asked == dense.asked == [30]
    assert ids(fused) == ["b", "a"] and fused[0].retriever == "hybrid-rrf"


SOURCE = (
    "The mitochondrion is the powerhouse of the cell. It produces ATP by cellular respiration. "
    "Mitochondria have their own DNA, inherited from the mother."
)


def test_source_matching_by_word_five_gram_containment():
    chunk = "It produces ATP by cellular respiration. Mitochondria have their own DNA"
    assert overlap_with_source(chunk, SOURCE) == 1.0
    assert (
        overlap_with_source("Mitochondria have their own DNA. Volcanoes erupt lava at plate boundaries often.", SOURCE)
        < 0.5
    )
    assert overlap_with_source("the powerhouse", SOURCE) == 1.0  # shorter than a 5-gram: all its words, in order
    assert overlap_with_source("", SOURCE) == 0.0
    ranked = [
        Hit(Passage("x", "x", "", "Volcanoes erupt lava at plate boundaries."), 2, 0),
        Hit(Passage("y", "y", "", chunk), 1, 1),
    ]
    assert first_source_rank(ranked, SOURCE) == 1 and first_source_rank(ranked[:1], SOURCE) is None


def test_recall_and_mrr():
    scores = score_ranks("p", [0, 3, None, 19, 7], seconds=0.5)
    assert scores.recall == {1: 0.2, 5: 0.4, 20: 0.8}
    assert scores.mrr == pytest.approx((1 + 1 / 4 + 1 / 20 + 1 / 8) / 5)
    assert scores.ms_per_question == pytest.approx(100.0)


def test_answer_refuses_a_bad_retrieval_before_loading_a_model(tmp_path):
    from typer.testing import CliRunner

    from openbook.cli.main import app

    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B\n1,Why?,a,b\n")
    result = CliRunner().invoke(
        app,
        [
            "answer",
            str(exam),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "/nonexistent.gguf",
            "--retrieval",
            "bm25",
            "--retrieval",
            "dense/every",
        ],
    )
    assert result.exit_code == 2 and "unknown query form 'every'" in result.output


def test_rows_whose_context_does_not_carry_them_are_not_grounded():
    def row(qid, prompt, answer, context):
        return Question(qid, prompt, {"A": answer, "B": "nothing"}, answer="A", extra={"context": context})

    questions = [
        row("1", "Where is the university?", "Orlando Florida", "The university is in Orlando, Florida."),
        row(
            "2",
            "What research did the university do?",
            "modeling and simulation",
            "The university is in Orlando, Florida. Its research covers modeling and simulation.",
        ),
        row("3", "What research does industry fund at the university?", "applied research", "Volcanoes erupt lava."),
        row("4", "Who proposed PIXE?", "Sven Johansson", "Pise may refer to a village in India."),
    ]
    from openbook.retrieve.source import grounded_questions

    assert [q.id for q in grounded_questions(questions)] == ["1", "2"]


def test_resuming_answers_without_a_record_of_their_settings_is_refused(tmp_path):
    (tmp_path / "predictions.jsonl").write_text('{"id": "1", "ranking": ["A"], "probabilities": {}, "answer": "A"}\n')
    with pytest.raises(OpenbookError, match="no run.json saying how they were made"):
        run_log(tmp_path, {"model": "m"}, resume=True)
    log = run_log(tmp_path, {"model": "m"})  # a fresh run: the earlier answers are moved aside
    log.close()
    assert (tmp_path / "predictions.previous.jsonl").exists() and (tmp_path / "run.json").exists()
    log = run_log(tmp_path, {"model": "m"}, resume=True)
    assert log.answered == frozenset() and log.previous == []
    log.close()


def test_what_a_resumed_run_takes_over(tmp_path):
    from openbook.evaluate.report import write_run
    from openbook.records import Run, RunSeconds

    def record(qid, readers, seconds):
        orders = {name: {"first": 0, "logprobs": [[-0.5, -1.0]]} for name in readers}
        return {
            "id": qid,
            "ranking": ["A", "B"],
            "probabilities": {"A": 0.6, "B": 0.4},
            "answer": "A",
            "readers": {name: {"A": 0.6, "B": 0.4} for name in readers},
            "orders": orders,
            "run_seconds": seconds,
        }

    questions = [Question(qid, "p?", {"A": "a", "B": "b"}, answer="A") for qid in "123"]
    # a cascade stopped while re-reading: 1 re-read, 2 and 3 triaged only
    run_log(tmp_path, {"model": "m"}).close()
    lines = [
        record("1", ["letter-rot3@triage", "letter"], 40.0),
        record("2", ["letter-rot3@triage"], 20.0),
        record("3", ["letter-rot3@triage"], 30.0),
    ]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    log = run_log(tmp_path, {"model": "m"}, resume=True)
    earlier = log.earlier(questions[:2])  # resumed with a smaller --limit
    # 3, past the limit, stays as it was logged (its reading joins a letter prior's fit)
    assert earlier.answered == {"1", "3"} and [r.question.id for r in earlier.first_pass] == ["2"]
    assert earlier.seconds == 40.0  # the last logged time
    assert sorted(name for name, _ in earlier.readings) == ["letter", "letter-rot3@triage", "letter-rot3@triage"]
    log.close()
    seconds = RunSeconds(
        total=5.0,
        load_model=0,
        retrieve_and_pack=0,
        read=5.0,
        model=0,
        earlier_runs=40.0,
        per_question=0,
        overhead_fraction=0,
    )
    run = Run(list(earlier.first_pass), seconds, {}, ())
    write_run(run, tmp_path, {"settings": {"model": "m"}}, log.previous, log.seconds_before)
    kept = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in kept) == ["1", "2", "3"]  # 3, past the limit, is not lost
    assert max(r["run_seconds"] for r in kept) == 45.0
    # a finished run without a cascade: its answers are final, unless a letter prior is to be fitted again over all
    run_log(tmp_path / "plain", {"model": "m"}).close()
    (tmp_path / "plain" / "run.json").write_text(json.dumps({"settings": {"model": "m"}, "failure": None}))
    (tmp_path / "plain" / "predictions.jsonl").write_text(json.dumps(record("1", ["letter-rot3"], 9.0)) + "\n")
    assert run_log(tmp_path / "plain", {"model": "m"}, resume=True).earlier(questions).answered == {"1"}
    refit = run_log(tmp_path / "plain", {"model": "m"}, resume=True, refit_first_pass=True).earlier(questions)
    assert refit.answered == frozenset() and [r.question.id for r in refit.first_pass] == ["1"]
    assert refit.first_pass[0].outputs[0].orders.logprobs == ((-0.5, -1.0),)


def test_a_stopped_cascade_resumes_with_the_last_answer_it_logged_per_question(tmp_path):
    run_log(tmp_path, {"model": "m"}).close()
    triaged = {"id": "1", "ranking": ["A", "B"], "readers": {"letter@triage": {"A": 0.6, "B": 0.4}}}
    reread = {
        "id": "1",
        "ranking": ["B", "A"],
        "readers": {"letter@triage": {"A": 0.6, "B": 0.4}, "letter": {"A": 0.1, "B": 0.9}},
    }
    other = {"id": "2", "ranking": ["A", "B"], "readers": {"letter@triage": {"A": 0.9, "B": 0.1}}}
    # re-read in the remaining option orders, without context
    in_more_orders = {
        "id": "3",
        "ranking": ["A", "B"],
        "readers": {"letter-rot3@triage": {"A": 0.6, "B": 0.4}, "letter-rot5@none": {"A": 0.7, "B": 0.3}},
    }
    lines = [json.dumps(r) for r in (triaged, other, reread, in_more_orders)]
    (tmp_path / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    log = run_log(tmp_path, {"model": "m"}, resume=True)
    log.close()
    assert log.answered == frozenset({"1", "3"}) and log.previous == [reread, in_more_orders]
    assert log.triaged == [other]  # the run stopped before re-reading it: the main stage may still take it up
    # the resumed run is running now: if it stops too, the next resume takes the triage answers up again
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 3


def test_a_run_logged_before_a_setting_existed_resumes_only_with_what_it_was_made_with(tmp_path):
    (tmp_path / "predictions.jsonl").write_text('{"id": "1", "ranking": ["A"], "probabilities": {}, "readers": {}}\n')
    (tmp_path / "run.json").write_text(json.dumps({"settings": {"model": "m"}}))  # before context_coverage
    with pytest.raises(OpenbookError, match="context_coverage 0.0 -> 0.5"):
        run_log(tmp_path, {"model": "m", "context_coverage": 0.5}, resume=True)
    run_log(tmp_path, {"model": "m", "context_coverage": 0.0}, resume=True).close()


def run_log(out, settings, resume=False, refit_first_pass=False):
    """A run's log as `run_exam` opens it: run.json's header holds the settings, all of which change answers here."""
    from openbook.runlog import RunLog

    return RunLog(out, {"settings": settings}, settings, resume=resume, refit_first_pass=refit_first_pass)
