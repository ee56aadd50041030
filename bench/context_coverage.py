"""Where does retrieved context help, and where should the cascade's main stage read it?

The default cascade re-reads a hard question with its retrieved context only when one packed passage
holds at least `context_coverage` of the words of its prompt with one of its options
(`question_coverage`); otherwise it reads the letter reader's remaining option orders without
context. This bench shows why and chooses the rule without the questions the README reports on:

    python bench/context_coverage.py                     # both sections
    python bench/context_coverage.py --sections held-out # no reader runs: retrieval, packed in Qwen's tokens

`held-out`: the coverage of every exam's questions on the default knowledge base (BM25, 500 tokens
packed in Qwen's tokens, as the main stage packs them), less the reported ones (the default exam,
arc-challenge-val-100, the 50-question samples of OpenBookQA, SciQ and MMLU-STEM). Retrieved Wikipedia
context helps the Wikipedia-sourced questions and hurts ARC's (README, "Readers"), so the rule is the
one that best tells held-out llmse-stem-1k questions from held-out ARC-Challenge ones, and from the
non-Wikipedia exams pooled (balanced accuracy), over three things: the text to cover (the prompt, the
prompt with its best-covered option, the prompt with all options), the threshold, and a minimum
number of words the share is taken of (so that a short prompt is not covered by chance).

`reported`: on the reported questions, from the recorded readers (`bench/readers.py`: 3 and 5
orders without context; `bench/ensemble.py`: `letter@bm25-500`), MAP@3 per coverage bin of each
reading, and of the routing, for the prompt alone and with the best option. Nothing here is fitted
to these questions; the section is skipped, saying which bench records them, where they are missing.
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from common import OUT, ROOT, SHARED, markdown_table, sample_exam
from openbook.backends import load_backend
from openbook.backends.base import model_token_counter
from openbook.ensemble.features import read_predictions
from openbook.ensemble.learned import ranking_of
from openbook.exam import read_exam
from openbook.metrics import score_rankings
from openbook.pipeline import AnswerOptions, retrieval_for, retrieve_contexts
from openbook.records import Question
from openbook.retrieve.context import coverage_texts, covered_words, packed_texts, word_coverage
from triage import recorded_passages

REPORTED = {
    "llmse-stem-1k": ROOT / "src/openbook/resources/default-exam.csv",
    "arc-challenge-val": OUT / "arc-challenge-val-100.csv",
}
OTHERS = ["arc-easy-val", "openbookqa-val", "sciq-val", "mmlu-stem-val", "llmse-6k-dev"]
SAMPLED = {"openbookqa-val": 50, "sciq-val": 50, "mmlu-stem-val": 50}  # the README's other-kinds runs
NON_WIKIPEDIA = ["arc-challenge-val", "arc-easy-val", "openbookqa-val", "sciq-val", "mmlu-stem-val"]
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]
MIN_WORDS = [0, 3, 4, 5, 6, 8]


# What a packed passage is asked to cover: the prompt alone (the rule until session 12), the prompt
# with one option, the best-covered one (`question_coverage`, the cascade's rule), or with all of them.
QUERIES = {
    "prompt": lambda q: [q.prompt],
    "prompt + best option": coverage_texts,
    "prompt + all options": lambda q: [" ".join([q.prompt, *q.options.values()])],
}


def held_out(index, model: str, per_exam: int) -> None:
    # BM25, as the rule was chosen (session 12); the cascade reads `auto` (the hybrid on a dense index)
    # since session 13, which routes fewer OpenBookQA and SciQ questions to context (bench/cascade_retrieval.py)
    options = AnswerOptions(index=index, context_tokens=500, progress=False, retrieval=["bm25"])
    backend = load_backend("llama.cpp", model, n_ctx=512)
    count = model_token_counter(backend)  # the main stage's packing
    retrieval = retrieval_for(options)
    # per query form and exam, per question: (words held by one packed passage, of how many) for
    # every packed passage and every text of the form
    counts: dict[str, dict[str, list[list[tuple[int, int]]]]] = {form: {} for form in QUERIES}
    for name in [*REPORTED, *OTHERS]:
        reported = {q.prompt for q in read_exam(REPORTED[name])} if name in REPORTED else set()
        if name in SAMPLED:
            reported |= {q.prompt for q in sample_exam(name, SAMPLED[name])}
        questions = [q for q in read_exam(SHARED / "exams" / f"{name}.csv") if q.prompt not in reported]
        if name not in REPORTED:
            questions = random.Random(0).sample(questions, min(per_exam, len(questions)))
        found = retrieve_contexts(questions, retrieval, options, count)
        for form, texts_of in QUERIES.items():
            counts[form][name] = [
                [
                    covered_words(text, passage)
                    for passage in packed_texts(c[0].hits, c[0].context)
                    for text in texts_of(q)
                ]
                or [(0, 0)]
                for q, c in zip(questions, found)
            ]
    prompt = counts["prompt"]
    rows = [
        [
            name,
            str(len(pairs)),
            f"{np.median([p[0][1] for p in pairs]):g}",
            *(f"{np.percentile(values, p):.2f}" for p in (10, 25, 50, 75, 90)),
            *(f"{np.mean(values >= t):.2f}" for t in THRESHOLDS),
        ]
        for name, pairs in prompt.items()
        for values in [shares(pairs, 0)]
    ]
    print(
        markdown_table(
            [
                "held-out questions",
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
    choose_threshold(counts)


def shares(pairs: list[list[tuple[int, int]]], min_words: int) -> np.ndarray:
    """Per question, the largest share of words covered, each taken of at least `min_words` words."""
    return np.array([max(covered / max(wanted, min_words, 1) for covered, wanted in question) for question in pairs])


def choose_threshold(counts: dict[str, dict[str, list[list[tuple[int, int]]]]]) -> None:
    """Balanced accuracy of telling held-out llmse-stem-1k questions (written from a Wikipedia
    passage) from held-out ARC-Challenge ones, and from every non-Wikipedia exam pooled (each exam
    weighing the same), per query form and minimum word count (the share taken of at least that many words), at
    the best threshold and at 0.5."""
    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)
    negatives = {"ARC-Challenge": ["arc-challenge-val"], "non-Wikipedia pooled": NON_WIKIPEDIA}
    rows = []
    for form, by_exam in counts.items():
        for min_words in MIN_WORDS if form == "prompt" else [0]:
            values = {name: shares(pairs, min_words) for name, pairs in by_exam.items()}
            row = [form, str(min_words)]
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
            rows.append(row + [f"{np.mean(values[name] >= 0.5):.2f}" for name in by_exam])
    print(
        markdown_table(
            [
                "covered text",
                "min words",
                *(f"vs {label}: {col}" for label in negatives for col in ("best t", "bal. acc.", "at 0.5")),
                *(f"{name} ≥ 0.5" for name in counts["prompt"]),
            ],
            rows,
        )
    )


def form_coverage(form: str, question: Question, record: dict) -> float:
    """The coverage of a recorded question (`QUERIES[form]` against each passage its contexts packed)."""
    passages = recorded_passages(record)
    return max((word_coverage(text, passage) for passage in passages for text in QUERIES[form](question)), default=0.0)


def reported(model: str) -> None:
    rows = []
    for name, exam in REPORTED.items():
        members = "default-exam" if name == "llmse-stem-1k" else name
        recorded = {
            "python bench/readers.py": OUT / "readers" / model / f"{name}-none" / "predictions.jsonl",
            "python bench/ensemble.py --members letter@bm25-500": OUT
            / "ensemble"
            / members
            / "letter@bm25-500"
            / "predictions.jsonl",
        }
        if missing := [f"{path} (recorded by `{bench}`)" for bench, path in recorded.items() if not path.exists()]:
            print(f"{name}: skipped, no recorded readings: {'; '.join(missing)}")
            continue
        no_context, context = ({r["id"]: r for r in read_predictions(path)} for path in recorded.values())
        questions = [q for q in read_exam(exam) if q.id in no_context and q.id in context]
        readings = {
            "3 orders": lambda q: no_context[q.id]["readers"]["letter-rot3"],
            "5 orders": lambda q: no_context[q.id]["readers"]["letter-rot5"],
            "BM25 500": lambda q: context[q.id]["readers"]["letter"],
            "mean(3 orders, BM25 500)": lambda q: {
                k: (no_context[q.id]["readers"]["letter-rot3"][k] + context[q.id]["readers"]["letter"][k]) / 2
                for k in q.letters
            },
        }

        def score(chosen, read) -> str:
            pairs = [(ranking_of(q.letters, np.array([read(q)[k] for k in q.letters])), q.answer) for q in chosen]
            return f"{score_rankings(pairs).map_at_3:.3f}" if pairs else "–"

        for form in ("prompt", "prompt + best option"):
            covered = {q.id: form_coverage(form, q, context[q.id]) >= 0.5 for q in questions}
            # every question re-read, as on a fast machine: the covered with context (both stages
            # averaged), the others in 5 orders
            routed = lambda q: readings["mean(3 orders, BM25 500)" if covered[q.id] else "5 orders"](q)  # noqa: E731
            for label, chosen in (
                ("< 0.5", [q for q in questions if not covered[q.id]]),
                ("≥ 0.5", [q for q in questions if covered[q.id]]),
                ("all", questions),
            ):
                rows.append(
                    [
                        name,
                        form,
                        label,
                        str(len(chosen)),
                        *(score(chosen, read) for read in readings.values()),
                        score(chosen, routed),
                    ]
                )
    if rows:
        print(markdown_table(["reported questions", "covered text", "coverage", "n", *readings, "routed at 0.5"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(ROOT / "runs/default-index"))
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--per-exam", type=int, default=300, help="questions sampled from each other exam")
    parser.add_argument("--sections", nargs="+", default=["held-out", "reported"])
    args = parser.parse_args()
    if "held-out" in args.sections:
        held_out(args.index, args.model, args.per_exam)
    if "reported" in args.sections:
        reported(args.model)


if __name__ == "__main__":
    main()
