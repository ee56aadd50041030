"""`openbook report`: one self-contained HTML file reviewing one run or comparing several.

Everything is inside the file (plots as inline SVG drawn by matplotlib, a few lines of script for the
question table's filters), so it opens anywhere without a network. For each run: the headline
(scores, time, settings, versions), a reliability diagram with its ECE, accuracy against coverage
when answering only the most confident questions, the letter distribution of first answers against
the gold letters, the cascade's routing with each stage's MAP@3, where the time went, a breakdown by
the exam's subject or source column where it has one, the model's seconds per question, how often
the source passage was read where the exam gives it (its `context` column); and a table of every question (search, filter
by right/wrong, stage and confidence) whose rows open the evidence read. With several runs, each is
compared with the first: the paired MAP@3 difference with its standard error and the questions that
changed, and the plots stand side by side.
"""

from __future__ import annotations

import html
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbook.ensemble.calibrate import ReliabilityBin
from openbook.errors import OpenbookError, require_modules
from openbook.evaluate.review import (
    RECALL_AT,
    RunFolder,
    RunSummary,
    compare,
    coverage_curve,
    question_seconds,
    reliability,
    source_recall,
    summarize,
)
from openbook.exam import read_exam
from openbook.files import write_atomically
from openbook.metrics import average_precision_at_3
from openbook.records import LETTERS, Question

BREAKDOWN_COLUMNS = ("subject", "source", "category", "topic")
FIGURE_SIZE = (4.2, 3.0)


def write_report(folders: Sequence[RunFolder], out: Path) -> Path:
    """The report of `folders` (the first is the reference of any comparison) written to `out`."""
    require_modules("report", "matplotlib")
    if not folders:
        raise ValueError("a report needs at least one run")
    names = _names(folders)
    reviewed = [Reviewed(folder, summarize(folder), *reliability(folder)) for folder in folders]  # once per run
    exam = _exam(folders[0])
    parts = [_headline(reviewed, names)]
    if len(folders) > 1:
        parts.append(_comparisons(folders, names))
    parts.append(_plots(reviewed, names))
    recall = _source_recall(folders, names, exam)
    if recall:
        parts.append(recall)
    breakdown = _breakdown(folders, names, exam)
    if breakdown:
        parts.append(breakdown)
    parts.append(_question_table(folders, names, exam))
    write_atomically(out, _page("".join(parts)))
    return out


@dataclass(frozen=True)
class Reviewed:
    """A run with what the report shows of it, worked out once."""

    folder: RunFolder
    summary: RunSummary
    bins: list[ReliabilityBin]
    ece: float


def _names(folders: Sequence[RunFolder]) -> list[str]:
    """Each run by its folder's name, or its path where two share a name."""
    short = [folder.path.name for folder in folders]
    return short if len(set(short)) == len(short) else [str(folder.path) for folder in folders]


def _headline(reviewed: Sequence[Reviewed], names: list[str]) -> str:
    rows = []
    for name, run in zip(names, reviewed):
        summary, ece = run.summary, run.ece
        settings = summary.settings
        used = summary.budget_used
        rows.append(
            [
                name,
                str(summary.questions),
                _score(summary.map3),
                _score(summary.accuracy),
                f"{ece:.3f}" if summary.answered else "-",
                f"{summary.seconds_per_question:.2f}",
                "no budget" if used is None else f"{used:.3f}",
                summary.model,
                f"{settings.get('evidence', '-')} ≤ {settings.get('context_tokens', '-')} tokens",
                str(summary.versions.get("openbook", "-")),
                str(run.folder.run.get("created", "-")),
            ]
        )
    header = ["run", "questions", "MAP@3", "accuracy", "ECE", "s/question", "time / budget", "model", "evidence"]
    header += ["openbook", "created"]
    return _section("Headline", _table(header, rows, "headline"))


def _comparisons(folders: Sequence[RunFolder], names: list[str]) -> str:
    rows = []
    for name, folder in zip(names[1:], folders[1:]):
        found = compare(folders[0], folder)
        rows.append(
            [
                f"{name} − {names[0]}",
                str(found.questions),
                f"{found.difference:+.3f} ± {found.standard_error:.3f}",
                str(len(found.better)),
                str(len(found.worse)),
                str(len(found.top_changed)),
            ]
        )
    header = ["runs", "shared questions", "paired MAP@3 difference ± SE", "better", "worse", "first answer changed"]
    return _section("Compared with " + names[0], _table(header, rows, "comparison"))


def _plots(reviewed: Sequence[Reviewed], names: list[str]) -> str:
    figures = []
    for name, run in zip(names, reviewed):
        summary, folder = run.summary, run.folder
        cells = [
            _reliability_plot(run.bins, run.ece, name),
            _coverage_plot(coverage_curve(folder), name),
            _letters_plot(summary.predicted_letters, summary.gold_letters if summary.answered else None, name),
            _time_plot(folder.run.get("seconds", {}), name),
            _question_time_plot(question_seconds(folder), name),
            _table(
                ["decided by", "questions", "MAP@3"],
                [[stage, str(score.questions), _score(score.map3)] for stage, score in summary.stages.items()],
                "routing",
            ),
        ]
        figures.append(f'<div class="run"><h3>{html.escape(name)}</h3>{"".join(cells)}</div>')
    return _section("Plots", f'<div class="runs">{"".join(figures)}</div>')


def _source_recall(folders: Sequence[RunFolder], names: list[str], exam: Sequence[Question]) -> str:
    """Where the exam gives each question's source passage: how often the run read it."""
    rows = []
    for name, folder in zip(names, folders):
        found = source_recall(folder, exam)
        if found is not None:
            recall = [f"{found.recall[k]:.3f}" for k in RECALL_AT]
            rows.append([name, str(found.questions), f"{found.share:.3f}", *recall])
    if not rows:
        return ""
    header = ["run", "questions with a source", "source read", *(f"among first {k} read" for k in RECALL_AT)]
    return _section("Retrieval: the source passage among the passages read", _table(header, rows, "recall"))


def _breakdown(folders: Sequence[RunFolder], names: list[str], questions: Sequence[Question]) -> str:
    """MAP@3 per value of the exam's subject/source column, where the exam is readable and has one."""
    column = next((c for c in BREAKDOWN_COLUMNS if any(c in q.extra for q in questions)), None)
    if column is None:
        return ""
    group = {q.id: q.extra.get(column, "") or "(none)" for q in questions}
    values = sorted(set(group.values()))
    every_scores = [folder.scores() for folder in folders]
    rows = []
    for value in values:
        row = [value]
        for scored in every_scores:
            scores = [s for qid, s in scored.items() if group.get(qid) == value]
            row.append(f"{statistics.mean(scores):.3f} ({len(scores)})" if scores else "-")
        rows.append(row)
    return _section(f"MAP@3 by {column}", _table([column, *names], rows, "breakdown"))


def _question_table(folders: Sequence[RunFolder], names: list[str], exam: Sequence[Question]) -> str:
    first = folders[0]
    prompts = {q.id: q.prompt for q in exam}
    others = [{str(r["id"]): r for r in folder.records} for folder in folders[1:]]
    rows = []
    for record in first.records:
        qid = str(record["id"])
        answer = record.get("answer")
        right = "" if not answer else ("right" if record["ranking"][0] == answer else "wrong")
        ap = f"{average_precision_at_3(record['ranking'], answer):.2f}" if answer else "-"
        elsewhere = "".join(
            f"<td>{html.escape(' '.join(o[qid]['ranking'][:3]))}</td>" if qid in o else "<td>-</td>" for o in others
        )
        rows.append(
            f'<tr data-right="{right}" data-stage="{html.escape(str(record.get("stage", "first")))}" '
            f'data-confidence="{float(record["confidence"]):.4f}">'
            f"<td>{html.escape(qid)}</td><td>{html.escape(prompts.get(qid, ''))}</td><td>{html.escape(' '.join(record['ranking'][:3]))}</td>"
            f"<td>{html.escape(str(answer or '-'))}</td><td>{ap}</td><td>{float(record['confidence']):.3f}</td>"
            f"<td>{html.escape(str(record.get('stage', 'first')))}</td>"
            f"<td>{float(record.get('seconds') or 0.0):.2f}</td>{elsewhere}"
            f"<td>{_evidence(record)}</td></tr>"
        )
    stages = sorted({str(r.get("stage", "first")) for r in first.records})
    controls = (
        '<div class="filters"><input id="search" type="search" placeholder="search ids and evidence">'
        '<select id="right"><option value="">right and wrong</option><option>right</option><option>wrong</option>'
        '</select><select id="stage"><option value="">every stage</option>'
        + "".join(f"<option>{html.escape(s)}</option>" for s in stages)
        + '</select><label>confidence ≥ <input id="confidence" type="number" min="0" max="1" step="0.05" value="0">'
        '</label> <span id="shown"></span></div>'
    )
    header = ["id", "question", f"top 3 ({names[0]})", "answer", "AP@3", "confidence", "stage", "s"]
    header += [f"top 3 ({name})" for name in names[1:]] + ["evidence"]
    table = (
        '<table id="questions"><thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    return _section(f"Questions ({names[0]})", controls + table)


def _exam(folder: RunFolder) -> list[Question]:
    """The run's exam, where its file is still there to read (for prompts and subject columns)."""
    exam = folder.run.get("settings", {}).get("exam")
    if not exam or not Path(exam).is_file():
        return []
    try:
        return read_exam(exam)
    except OpenbookError:  # changed since: the report goes on without it
        return []


def _evidence(record: dict[str, Any]) -> str:
    contexts = [c for c in record.get("contexts", []) if c.get("passages")]
    if not contexts:
        return "none read"
    blocks = []
    for context in contexts:
        titles = ", ".join(
            f"{html.escape(p['title'] or '(untitled)')} [{html.escape(p['id'])}]" for p in context["passages"]
        )
        read = context.get("read") or "\n\n".join(p["text"] for p in context["passages"])
        blocks.append(
            f"<p><b>{html.escape(context['retrieval'])}</b>, {context['tokens']} tokens: {titles}</p>"
            f"<pre>{html.escape(read)}</pre>"
        )
    return f"<details><summary>{len(contexts)} context(s)</summary>{''.join(blocks)}</details>"


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=FIGURE_SIZE)
    return figure, axes


def _svg(figure: Any, label: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    svg = buffer.getvalue()
    return f'<figure class="plot" data-plot="{html.escape(label)}">{svg[svg.index("<svg") :]}</figure>'


def _reliability_plot(bins: Sequence[Any], ece: float, name: str) -> str:
    figure, axes = _figure()
    filled = [b for b in bins if b.count]
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.bar(
        [b.low for b in filled],
        [b.accuracy for b in filled],
        width=[b.high - b.low for b in filled],
        align="edge",
        alpha=0.7,
    )
    axes.plot([b.confidence for b in filled], [b.accuracy for b in filled], "o", color="black", markersize=3)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"reliability, ECE {ece:.3f}")
    return _svg(figure, f"reliability {name}")


def _coverage_plot(curve: Sequence[tuple[float, float]], name: str) -> str:
    figure, axes = _figure()
    if curve:
        axes.plot([c for c, _ in curve], [a for _, a in curve])
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="share answered (most confident first)", ylabel="accuracy")
    axes.set_title("accuracy against coverage")
    return _svg(figure, f"coverage {name}")


def _letters_plot(predicted: dict[str, int], gold: dict[str, int] | None, name: str) -> str:
    figure, axes = _figure()
    positions = range(len(LETTERS))
    axes.bar([p - 0.2 for p in positions], [predicted[letter] for letter in LETTERS], width=0.4, label="predicted")
    if gold is not None:
        axes.bar([p + 0.2 for p in positions], [gold[letter] for letter in LETTERS], width=0.4, label="gold")
    axes.set_xticks(list(positions), list(LETTERS))
    axes.set(ylabel="questions", title="first answers per letter")
    axes.legend()
    return _svg(figure, f"letters {name}")


def _time_plot(seconds: dict[str, Any], name: str) -> str:
    figure, axes = _figure()
    parts = {k: float(seconds.get(k, 0.0)) for k in ("load_model", "retrieve_and_pack", "model", "earlier_runs")}
    parts["other"] = max(
        0.0, float(seconds.get("total", 0.0)) - parts["load_model"] - parts["retrieve_and_pack"] - parts["model"]
    )
    axes.barh(list(parts), list(parts.values()))
    axes.set(xlabel="seconds", title=f"time: {float(seconds.get('per_question', 0)):.2f} s/question")
    return _svg(figure, f"time {name}")


def _question_time_plot(seconds: dict[str, list[float]], name: str) -> str:
    figure, axes = _figure()
    every = [s for taken in seconds.values() for s in taken]
    if every:
        axes.hist(list(seconds.values()), bins=20, stacked=True, label=list(seconds))
        axes.legend(title="decided by")
        title = f"model seconds per question: median {statistics.median(every):.2f}, max {max(every):.2f}"
    else:
        title = "model seconds per question: not recorded"
    axes.set(xlabel="seconds", ylabel="questions", title=title)
    return _svg(figure, f"question time {name}")


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], name: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{content}</section>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;font-size:.9em}th{background:#f3f3f3}
.runs{display:flex;flex-wrap:wrap;gap:1em}.run{border:1px solid #ddd;padding:.5em}.plot svg{width:420px;height:auto}
pre{white-space:pre-wrap;max-width:60em}.filters{display:flex;gap:1em;align-items:center;margin:.5em 0}
"""
SCRIPT = """
const rows=[...document.querySelectorAll('#questions tbody tr')];
function filter(){const q=document.getElementById('search').value.toLowerCase();
const right=document.getElementById('right').value, stage=document.getElementById('stage').value;
const least=parseFloat(document.getElementById('confidence').value)||0;let shown=0;
for(const row of rows){const ok=(!q||row.textContent.toLowerCase().includes(q))&&(!right||row.dataset.right===right)
&&(!stage||row.dataset.stage===stage)&&parseFloat(row.dataset.confidence)>=least;row.style.display=ok?'':'none';shown+=ok}
document.getElementById('shown').textContent=shown+' of '+rows.length+' questions';}
for(const id of ['search','right','stage','confidence'])document.getElementById(id).addEventListener('input',filter);
filter();
"""


def _page(body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>openbook report</title>'
        f"<style>{STYLE}</style></head><body><h1>openbook report</h1>{body}<script>{SCRIPT}</script></body></html>"
    )
