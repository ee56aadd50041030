"""Answer an exam into a run folder: the one sequence the CLI, the benchmarks and services share.

The options are planned once; the run log is opened (resuming what the folder holds, where asked);
the plan is executed with every answer logged as it is made; the run's files are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbook.answer import AnswerOptions, Plan, execute, make_plan, settings_of
from openbook.answer.options import answer_settings
from openbook.backends import Backend
from openbook.errors import ConfigError
from openbook.evaluate.report import write_run
from openbook.exam import read_exam
from openbook.readers import Reader
from openbook.records import EarlierRun, Question, Run
from openbook.runlog import RunLog


@dataclass(frozen=True)
class RunOutcome:
    run: Run
    metrics: dict[str, Any]  # empty when the exam has no answers
    out: Path
    earlier: EarlierRun  # what the folder held from earlier runs and this one took over
    answered_before: int  # answers kept as they were from earlier runs

    @property
    def resumed(self) -> bool:
        return bool(self.earlier.answered or self.earlier.first_pass)


def run_header(options: AnswerOptions, plan: Plan) -> dict[str, Any]:
    """What run.json says of a run from its start: the options as given and the plan they made."""
    return {"settings": settings_of(options), "plan": plan.as_dict()}


def run_exam(
    options: AnswerOptions,
    plan: Plan | None = None,
    questions: Sequence[Question] | None = None,
    *,
    backend: Backend | None = None,
    readers: Sequence[Reader] | None = None,
) -> RunOutcome:
    """Answer `options.exam` (or `questions`) into `options.out` following `plan` (made from
    `options` when not given). A run that fails part-way keeps and writes what it answered; its
    `run.failure` and `run.error` say why."""
    if options.out is None:
        raise ConfigError("no output folder: pass --out DIR (or `out` in the [answer] table)")
    plan = make_plan(options) if plan is None else plan
    if questions is None:
        if options.exam is None:
            raise ConfigError("no exam: pass EXAM (or `exam` in the [answer] table)")
        questions = read_exam(options.exam)
    header = run_header(options, plan)
    settings = header["settings"]
    log = RunLog(options.out, header, answer_settings(settings), options.resume, refit_first_pass=plan.letter_prior)
    with log:  # what was answered is on disk, whatever stops the run
        earlier = log.earlier(questions[: plan.limit] if plan.limit else questions)
        run = execute(plan, questions, earlier=earlier, on_result=log.add, backend=backend, readers=readers)
    metrics = write_run(run, options.out, header, log.previous, log.seconds_before)
    return RunOutcome(run, metrics, options.out, earlier, len(log.previous))
