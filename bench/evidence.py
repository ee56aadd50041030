"""How often a context holds the sentence a question was written from: whole passages packed best first
against sentence-level evidence (`--evidence sentences`), at several token budgets.

llmse-stem-1k's questions carry the passage each was written from (`context`). Its source sentence is
the sentence of that passage holding the largest share of the words of the prompt with the correct
option. For a seeded sample, the index's `auto` pipeline retrieves 8 passages; each context is packed
from them at each budget (tokens of the default model), and the table gives the share of questions
whose context holds the source sentence, and the tokens the contexts took on average.

    python bench/evidence.py [--index runs/default-index] [--questions 200] [--budgets 64 128 256 500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from common import DEFAULT_INDEX, sample_exam
from openbook.answer import AnswerOptions, make_plan
from openbook.answer.options import DEFAULT_MODEL
from openbook.answer.stages import open_retrieval
from openbook.backends import load_backend
from openbook.backends.base import model_token_counter
from openbook.corpus.chunking import split_sentences
from openbook.records import Question
from openbook.retrieve.context import content_words, pack_context, words
from openbook.retrieve.evidence import choose_sentences, score_sentences


def source_sentence(question: Question) -> str | None:
    """The sentence of the question's source passage that holds most of its prompt + answer's words."""
    source = question.extra.get("context", "")
    if not source or question.answer is None:
        return None
    wanted = content_words(f"{question.prompt} {question.options[question.answer]}")
    sentences = split_sentences(source)
    return max(sentences, key=lambda s: len(wanted & content_words(s)) / max(len(wanted), 1), default=None)


def holds(context: str, sentence: str) -> bool:
    """Whether the context holds the sentence, compared word by word (titles and spacing aside)."""
    return " ".join(words(sentence)) in " ".join(words(context))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--budgets", type=int, nargs="+", default=[64, 128, 256, 500])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="whose tokens the budgets count")
    args = parser.parse_args()
    questions = [q for q in sample_exam("llmse-stem-1k", args.questions) if source_sentence(q)]
    context_plan = make_plan(AnswerOptions(index=args.index, triage_readers=["none"])).first.context
    assert context_plan is not None
    retrieval = open_retrieval(context_plan)
    assert retrieval is not None
    count_tokens = model_token_counter(load_backend("llama.cpp", args.model, n_ctx=512))
    started = time.perf_counter()
    (spec,) = [retrieval.resolve(label) for label in context_plan.retrieval]
    hit_lists = retrieval.search(questions, spec, context_plan.passages)
    retrieving = time.perf_counter() - started
    embedder = retrieval.index_embedder()
    found_in_hits = sum(
        holds("\n".join(h.passage.text for h in hits), source_sentence(q) or "")
        for q, hits in zip(questions, hit_lists)
    )
    began = time.perf_counter()
    lexical = [score_sentences(q, hits) for q, hits in zip(questions, hit_lists)]
    lexical_seconds = (time.perf_counter() - began) / len(questions)
    began = time.perf_counter()
    embedded = [score_sentences(q, hits, embedder) for q, hits in zip(questions, hit_lists)] if embedder else None
    embedded_seconds = (time.perf_counter() - began) / len(questions)
    table = Table(
        "tokens",
        "passages",
        "sentences",
        "sentences +embed",
        title=f"source sentence in the context (tokens used): {len(questions)} llmse-stem-1k questions, "
        f"{spec.label()} top {context_plan.passages} (holding it: {found_in_hits})",
        caption=f"scoring sentences: {lexical_seconds:.3f} s/question by words, {embedded_seconds:.3f} with the "
        f"embedder; retrieval {retrieving / len(questions):.3f} s/question",
    )
    for budget in args.budgets:
        packed = {
            "passages": [pack_context(hits, budget, count_tokens) for hits in hit_lists],
            "sentences": [choose_sentences(s, hits, budget, count_tokens) for s, hits in zip(lexical, hit_lists)],
        }
        if embedded is not None:
            packed["+embed"] = [choose_sentences(s, h, budget, count_tokens) for s, h in zip(embedded, hit_lists)]
        cells = [str(budget)]
        for contexts in packed.values():
            share = sum(holds(c.text, source_sentence(q) or "") for q, c in zip(questions, contexts)) / len(questions)
            cells.append(f"{share:.3f} ({sum(c.tokens for c in contexts) / len(contexts):.0f})")
        table.add_row(*cells)
    Console().print(table)


if __name__ == "__main__":
    main()
