"""Benchmark readers, ensembles and cascades on held-out questions: MAP@3 and seconds/question.

    python bench/ensemble.py --encoder runs/encoder-minilm            # after `openbook train encoder`
    python bench/ensemble.py --encoder runs/encoder-minilm --questions 30 --sets default-exam

Sets (none of them trained on by the encoder, whose training excludes the default exam and keeps its
own validation split):
- default-exam: the 100 llmse-stem-1k questions of the default exam;
- arc-challenge-val: 100 questions (seed 2023, bench/out/arc-challenge-val-100.csv);
- llmse-6k-dev-val: the first questions of the encoder's validation split that come from llmse-6k-dev.

Members: the trained encoder (BM25 context as it was trained), and qwen's letter reader with no
context, with 1,000 tokens of BM25 context and with `hybrid-rrf/both+embed` context (`auto` until session 13) (and, when named with
--members, `letter@bm25-500`, `letter@auto-500` and `letter@rerank-500`: 500 tokens of BM25, `auto`
or `bm25/both+embed` context; `letter@hybrid-500` and `letter@hybrid-250`: 500 or 250 tokens of
`hybrid-rrf+embed` context, `auto` since session 13; `letter-rot3@none` and `letter-rot5@none`: the no-context reader
in 3 or 5 option orders, from bench/letter_prior.py's recordings). Each other member is a
real `openbook` run (answer_exam) kept in bench/out/ensemble/SET/MEMBER (the encoder's in
encoder@ENCODER_FOLDER_NAME) and resumed when present,
so a stopped bench continues and finished members are not recomputed. Their s/question
comes from the run itself. Ensembles are scored out of fold (5-fold cross-validation over the set's
questions: every question is scored by a fit that did not see it). Cascades are replayed from the
members' recorded outputs: a cheap member (the encoder, or qwen without context) answers
everything, and the questions with its smallest top-1/top-2 margin go to qwen with BM25 context while
the budget (seconds/question over the set, at the members' measured pace) allows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from itertools import combinations, product
from pathlib import Path

import numpy as np

from common import OUT, ROOT, SHARED, markdown_table, sample_exam
from openbook.ensemble import scored_from_runs, scored_question
from openbook.ensemble.calibrate import with_temperature
from openbook.ensemble.learned import evaluate_scores, out_of_fold_scores, ranking_of
from openbook.evaluate.report import PredictionLog, write_run
from openbook.exam import read_exam
from openbook.metrics import score_rankings
from openbook.pipeline import AnswerOptions, answer_exam, settings_of
from openbook.records import Question
from openbook.train.loop import SUMMARY_FILE

HEADER = ["set", "reader / ensemble", "MAP@3", "accuracy", "s/question", "notes"]
DEFAULT_EXAM = Path("src/openbook/resources/default-exam.csv")
ARC_SAMPLE = Path("bench/out/arc-challenge-val-100.csv")


def write_exam(questions: list[Question], path: Path) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt", "A", "B", "C", "D", "E", "answer"])
        for q in questions:
            writer.writerow([q.id, q.prompt, *(q.options.get(letter, "") for letter in "ABCDE"), q.answer])
    return path


def exam_sets(names: list[str], encoder: Path, count: int) -> dict[str, Path]:
    sets = {}
    if "default-exam" in names:
        sets["default-exam"] = DEFAULT_EXAM
    if "arc-challenge-val" in names:
        if not ARC_SAMPLE.exists():
            write_exam(sample_exam("arc-challenge-val", 100), ARC_SAMPLE)
        sets["arc-challenge-val"] = ARC_SAMPLE
    if "llmse-6k-dev-val" in names:
        validation = training_summary(encoder)["validation_ids"]  # the encoder's split; ids are EXAM-NUMBER:ID
        held_out = [i.split(":", 1)[1] for i in validation if i.startswith("0:")]
        by_id = {q.id: q for q in read_exam(SHARED / "exams" / "llmse-6k-dev.csv")}
        sets["llmse-6k-dev-val"] = write_exam([by_id[i] for i in held_out[:100]], OUT / "llmse-6k-dev-val-100.csv")
    return {name: path for name, path in sets.items()}


def training_summary(encoder: Path) -> dict:
    """The encoder's training.json (`openbook train encoder`): its settings and validation split."""
    return json.loads((encoder / SUMMARY_FILE).read_text())


def member_folder(set_name: str, name: str, encoder: Path) -> Path:
    """Where a member's run is kept; each trained encoder has its own, so another encoder is run, not resumed."""
    return OUT / "ensemble" / set_name / (f"encoder@{encoder.name}" if name == "encoder" else name)


def members(encoder: Path, model: str) -> dict[str, AnswerOptions]:
    base = AnswerOptions(
        index=Path("runs/default-index"),
        model=model,
        progress=True,
        resume=True,
        triage_readers=[],
        context_tokens=1000,
    )  # as these members were first run, whatever the default becomes
    trained = training_summary(encoder)["settings"]  # read as it was trained
    return {
        "encoder": replace(
            base,
            readers=["encoder"],
            encoder=str(encoder),
            retrieval=[trained["retrieval"]],
            context_tokens=trained["context_tokens"],
            encoder_tokens=trained["max_tokens"],
        ),
        "letter@none": replace(base, readers=["letter"], retrieval=["bm25"], context_tokens=0),
        "letter@bm25": replace(base, readers=["letter"], retrieval=["bm25"]),
        # `auto` as it was when these members were run (it is hybrid-rrf+embed since session 13)
        "letter@auto": replace(base, readers=["letter"], retrieval=["hybrid-rrf/both+embed"]),
        # half the context, the cascade's main stage since session 6 (bench/triage.py); opt-in (--members)
        "letter@bm25-500": replace(base, readers=["letter"], retrieval=["bm25"], context_tokens=500),
        "letter@auto-500": replace(base, readers=["letter"], retrieval=["hybrid-rrf/both+embed"], context_tokens=500),
        # BM25 with per-option queries, reranked by MiniLM: recall@5 0.935 on llmse-stem-1k (bench/retrieval.py)
        "letter@rerank-500": replace(base, readers=["letter"], retrieval=["bm25/both+embed"], context_tokens=500),
        # the default retriever since session 13 (`auto` on a dense index): recall@1 0.843, recall@5 0.987,
        # so fewer passages may hold the source; 250 tokens (~3 passages) cost less to re-read
        "letter@hybrid-500": replace(base, readers=["letter"], retrieval=["hybrid-rrf+embed"], context_tokens=500),
        "letter@hybrid-250": replace(base, readers=["letter"], retrieval=["hybrid-rrf+embed"], context_tokens=250),
    }


# members run only when named, so the default bench is the README's table
OPT_IN = {"letter@bm25-500", "letter@auto-500", "letter@rerank-500", "letter@hybrid-500", "letter@hybrid-250"}

# no-context letter readers over k cyclic option orders (the default triage reads 3, ARC's best reader
# 5), taken from bench/letter_prior.py's recording of the same questions: its first k orders are what
# LetterReader(rotations=k) reads, to the digit (README, "Letter prior"). Paces: the readers' own runs
# (README, "Readers"). Opt-in (--members), after `python bench/letter_prior.py`.
RECORDED = {"letter-rot3@none": (3, 6.3), "letter-rot5@none": (5, 9.1)}


def recorded_readers(set_name: str, name: str, model: str) -> dict[str, np.ndarray]:
    """Question id -> the recorded member's probabilities in letter order."""
    from letter_prior import scores

    path = OUT / "letter-orders" / model / f"{set_name}.jsonl"
    if not path.exists():
        raise SystemExit(f"{name} needs {path}: run `python bench/letter_prior.py --sets {set_name}` first")
    orders, _ = RECORDED[name]
    return {entry["id"]: scores(entry, orders, None) for entry in map(json.loads, path.read_text().splitlines())}


def run_member(exam: Path, options: AnswerOptions, out: Path, limit: int) -> dict:
    """The member's run on the set (resumed when stopped); its metrics.json."""
    questions = read_exam(exam)[:limit]
    options = replace(options, exam=exam, out=out)
    metrics_file = out / "metrics.json"
    if metrics_file.exists():
        done = sum(1 for _ in (out / "predictions.jsonl").open())
        if done >= len(questions):
            return json.loads(metrics_file.read_text())
    log = PredictionLog(out, settings_of(options), resume=True)
    try:
        run = answer_exam(questions, options, on_result=log.add, earlier=log.earlier(questions))
    finally:
        log.close()
    return write_run(run, out, log.previous, log.seconds_before)


def cascade_rows(set_name, scored, cheap, expensive, seconds, budgets, combined=None):
    """Replay: escalate the smallest margins of `cheap` to `expensive` while the budget lasts."""
    rows = []
    n = len(scored)

    def margin(i: int) -> float:
        top = np.sort(scored[i].readers[cheap])
        return float(top[-1] - top[-2])

    order = sorted(range(n), key=margin)  # hardest first
    for budget in budgets:
        affordable = int(max(0.0, (budget - seconds[cheap]) * n / seconds[expensive]))
        escalated = set(order[: min(affordable, n)])
        averaged = [(q.readers[cheap] + q.readers[expensive]) / 2 for q in scored]
        for label, decide in (
            ("expensive decides", None),
            ("both stages averaged", averaged),
            ("fitted ensemble decides", combined),
        ):
            if label != "expensive decides" and decide is None:
                continue
            pairs = []
            for i, q in enumerate(scored):
                if i in escalated:
                    probabilities = q.readers[expensive] if decide is None else decide[i]
                else:
                    probabilities = q.readers[cheap]
                pairs.append((ranking_of(q.letters, probabilities), q.answer))
            scores = score_rankings(pairs)
            spent = seconds[cheap] + len(escalated) * seconds[expensive] / n
            rows.append(
                [
                    set_name,
                    f"cascade {cheap} → {expensive}, {label}, budget {budget:g} s/q",
                    f"{scores.map_at_3:.4f}",
                    f"{scores.accuracy:.4f}",
                    f"{spent:.2f}",
                    f"{len(escalated)}/{n} escalated",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True, help="trained encoder folder (openbook train encoder)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--sets", nargs="+", default=["default-exam", "arc-challenge-val", "llmse-6k-dev-val"])
    parser.add_argument(
        "--members",
        nargs="+",
        default=None,
        help="members to run (default: all but the 500- and 250-token ones): encoder letter@none "
        "letter@bm25 letter@auto letter@bm25-500 letter@auto-500 letter@rerank-500 letter@hybrid-500 "
        "letter@hybrid-250 "
        "letter-rot3@none letter-rot5@none (these two from bench/letter_prior.py's recordings)",
    )
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--budgets", nargs="+", type=float, default=[5.0, 10.0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--pace",
        nargs="*",
        default=[],
        metavar="MEMBER=SECONDS",
        help="seconds/question to plan cascades with instead of a member's measured pace "
        "(e.g. letter@none=3.0 when its run shared the CPU)",
    )
    args = parser.parse_args()
    os.chdir(ROOT)  # run settings record relative paths, so earlier runs can be resumed from any folder
    encoder = args.encoder.resolve()
    rows = []
    for set_name, exam in exam_sets(args.sets, encoder, args.questions).items():
        chosen = {
            name: options
            for name, options in members(encoder, args.model).items()
            if (name not in OPT_IN if args.members is None else name in args.members)
        }
        recorded = [name for name in RECORDED if args.members is not None and name in args.members]
        seconds, folders = {}, []
        for name, options in chosen.items():
            out = member_folder(set_name, name, encoder)
            print(f"[{set_name}] {name}", file=sys.stderr, flush=True)
            metrics = run_member(exam, options, out, args.questions)
            # one reader per member run: joined runs name it FOLDER/READER (a lone run keeps READER)
            seconds[f"{out.name}/{options.readers[0]}" if len(chosen) > 1 else options.readers[0]] = metrics["seconds"][
                "per_question"
            ]
            folders.append(out)
        questions = read_exam(exam)[: args.questions]
        # the questions every member answered
        scored = scored_from_runs(folders, questions) if folders else [scored_question(q, {}, "") for q in questions]
        for name in recorded:
            readings = recorded_readers(set_name, name, args.model)
            scored = [replace(q, readers={**q.readers, name: readings[q.id]}) for q in scored if q.id in readings]
            seconds[name] = RECORDED[name][1]
        for item in args.pace:
            member, value = item.split("=")
            for name in seconds:
                if name.split("/")[0] == member_folder(set_name, member, encoder).name:
                    seconds[name] = float(value)
        names = list(seconds)
        for name in names:
            alone = score_rankings((ranking_of(q.letters, q.readers[name]), q.answer) for q in scored)
            rows.append([set_name, name, f"{alone.map_at_3:.4f}", f"{alone.accuracy:.4f}", f"{seconds[name]:.2f}", ""])
        # every member together, and every pair (the cheaper ensembles)
        groups = ([names] if len(names) > 2 else []) + [list(pair) for pair in combinations(names, 2)]
        for group in groups:
            for method in ("mean", "weighted", "ranker"):
                score, _ = evaluate_scores(
                    scored, out_of_fold_scores(method, scored, group, args.folds), method, args.folds
                )
                rows.append(
                    [
                        set_name,
                        f"{method}({' + '.join(group)})",
                        f"{score.map_at_3:.4f}",
                        f"{score.accuracy:.4f}",
                        f"{sum(seconds[n] for n in group):.2f}",
                        f"ECE {score.ece:.3f}",
                    ]
                )
        encoder_reader = f"{member_folder(set_name, 'encoder', encoder).name}/encoder"
        # each cheap stage, then qwen with BM25 context (1,000 tokens, or 500: the default main stage)
        for cheap, expensive in product(
            (encoder_reader, "letter@none/letter"), ("letter@bm25/letter", "letter@bm25-500/letter")
        ):
            if cheap in names and expensive in names:
                oof = out_of_fold_scores("weighted", scored, [cheap, expensive], args.folds)
                _, temperature = evaluate_scores(scored, oof, "weighted", args.folds)  # as fit_ensemble calibrates
                combined = [with_temperature(s, temperature) for s in oof]
                rows += cascade_rows(set_name, scored, cheap, expensive, seconds, args.budgets, combined)
        set_table = markdown_table(HEADER, [row for row in rows if row[0] == set_name])
        (OUT / f"ensemble-{set_name}.md").write_text(set_table + "\n")
    print(markdown_table(HEADER, rows))


if __name__ == "__main__":
    main()
