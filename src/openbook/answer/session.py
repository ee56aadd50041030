"""A plan with its model loaded once, answering questions as they come (`openbook ask`, a service)
through the same `execute` as `openbook answer`; the machine's pace, measured on its first questions,
carries over to the next, so a question asked alone does not pay for a start-up measurement again."""

from __future__ import annotations

from collections.abc import Sequence

from openbook.answer.budget import UNMEASURED, Pace
from openbook.answer.executor import execute
from openbook.answer.plan import ModelPlan, Plan
from openbook.answer.stages import load_model, open_retrieval, retrieve_contexts
from openbook.backends import Backend
from openbook.backends.base import model_token_counter
from openbook.errors import ConfigError
from openbook.records import Question, RetrievedContext, Run


class Session:
    def __init__(self, plan: Plan, backend: Backend | None = None):
        """`backend`: the plan's main model, loaded already; else it is loaded here, once."""
        self.plan = plan
        model = main_model(plan)
        self.backend = backend if backend is not None or model is None else load_model(model)
        self.pace: Pace = UNMEASURED

    def answer(self, questions: Sequence[Question]) -> Run:
        run = execute(self.plan, questions, backend=self.backend, pace=self.pace)
        if run.cascade is not None and run.cascade.paced_tokens:
            self.pace = Pace(run.cascade.paced_seconds, run.cascade.paced_tokens)
        return run

    def evidence(self, question: Question) -> list[RetrievedContext]:
        """What the plan's reading with context would read for `question`: its retrieved passages and
        the evidence packed from them, one per retrieval pipeline; nothing is read."""
        stage = self.plan.reread.stage if self.plan.reread is not None else self.plan.first
        if stage.context is None:
            raise ConfigError("no index to retrieve evidence from: pass --index DIR")
        count = model_token_counter(self.backend) if self.backend is not None else _words
        (contexts,) = retrieve_contexts([question], open_retrieval(stage.context), stage.context, count)
        return contexts


def main_model(plan: Plan) -> ModelPlan | None:
    """The model of the stage that reads context (a cascade's main stage), which the first pass
    shares where the plan says so."""
    return (plan.reread.stage if plan.reread is not None else plan.first).model


def _words(text: str) -> int:
    return len(text.split())
