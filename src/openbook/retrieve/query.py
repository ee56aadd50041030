"""What a question asks the retriever: one joint query, one query per option, or both, merged.

Per-option queries ("prompt + option") find the evidence for options that the joint query's other
words drown out; their lists are merged by reciprocal-rank fusion into one list per question.
"""

from __future__ import annotations

from collections.abc import Sequence

from openbook.errors import ConfigError
from openbook.records import Hit, Question
from openbook.retrieve.base import Retriever
from openbook.retrieve.fusion import reciprocal_rank_fusion

QUERY_FORMS = ("joint", "per-option", "both")


def joint_query(question: Question) -> str:
    """Prompt and every option: the words that separate options are what finds their evidence."""
    return " ".join([question.prompt, *question.options.values()])


def option_queries(question: Question) -> list[str]:
    return [f"{question.prompt} {option}" for option in question.options.values()]


def queries_for(question: Question, form: str) -> list[str]:
    if form == "joint":
        return [joint_query(question)]
    if form == "per-option":
        return option_queries(question)
    if form == "both":
        return [joint_query(question), *option_queries(question)]
    raise ConfigError(f"unknown query form {form!r}; choose from {', '.join(QUERY_FORMS)}")


def search_questions(retriever: Retriever, questions: Sequence[Question], form: str, k: int) -> list[list[Hit]]:
    """One batched search for every query of every question; a question's lists merged by RRF."""
    per_question = [queries_for(q, form) for q in questions]
    flat = [query for queries in per_question for query in queries]
    lists = retriever.search(flat, k) if flat else []
    merged: list[list[Hit]] = []
    start = 0
    for queries in per_question:
        own = lists[start : start + len(queries)]
        start += len(queries)
        merged.append(own[0] if len(own) == 1 else reciprocal_rank_fusion(own, k, name=retriever.name))
    return merged
