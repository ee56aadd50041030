"""Where does retrieved context help, and what must a passage cover for the cascade's main stage to
read it?

The default cascade re-reads a hard question with its retrieved context only when one packed passage
holds at least `--context-coverage` of the words of its prompt with one of its options
(`question_coverage`); otherwise it reads the letter reader's remaining option orders without
context. This experiment shows why and chooses the rule without the questions the docs report on:

    python bench/experiments/context_coverage.py                      # both sections
    python bench/experiments/context_coverage.py --sections held-out  # no reader runs: retrieval only
    python bench/experiments/context_coverage.py --index DIR          # the threshold on your own index

`held-out`: the coverage of every exam's questions on the index (BM25, 500 tokens packed in the
model's tokens, as the main stage packs them), less the reported ones (the default exam,
arc-challenge-val-100, the 50-question samples of OpenBookQA, SciQ and MMLU-STEM). Retrieved
Wikipedia context helps the Wikipedia-sourced questions and hurts ARC's (docs/benchmarks.md, "Reader
accuracy"), so the rule is the one that best tells held-out llmse-stem-1k questions from held-out
ARC-Challenge ones, and from the non-Wikipedia exams pooled (balanced accuracy), over three things:
the text to cover (the prompt, the prompt with its best-covered option — the shipped rule, computed
by `question_coverage` itself — or the prompt with all options), the threshold, and a minimum number
of words the share is taken of (so that a short prompt is not covered by chance).

`reported`: on the reported questions, from the recorded readers (bench/readers.py: 3 and 5 orders
without context; bench/experiments/ensemble.py: `letter@bm25-500`), MAP@3 per coverage bin of each
reading, and of the routing with every question re-read, for the prompt alone and with the best
option. Nothing here is fitted to these questions; the section is skipped, saying which bench
records them, where they are missing.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    DEFAULT_EXAM,
    DEFAULT_INDEX,
    OUT,
    SHARED,
    arc_sample,
    markdown_table,
    plan_contexts,
    sample_exam,
)  # noqa: E402
from experiments.replay import recorded_coverage  # noqa: E402
from openbook.answer import AnswerOptions  # noqa: E402
from openbook.answer.decide import decide  # noqa: E402
from openbook.backends import load_backend  # noqa: E402
from openbook.backends.base import model_token_counter  # noqa: E402
from openbook.exam import read_exam  # noqa: E402
from openbook.metrics import score_rankings  # noqa: E402
from openbook.records import Question, ReaderOutput  # noqa: E402
from openbook.retrieve.context import covered_words, packed_texts, question_coverage, word_coverage  # noqa: E402
from openbook.runlog import read_records, result_of  # noqa: E402

REPORTED = {
    "llmse-stem-1k": DEFAULT_EXAM,
    "arc-challenge-val": OUT / "arc-challenge-val-100.csv",  # common.arc_sample()
}
OTHERS = ["arc-easy-val", "openbookqa-val", "sciq-val", "mmlu-stem-val", "llmse-6k-dev"]
SAMPLED = {"openbookqa-val": 50, "sciq-val": 50, "mmlu-stem-val": 50}  # docs/benchmarks.md, "Other exam kinds"
NON_WIKIPEDIA = ["arc-challenge-val", "arc-easy-val", "openbookqa-val", "sciq-val", "mmlu-stem-val"]
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]
MIN_WORDS = [0, 3, 4, 5, 6, 8]
SHIPPED = "prompt + best option"  # `question_coverage`, the cascade's rule


def share_of(texts: list[str], passages: list[str], min_words: int) -> float:
    """The largest share of a text's words one passage holds, each share taken of at least `min_words` words."""
    return max(
        (
            covered / max(wanted, min_words, 1)
            for text in texts
            for passage in passages
            for covered, wanted in [covered_words(text, passage)]
        ),
        default=0.0,
    )


# what a packed passage is asked to cover: the prompt alone, the prompt with its best-covered
# option (the shipped rule), or the prompt with all options
FORMS: dict[str, Callable[[Question, list[str], int], float]] = {
    "prompt": lambda q, passages, m: share_of([q.prompt], passages, m),
    SHIPPED: lambda q, passages, m: question_coverage(q, passages),
    "prompt + all options": lambda q, passages, m: share_of([" ".join([q.prompt, *q.options.values()])], passages, m),
}


def held_out(index: Path, model: str, per_exam: int) -> None:
    # BM25, 500 tokens: the main stage's packing of the default KB when the rule was chosen
    options = AnswerOptions(
        index=index, context_tokens=500, progress=False, retrieval=["bm25"], triage_readers=["none"]
    )
    count = model_token_counter(load_backend("llama.cpp", model, n_ctx=512))  # the main stage's packing
    # per exam, per question: the question and the texts of the passages packed for it
    packed: dict[str, list[tuple[Question, list[str]]]] = {}
    for name in [*REPORTED, *OTHERS]:
        reported = {q.prompt for q in read_exam(REPORTED[name])} if name in REPORTED else set()
        if name in SAMPLED:
            reported |= {q.prompt for q in sample_exam(name, SAMPLED[name])}
        questions = [q for q in read_exam(SHARED / "exams" / f"{name}.csv") if q.prompt not in reported]
        if name not in REPORTED:
            questions = random.Random(0).sample(questions, min(per_exam, len(questions)))
        found = plan_contexts(questions, options, count)
        packed[name] = [(q, packed_texts(c[0].hits, c[0].context)) for q, c in zip(questions, found)]
    prompt = {name: coverage(pairs, "prompt", 0) for name, pairs in packed.items()}
    rows = [
        [
            name,
            str(len(pairs)),
            f"{np.median([covered_words(q.prompt, '')[1] for q, _ in pairs]):g}",
            *(f"{np.percentile(prompt[name], p):.2f}" for p in (10, 25, 50, 75, 90)),
            *(f"{np.mean(prompt[name] >= t):.2f}" for t in THRESHOLDS),
        ]
        for name, pairs in packed.items()
    ]
    print(
        markdown_table(
            [
                "held-out questions (coverage of the prompt)",
                "n",
                "median words",
                "p10",
                "p25",
                "median",
                "p75",
                "p90",
                *(f"share ≥ {t:g}" for t in THRESHOLDS),
            ],
            rows,
        )
    )
    print()
    choose_threshold(packed)


def coverage(pairs: list[tuple[Question, list[str]]], form: str, min_words: int) -> np.ndarray:
    return np.array([FORMS[form](q, passages, min_words) for q, passages in pairs])


def choose_threshold(packed: dict[str, list[tuple[Question, list[str]]]]) -> None:
    """Balanced accuracy of telling held-out llmse-stem-1k questions (written from a Wikipedia
    passage) from held-out ARC-Challenge ones, and from every non-Wikipedia exam pooled (each exam
    weighing the same), per covered text and minimum word count, at the best threshold and at 0.5."""
    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)
    negatives = {"ARC-Challenge": ["arc-challenge-val"], "non-Wikipedia pooled": NON_WIKIPEDIA}
    rows = []
    for form in FORMS:
        for min_words in MIN_WORDS if form == "prompt" else [0]:
            values = {name: coverage(pairs, form, min_words) for name, pairs in packed.items()}
            row = [form + (" (shipped)" if form == SHIPPED else ""), str(min_words)]
            for names in negatives.values():
                balanced = [
                    (np.mean(values["llmse-stem-1k"] >= t) + np.mean([np.mean(values[n] < t) for n in names])) / 2
                    for t in grid
                ]
                top = int(np.argmax(balanced))
                row += [
                    f"{grid[top]:g}",
                    f"{balanced[top]:.3f}",
                    f"{balanced[int(np.flatnonzero(grid == 0.5)[0])]:.3f}",
                ]
            rows.append(row + [f"{np.mean(values[name] >= 0.5):.2f}" for name in packed])
    print(
        markdown_table(
            [
                "covered text",
                "min words",
                *(f"vs {label}: {col}" for label in negatives for col in ("best t", "bal. acc.", "at 0.5")),
                *(f"{name} ≥ 0.5" for name in packed),
            ],
            rows,
        )
    )


READINGS = ["3 orders", "5 orders", "BM25 500", "mean(3 orders, BM25 500)"]


def reported(model: str) -> None:
    rows = []
    for name, exam in REPORTED.items():
        members = "default-exam" if name == "llmse-stem-1k" else name
        recorded = {
            "python bench/readers.py": OUT / "readers" / model / f"{name}-none" / "predictions.jsonl",
            "python bench/experiments/ensemble.py --members letter@bm25-500": OUT
            / "ensemble"
            / members
            / "letter@bm25-500"
            / "predictions.jsonl",
        }
        if missing := [f"{path} (recorded by `{bench}`)" for bench, path in recorded.items() if not path.exists()]:
            print(f"{name}: skipped, no recorded readings: {'; '.join(missing)}")
            continue
        no_context, context = ({str(r["id"]): r for r in read_records(path)} for path in recorded.values())
        rows += reported_rows(name, read_exam(exam), no_context, context)
    if rows:
        print(markdown_table(["reported questions", "covered text", "coverage", "n", *READINGS, "routed at 0.5"], rows))


def reported_rows(name: str, exam: list[Question], no_context: dict, context: dict) -> list[list[str]]:
    """MAP@3 per coverage bin of each recorded reading of one set, and of the routing."""
    questions = [q for q in exam if q.id in no_context and q.id in context]

    def readings(q: Question) -> dict[str, list[ReaderOutput]]:
        three = ReaderOutput(q.id, "letter-rot3", no_context[q.id]["readers"]["letter-rot3"])
        five = ReaderOutput(q.id, "letter-rot5", no_context[q.id]["readers"]["letter-rot5"])
        bm25 = ReaderOutput(q.id, "letter", context[q.id]["readers"]["letter"])
        return dict(zip(READINGS, ([three], [five], [bm25], [three, bm25])))

    def score(chosen: list[Question], reading: Callable[[Question], list[ReaderOutput]]) -> str:
        pairs = [(decide(q, reading(q), (), None).ranking, q.answer) for q in chosen]
        return f"{score_rankings(pairs).map_at_3:.3f}" if pairs else "–"

    def prompt_coverage(q: Question) -> float:
        contexts = result_of(context[q.id], q).contexts
        texts = [text for c in contexts for text in packed_texts(c.hits, c.context)]
        return max((word_coverage(q.prompt, text) for text in texts), default=0.0)

    rows = []
    forms = {"prompt": prompt_coverage, SHIPPED: lambda q: recorded_coverage(context[q.id], q)}
    for form, coverage_of in forms.items():
        covered = {q.id: coverage_of(q) >= 0.5 for q in questions}

        # every question re-read, as on a fast machine: the covered with context (both stages
        # averaged), the others in 5 orders
        def routed(q: Question, covered: dict[str, bool] = covered) -> list[ReaderOutput]:
            return readings(q)["mean(3 orders, BM25 500)" if covered[q.id] else "5 orders"]

        for label, chosen in (
            ("< 0.5", [q for q in questions if not covered[q.id]]),
            ("≥ 0.5", [q for q in questions if covered[q.id]]),
            ("all", questions),
        ):
            scores = [score(chosen, lambda q, kind=kind: readings(q)[kind]) for kind in READINGS]
            rows.append([name, form, label, str(len(chosen)), *scores, score(chosen, routed)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--per-exam", type=int, default=300, help="questions sampled from each other exam")
    parser.add_argument("--sections", nargs="+", default=["held-out", "reported"], choices=["held-out", "reported"])
    args = parser.parse_args()
    arc_sample()
    if "held-out" in args.sections:
        held_out(args.index, args.model, args.per_exam)
    if "reported" in args.sections:
        reported(args.model)


if __name__ == "__main__":
    main()
