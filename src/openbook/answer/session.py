"""A plan with its model loaded once, answering questions as they come (`openbook ask`, a service)
through the same `execute` as `openbook answer`; the machine's pace, measured on its first questions,
carries over to the next, so a question asked alone does not pay for a start-up measurement again."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from openbook.answer.budget import UNMEASURED, Pace
from openbook.answer.executor import execute
from openbook.answer.plan import ContextPlan, ModelPlan, Plan
from openbook.answer.pool import load_model
from openbook.answer.stages import open_retrieval, retrieve_contexts
from openbook.backends import Backend
from openbook.backends.base import model_path_of, model_token_counter
from openbook.errors import ConfigError
from openbook.records import Hit, Question, QuestionResult, RetrievedContext, Run


class Session:
    def __init__(self, plan: Plan, backend: Backend | None = None):
        """`backend`: the plan's main model, loaded already; else it is loaded here, once."""
        self.plan = plan
        model = main_model(plan)
        self.backend = backend if backend is not None or model is None else load_model(model)
        self.pace: Pace = UNMEASURED

    def answer(
        self,
        questions: Sequence[Question],
        plan: Plan | None = None,
        on_result: Callable[[QuestionResult], None] | None = None,
    ) -> Run:
        """`questions` answered by the session's plan, or by `plan` (other settings on the same model);
        `on_result` sees each answer as it is made (an exception raised there stops the run)."""
        plan = self.plan if plan is None else plan
        if main_model(plan) != main_model(self.plan):
            raise ConfigError("the model is the session's: settings that change the model need another session")
        run = execute(plan, questions, backend=self.backend, pace=self.pace, on_result=on_result)
        if run.cascade is not None and run.cascade.paced_tokens:
            self.pace = Pace(run.cascade.paced_seconds, run.cascade.paced_tokens)
        return run

    @property
    def model_path(self) -> str | None:
        if self.backend is None:
            return None
        return model_path_of(self.backend)

    def evidence(self, question: Question) -> list[RetrievedContext]:
        """What the plan's reading with context would read for `question`: its retrieved passages and
        the evidence packed from them, one per retrieval pipeline; nothing is read."""
        context = self._context()
        count = model_token_counter(self.backend) if self.backend is not None else _words
        (contexts,) = retrieve_contexts([question], open_retrieval(context), context, count)
        return contexts

    def search(self, question: Question, k: int) -> list[Hit]:
        """The `k` best passages for `question` by the plan's first retrieval pipeline."""
        context = self._context()
        retrieval = open_retrieval(context)
        assert retrieval is not None
        return retrieval.search([question], retrieval.resolve(context.retrieval[0]), k)[0]

    def _context(self) -> ContextPlan:
        context = self.plan.main_stage.context
        if context is None:
            raise ConfigError("no index to retrieve evidence from: pass --index DIR")
        return context


def main_model(plan: Plan) -> ModelPlan | None:
    """The model of the stage that reads context (a cascade's main stage), which the first pass
    shares where the plan says so."""
    return plan.main_stage.model


def _words(text: str) -> int:
    return len(text.split())
