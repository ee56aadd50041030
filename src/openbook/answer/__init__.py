"""The answer path: options are turned once into a `Plan` (`make_plan`), which `execute` runs over
an exam question by question."""

from openbook.answer.executor import execute
from openbook.answer.options import AnswerOptions, settings_of
from openbook.answer.plan import Plan, make_plan

__all__ = ["AnswerOptions", "Plan", "execute", "make_plan", "settings_of"]
