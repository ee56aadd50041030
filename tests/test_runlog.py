"""predictions.jsonl (`openbook.runlog`): what a resumed run keeps, takes up again and refuses, and
the letter readings a log keeps so that a resumed run can fit the letter prior again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openbook.answer.decide import decide
from openbook.errors import OpenbookError
from openbook.readers.letter import option_probabilities
from openbook.records import Question, QuestionResult, ReaderOutput
from tests.conftest import order_reading

LETTERS5 = ("A", "B", "C", "D", "E")


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


def test_the_log_keeps_order_readings_so_a_resumed_run_can_calibrate_again():
    from openbook.runlog import record_of, result_of

    question = Question("q", "?", dict(zip(LETTERS5, "abcde")), "B")
    orders = order_reading([[0.5, 0.2, 0.1, 0.1, 0.1], [0.1, 0.6, 0.1, 0.1, 0.1]], first=1)
    outputs = [
        ReaderOutput("q", "letter-rot3@triage", option_probabilities(LETTERS5, orders), orders=orders),
        ReaderOutput("q", "yesno@triage", {k: 0.2 for k in LETTERS5}),
    ]
    record = record_of(QuestionResult(question, decide(question, outputs, [], None), outputs, []))
    assert set(record["orders"]) == {"letter-rot3@triage"}
    back = result_of(json.loads(json.dumps(record)), question)
    assert back.outputs[0].orders.first_order == 1
    assert np.array(back.outputs[0].orders.logprobs) == pytest.approx(np.array(orders.logprobs))
    assert back.outputs[1].orders is None


def run_log(out, settings, resume=False, refit_first_pass=False):
    """A run's log as `run_exam` opens it: run.json's header holds the settings, all of which change answers here."""
    from openbook.runlog import RunLog

    return RunLog(out, {"settings": settings}, settings, resume=resume, refit_first_pass=refit_first_pass)


def test_a_log_that_does_not_name_its_reread_kind_is_read_by_its_outputs():
    from openbook.runlog import result_of

    question = Question("q", "Which?", {"A": "a", "B": "b"})
    base = {"id": "q", "ranking": ["A", "B"], "probabilities": {"A": 0.6, "B": 0.4}, "context_coverage": 0.2}
    in_orders = {
        **base,
        "readers": {"letter-rot3@triage": {"A": 0.6, "B": 0.4}, "letter-rot5@none": base["probabilities"]},
    }
    with_context = {**base, "readers": {"letter-rot3@triage": {"A": 0.6, "B": 0.4}, "letter": base["probabilities"]}}
    assert result_of(in_orders, question).reread.kind == "orders"
    assert result_of(with_context, question).reread.kind == "context"
    assert result_of({**with_context, "reread": "orders"}, question).reread.kind == "orders"  # named: as named


def test_a_damaged_line_is_dropped_only_where_a_stop_cut_it(tmp_path):
    from openbook.errors import InputError
    from openbook.runlog import read_records

    good = json.dumps({"id": "1", "readers": {"letter": {"A": 1.0}}, "probabilities": {"A": 1.0}})
    log = tmp_path / "predictions.jsonl"
    log.write_bytes(f"{good}\n".encode() + b'{"id": "2", "rea')
    assert [r["id"] for r in read_records(log)] == ["1"]
    log.write_bytes(b'{"id": "2", "rea\n' + f"{good}\n".encode())
    with pytest.raises(InputError, match="predictions.jsonl:1: damaged line"):
        read_records(log)
    log.write_text(json.dumps({"id": "3"}) + "\n" + good + "\n")
    with pytest.raises(InputError, match="predictions.jsonl:1: not an openbook prediction"):
        read_records(log)
