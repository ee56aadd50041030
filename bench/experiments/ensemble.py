"""Readers, ensembles and cascades on held-out questions: MAP@3 and seconds/question. Decides whether
an ensemble or the encoder joins the default answer path, and which first stage a cascade should use.

    python bench/experiments/ensemble.py --encoder runs/encoder-minilm     # after `openbook train encoder`
    python bench/experiments/ensemble.py --members letter@none letter@bm25 --sets default-exam --questions 30

Sets (none of them trained on by the encoder, whose training excludes the default exam and keeps its
own validation split):
- default-exam: the 100 llmse-stem-1k questions of the default exam;
- arc-challenge-val: 100 questions (seed 2023, bench/out/arc-challenge-val-100.csv);
- llmse-6k-dev-val: the first questions of the encoder's validation split that come from llmse-6k-dev
  (without --encoder: the same split rebuilt at `openbook train encoder`'s defaults).

Members: the trained encoder (the context it was trained with), and the letter reader with no
context, with 1,000 tokens of BM25 context and with `hybrid-rrf/both+embed` context; named with
--members also: `letter@bm25-500`, `letter@auto-500` and `letter@rerank-500` (500 tokens of BM25,
`hybrid-rrf/both+embed` or `bm25/both+embed` context), `letter@hybrid-500` and `letter@hybrid-250`
(500 or 250 tokens of `hybrid-rrf+embed`, what `auto` picks on a dense index), and
`letter-rot3@none`, `letter-rot5@none` (the no-context reader in 3 or 5 option orders, from
bench/experiments/letter_prior.py's recordings, at the paces of docs/benchmarks.md, "Reader time").
Each other member is a one-stage `run_exam` run kept in bench/out/ensemble/SET/MEMBER (the
encoder's in encoder@ENCODER_FOLDER_NAME) and resumed when present, so a stopped bench continues
and finished members are not recomputed; its s/question comes from the run itself.

Ensembles are scored out of fold (`out_of_fold_scores`, 5-fold cross-validation over the set's
questions). Cascades are replayed from the members' recorded outputs (bench/experiments/replay.py):
a cheap member (the encoder, or the letter reader without context) answers everything, and the
questions with its smallest top-1/top-2 margin are re-read by the letter reader with BM25 context
while the budget (seconds/question over the set, at the members' measured paces) allows; a re-read
question is decided by the main reader, by the mean of both, or by an ensemble of both fitted by
`fit_ensemble` on the other folds.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (  # noqa: E402
    DEFAULT_EXAM,
    OUT,
    ROOT,
    SHARED,
    answered_run,
    arc_sample,
    markdown_table,
    reconstructed_6k_validation,
    write_exam,
)
from experiments.replay import Item, Pace, alone, letter_output, outputs_of, recorded_orders, replay  # noqa: E402
from openbook.answer import AnswerOptions  # noqa: E402
from openbook.ensemble import Ensemble, fit_ensemble, scored_from_runs, scored_question  # noqa: E402
from openbook.ensemble.learned import evaluate_scores, out_of_fold_scores  # noqa: E402
from openbook.exam import read_exam  # noqa: E402
from openbook.records import Question  # noqa: E402
from openbook.train.loop import SUMMARY_FILE  # noqa: E402

HEADER = ["set", "reader / ensemble", "MAP@3", "accuracy", "s/question", "notes"]
FOLD_SEED = 13  # as `openbook ensemble fit`


def exam_sets(names: list[str], encoder: Path | None, count: int) -> dict[str, Path]:
    sets = {}
    if "default-exam" in names:
        sets["default-exam"] = DEFAULT_EXAM.relative_to(ROOT)  # relative, as the members' run settings record it
    if "arc-challenge-val" in names:
        sets["arc-challenge-val"] = arc_sample().relative_to(ROOT)
    if "llmse-6k-dev-val" in names:
        if encoder is None:
            held_out = reconstructed_6k_validation()
        else:  # the encoder's own split; its ids are EXAM-NUMBER:ID
            validation = training_summary(encoder)["validation_ids"]
            by_id = {q.id: q for q in read_exam(SHARED / "exams" / "llmse-6k-dev.csv")}
            held_out = [by_id[i.split(":", 1)[1]] for i in validation if i.startswith("0:")]
        sets["llmse-6k-dev-val"] = write_exam(held_out[:100], OUT / "llmse-6k-dev-val-100.csv")
    return sets


def training_summary(encoder: Path) -> dict:
    """The encoder's training.json (`openbook train encoder`): its settings and validation split."""
    return json.loads((encoder / SUMMARY_FILE).read_text())


def member_folder(set_name: str, name: str, encoder: Path | None) -> Path:
    """Where a member's run is kept; each trained encoder has its own, so another encoder is run, not resumed."""
    folder = f"encoder@{encoder.name}" if name == "encoder" and encoder is not None else name
    return OUT / "ensemble" / set_name / folder


def members(encoder: Path | None, model: str, index: Path) -> dict[str, AnswerOptions]:
    base = AnswerOptions(
        index=index, model=model, progress=True, resume=True, triage_readers=[], context_tokens=1000
    )  # one stage each; 1,000 tokens unless a member says otherwise
    found = {
        "letter@none": replace(base, readers=["letter"], retrieval=["bm25"], context_tokens=0),
        "letter@bm25": replace(base, readers=["letter"], retrieval=["bm25"]),
        "letter@auto": replace(base, readers=["letter"], retrieval=["hybrid-rrf/both+embed"]),
        "letter@bm25-500": replace(base, readers=["letter"], retrieval=["bm25"], context_tokens=500),
        "letter@auto-500": replace(base, readers=["letter"], retrieval=["hybrid-rrf/both+embed"], context_tokens=500),
        # BM25 with per-option queries, reranked by MiniLM
        "letter@rerank-500": replace(base, readers=["letter"], retrieval=["bm25/both+embed"], context_tokens=500),
        "letter@hybrid-500": replace(base, readers=["letter"], retrieval=["hybrid-rrf+embed"], context_tokens=500),
        "letter@hybrid-250": replace(base, readers=["letter"], retrieval=["hybrid-rrf+embed"], context_tokens=250),
    }
    if encoder is not None:
        trained = training_summary(encoder)["settings"]  # read as it was trained
        found["encoder"] = replace(
            base,
            readers=["encoder"],
            encoder=str(encoder),
            retrieval=[trained["retrieval"]],
            context_tokens=trained["context_tokens"],
            encoder_tokens=trained["max_tokens"],
        )
    return found


DEFAULT_MEMBERS = ["encoder", "letter@none", "letter@bm25", "letter@auto"]
# no-context letter readers over k cyclic option orders, from bench/experiments/letter_prior.py's
# recordings: (k, seconds/question as docs/benchmarks.md, "Reader time", measured them)
RECORDED = {"letter-rot3@none": (3, 6.3), "letter-rot5@none": (5, 9.1)}


def fold_ensembles(scored, readers: list[str], folds: int) -> list[Ensemble] | None:
    """Per question, an ensemble of `readers` fitted by `fit_ensemble` (weighted) on the other folds;
    None with too few questions to fit on."""
    if len(scored) < 3 * folds:
        return None
    order = np.random.default_rng(FOLD_SEED).permutation(len(scored))
    fitted: list[Ensemble | None] = [None] * len(scored)
    for fold in range(folds):
        held = set(order[fold::folds].tolist())
        train = [q for i, q in enumerate(scored) if i not in held]
        model = fit_ensemble(train, readers, methods=("weighted",), folds=folds, seed=FOLD_SEED)
        for i in held:
            fitted[i] = model
    return fitted  # type: ignore[return-value]


def cascade_rows(set_name, scored, questions, cheap, expensive, seconds, budgets, folds):
    """The cheap member's hardest questions re-read by the expensive one while the budget lasts."""
    items = []
    for q in scored:
        outputs = outputs_of(q)
        items.append(Item(questions[q.id], outputs[cheap], outputs[expensive]))
    ensembles = fold_ensembles(scored, [cheap, expensive], folds)
    rows = []
    for budget in budgets:
        for label, decided_by in (
            ("expensive decides", "main stage"),
            ("both stages averaged", "mean of both stages"),
            ("fitted ensemble decides", "ensemble"),
        ):
            if decided_by == "ensemble" and ensembles is None:
                continue
            done = replay(items, Pace(seconds[cheap], seconds[expensive]), budget, decided_by, ensembles=ensembles)
            rows.append(
                [
                    set_name,
                    f"cascade {cheap} → {expensive}, {label}, budget {budget:g} s/q",
                    f"{done.scores.map_at_3:.4f}",
                    f"{done.scores.accuracy:.4f}",
                    f"{done.seconds_per_question:.2f}",
                    f"{done.with_context}/{len(items)} re-read",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, default=None, help="trained encoder folder (openbook train encoder)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--index", type=Path, default=Path("runs/default-index"), help="the members' index")
    parser.add_argument("--sets", nargs="+", default=["default-exam", "arc-challenge-val", "llmse-6k-dev-val"])
    parser.add_argument(
        "--members",
        nargs="+",
        default=DEFAULT_MEMBERS,
        help="members to run (default: %(default)s); also letter@bm25-500 letter@auto-500 letter@rerank-500 "
        "letter@hybrid-500 letter@hybrid-250, and letter-rot3@none letter-rot5@none (recorded)",
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
    encoder = args.encoder.resolve() if args.encoder else None
    if "encoder" in args.members and encoder is None:
        parser.error("the encoder member needs --encoder DIR (leave it out of --members otherwise)")
    rows = []
    for set_name, exam in exam_sets(args.sets, encoder, args.questions).items():
        chosen = {name: o for name, o in members(encoder, args.model, args.index).items() if name in args.members}
        recorded = [name for name in RECORDED if name in args.members]
        seconds, folders = {}, []
        for name, options in chosen.items():
            out = member_folder(set_name, name, encoder)
            print(f"[{set_name}] {name}", file=sys.stderr, flush=True)
            metrics = answered_run(replace(options, exam=exam, out=out), read_exam(exam)[: args.questions])
            # one reader per member run: joined runs name it FOLDER/READER (a lone run keeps READER)
            reader = f"{out.name}/{options.readers[0]}" if len(chosen) > 1 else options.readers[0]
            seconds[reader] = metrics["seconds"]["per_question"]
            folders.append(out)
        questions = read_exam(exam)[: args.questions]
        by_id: dict[str, Question] = {q.id: q for q in questions}
        # the questions every member answered
        scored = scored_from_runs(folders, questions) if folders else [scored_question(q, {}, "") for q in questions]
        for name in recorded:
            entries = recorded_orders(set_name, args.model)
            orders, pace = RECORDED[name]
            scored = [
                replace(
                    q,
                    readers={
                        **q.readers,
                        name: np.array([letter_output(entries[q.id], orders).probabilities[k] for k in q.letters]),
                    },
                )
                for q in scored
                if q.id in entries
            ]
            seconds[name] = pace
        for item in args.pace:
            member, value = item.split("=")
            for name in seconds:
                if name.split("/")[0] == member_folder(set_name, member, encoder).name:
                    seconds[name] = float(value)
        names = list(seconds)
        for name in names:
            scores = alone([by_id[q.id] for q in scored], [outputs_of(q)[name] for q in scored])
            rows.append(
                [set_name, name, f"{scores.map_at_3:.4f}", f"{scores.accuracy:.4f}", f"{seconds[name]:.2f}", ""]
            )
        # every member together, and every pair (the cheaper ensembles)
        groups = ([names] if len(names) > 2 else []) + [list(pair) for pair in combinations(names, 2)]
        if len(scored) >= 2 * args.folds:
            for group in groups:
                for method in ("mean", "weighted", "ranker"):
                    oof = out_of_fold_scores(method, scored, group, args.folds, FOLD_SEED)
                    score, _ = evaluate_scores(scored, oof, method, args.folds, FOLD_SEED)
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
        # each cheap stage, then the letter reader with BM25 context (1,000 tokens, or 500)
        for cheap, expensive in product(
            (encoder_reader, "letter@none/letter"), ("letter@bm25/letter", "letter@bm25-500/letter")
        ):
            if cheap in names and expensive in names:
                rows += cascade_rows(set_name, scored, by_id, cheap, expensive, seconds, args.budgets, args.folds)
        set_table = markdown_table(HEADER, [row for row in rows if row[0] == set_name])
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"ensemble-{set_name}.md").write_text(set_table + "\n")
    print(markdown_table(HEADER, rows))


if __name__ == "__main__":
    main()
