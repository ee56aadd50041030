"""Can long options be read shorter without changing the answer?

    python bench/experiments/short_options.py [--questions 50] [--model qwen2.5-coder-1.5b-instruct]

The LLM Science Exam's long questions spend their tokens on options, and their five options often
open (and sometimes close) with the same words: "Francis Lacassin was …" five times. Shortened, the
words every option shares at its start or end are said once, after the prompt ("Every option begins:
…"), and each option keeps only what tells it apart. This reads the long held-out llmse-6k-dev
questions (`common.budget_exams`, >= 600 characters) with the letter reader in one option order,
without context, both ways, and prints the prompt tokens and MAP@3 of each, the paired difference
with its standard error, and how many questions' top answer changed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import budget_exams, markdown_table  # noqa: E402
from openbook.backends import load_backend  # noqa: E402
from openbook.exam import read_exam  # noqa: E402
from openbook.metrics import average_precision_at_3  # noqa: E402
from openbook.readers import LetterReader, read_question  # noqa: E402
from openbook.records import NO_CONTEXT, Question  # noqa: E402

SHARED_WORDS = 2  # fewer shared words are not worth a line of their own


def shared_run(options: list[list[str]]) -> int:
    """How many leading words every option has in common (the last word of none of them)."""
    count = 0
    while all(len(words) > count + 1 for words in options) and len({words[count] for words in options}) == 1:
        count += 1
    return count


def shortened(question: Question) -> Question:
    """The question with the words all its options share at their start and end said once, after the prompt."""
    words = [text.split() for text in question.options.values()]
    head = shared_run(words)
    tail = shared_run([w[head:][::-1] for w in words])
    head, tail = (head if head >= SHARED_WORDS else 0), (tail if tail >= SHARED_WORDS else 0)
    if not head and not tail:
        return question
    notes = []
    if head:
        notes.append(f"Every option begins: {' '.join(words[0][:head])} …")
    if tail:
        notes.append(f"Every option ends: … {' '.join(words[0][len(words[0]) - tail :])}")
    options = {letter: " ".join(w[head : len(w) - tail]) for letter, w in zip(question.options, words, strict=True)}
    return replace(question, prompt=question.prompt + "\n" + "\n".join(notes), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    args = parser.parse_args()
    questions = read_exam(budget_exams()["llmse-6k-val-long-100"])[: args.questions]
    backend = load_backend("llama.cpp", args.model)
    reader = LetterReader(backend)
    scores: dict[str, list[float]] = {"full": [], "shortened": []}
    tokens: dict[str, list[int]] = {"full": [], "shortened": []}
    changed = 0
    for question in questions:
        tops = []
        for way, asked in (("full", question), ("shortened", shortened(question))):
            (output,) = read_question([reader], backend, asked, NO_CONTEXT.context)
            ranking = sorted(output.probabilities, key=lambda letter: -output.probabilities[letter])
            scores[way].append(average_precision_at_3(ranking, question.answer))
            tokens[way].append(output.prompt_tokens)
            tops.append(ranking[0])
        changed += tops[0] != tops[1]
    differences = [s - f for f, s in zip(scores["full"], scores["shortened"])]
    error = statistics.stdev(differences) / math.sqrt(len(differences))
    rows = [
        [way, f"{statistics.mean(tokens[way]):.0f}", f"{statistics.mean(scores[way]):.3f}"]
        for way in ("full", "shortened")
    ]
    print(markdown_table(["options", "prompt tokens per question", "MAP@3"], rows))
    touched = sum(shortened(q) is not q for q in questions)
    print(
        f"\n{len(questions)} long questions ({touched} with shared words); shortened - full: "
        f"{statistics.mean(differences):+.3f} ± {error:.3f} MAP@3; top answer changed on {changed}"
    )


if __name__ == "__main__":
    main()
