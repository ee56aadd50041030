"""`openbook ask`: one question with its options, answered and shown with the path that decided it
and the evidence read; with no question, questions are read from the terminal one after another,
the model and index kept loaded; with no options, the evidence alone.

Its options are the answer path's (the options registry, `[answer]` table of a config file), less
those about exam files and run folders."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from openbook.answer import AnswerOptions, make_plan
from openbook.answer.session import Session
from openbook.cli.common import options_command, results
from openbook.errors import ConfigError
from openbook.progress import console
from openbook.records import LETTERS, Question, QuestionResult, RetrievedContext
from openbook.runlog import evidence_record, record_of

MOST_OPTIONS = len(LETTERS)
# about exam files and runs, and spreading a run over a cluster: a session answers here, question by question
RUN_ONLY_OPTIONS = ("exam", "out", "resume", "limit", "progress", "question_batch", "ray", "ray_actors")

QuestionArgument = Annotated[
    str | None, typer.Argument(help="The question (none: ask one question after another from the terminal).")
]
OptionOption = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="An answer option, in order; repeat 2-5 times (none: show the evidence only)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the answer as one JSON object (for scripts).")]
SWITCHES = [
    inspect.Parameter("question", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=QuestionArgument),
    inspect.Parameter("option", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=OptionOption),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption),
]


def asked(prompt: str, options: Sequence[str], number: int = 1) -> Question:
    """The question as the answer path reads it: options lettered A, B, … in the order given."""
    if not prompt.strip():
        raise ConfigError("the question is empty")
    if len(options) == 1 or len(options) > MOST_OPTIONS:
        raise ConfigError(f"give 2 to {MOST_OPTIONS} options (-o), not {len(options)}")
    empty = [LETTERS[i] for i, text in enumerate(options) if not text.strip()]
    if empty:
        raise ConfigError(f"option {', '.join(empty)} is empty")
    return Question(f"ask-{number}", prompt.strip(), {LETTERS[i]: text.strip() for i, text in enumerate(options)})


def answer_record(result: QuestionResult) -> dict[str, Any]:
    """The answer as predictions.jsonl logs it, with the question and its options."""
    return {"question": result.question.prompt, "options": result.question.options, **record_of(result)}


def evidence_only_record(question: Question, contexts: Sequence[RetrievedContext]) -> dict[str, Any]:
    return {
        "question": question.prompt,
        "ranking": None,
        "note": "give 2-5 options (-o) to rank them",
        "contexts": [evidence_record(c) for c in contexts],
    }


def print_answer(result: QuestionResult) -> None:
    prediction, question = result.prediction, result.question
    ranking = Table("rank", "option", "text", "probability", title=escape(question.prompt))
    for rank, letter in enumerate(prediction.ranking, start=1):
        ranking.add_row(str(rank), letter, escape(question.options[letter]), f"{prediction.probabilities[letter]:.3f}")
    results.print(ranking)
    confidence = "calibrated" if prediction.calibrated else "uncalibrated: the top probability"
    results.print(f"confidence {prediction.confidence:.3f} ({confidence})", highlight=False)
    results.print(f"decided by: {describe_path(result)}", highlight=False)
    print_evidence(result.contexts)


def describe_path(result: QuestionResult) -> str:
    """Which stage answered, and what each reading read."""
    readings = ", ".join(output.reader for output in result.outputs)
    stage = {
        "first": "the first pass",
        "reread-context": "a re-read with evidence (the mean of both readings)",
        "reread-orders": "a re-read in more option orders",
    }.get(result.stage, result.stage)
    coverage = (
        "" if result.reread is None or result.reread.coverage is None else f", coverage {result.reread.coverage:.2f}"
    )
    return f"{stage}{coverage}; readings: {readings}"


def print_evidence(contexts: Sequence[RetrievedContext]) -> None:
    read = [c for c in contexts if c.context.passage_ids]
    if not read:
        results.print("evidence: none read", highlight=False)
        return
    for retrieved in read:
        hits = {hit.passage.id: hit for hit in retrieved.hits}
        table = Table(
            "passage", "title", "score", title=f"evidence ({retrieved.retrieval}, {retrieved.context.tokens} tokens)"
        )
        for pid in retrieved.context.passage_ids:
            table.add_row(pid, escape(hits[pid].passage.title), f"{hits[pid].score:.3f}")
        results.print(table)
        results.print(escape(retrieved.context.text), highlight=False)


def answer_one(session: Session, prompt: str, options: Sequence[str], as_json: bool, number: int = 1) -> None:
    if not options:
        show_evidence_only(session, prompt, as_json, number)
        return
    run = session.answer([asked(prompt, options, number)])
    if run.failure is not None:
        raise ConfigError(f"could not answer: {run.failure}")
    (result,) = run.results
    if as_json:
        typer.echo(json.dumps(answer_record(result)))  # one line per answer
    else:
        print_answer(result)


def show_evidence_only(session: Session, prompt: str, as_json: bool, number: int = 1) -> None:
    """A question without options: what retrieval finds for its prompt; there is nothing to rank."""
    if not prompt.strip():
        raise ConfigError("the question is empty")
    question = Question(
        f"ask-{number}", prompt.strip(), {"A": ""}
    )  # per-option queries: the prompt itself, as `search` asks
    contexts = session.evidence(question)
    if as_json:
        typer.echo(json.dumps(evidence_only_record(question, contexts)))  # one line per answer
        return
    results.print(f"[bold]{escape(question.prompt)}[/]: give 2-{MOST_OPTIONS} options (-o) to rank them")
    print_evidence(contexts)


def interactive(session: Session, as_json: bool, read: Callable[[str], str] = input) -> None:
    """Questions and their options from the terminal, one after another, until an empty question or
    end of input; Ctrl-C stops the answer under way, not the loop."""
    import readline  # noqa: F401  (line editing and history for `input`)

    console.print(
        f"Type a question, then its options one per line (2-{MOST_OPTIONS}; an empty line ends them, none: the "
        "evidence only). An empty question or Ctrl-D ends.",
        highlight=False,
    )
    number = 0
    while True:
        try:
            prompt = read("question> ")
            if not prompt.strip():
                return
            options: list[str] = []
            while len(options) < MOST_OPTIONS:
                text = read(f"option {LETTERS[len(options)]}> ")
                if not text.strip():
                    break
                options.append(text)
        except EOFError:
            return
        except KeyboardInterrupt:
            console.print("\n(question dropped)")
            continue
        number += 1
        try:
            answer_one(session, prompt, options, as_json, number)
        except KeyboardInterrupt:
            console.print("\n(answer stopped)")
        except ConfigError as mistake:
            console.print(f"[red]{escape(str(mistake))}[/]")


def _ask(options: AnswerOptions, question: str | None, option: list[str] | None, as_json: bool) -> None:
    """Answer one question with its options (-o, 2-5 times), showing the ranking, its confidence, what
    decided it and the evidence read; with no question, ask from the terminal one after another."""
    if question is not None and option:
        asked(question, option)  # a mistake is said before the model loads
    session = Session(make_plan(replace(options, progress=False)))
    if question is None:
        interactive(session, as_json)
    else:
        answer_one(session, question, option or [], as_json)


ask = options_command(AnswerOptions, "answer", _ask, switches=SWITCHES, name="ask", leave_out=RUN_ONLY_OPTIONS)
