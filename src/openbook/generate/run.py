"""The generation run: a question written from each source passage in turn and judged (`filters`),
until the exam file holds the questions asked for or the passages run out.

Kept questions are lettered so that answers spread evenly over A-E (each goes to the letter used
least so far), and written in the Kaggle layout plus `context` (the source passage) and `source` (its
id), which `openbook eval`, `eval-retrieval` and the trainers read. Resumable: every attempt is one
line of `<out>.attempts.jsonl` (its passage, outcome and the row kept), flushed as it is made; the
same command again reads it back and goes on at the next passage, and each passage's draft depends
only on the seed and the passage, so a stopped and resumed run writes what an uninterrupted one
does. The exam file is rewritten whole (temp + rename) after each kept question, never half-written.
"""

from __future__ import annotations

import csv
import io
import json
import random
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openbook.errors import ConfigError, InputError
from openbook.files import write_atomically
from openbook.generate.filters import (
    ACCEPTED,
    ACCEPTED_EASY,
    KEY_DISAGREES,
    NEAR_DUPLICATE_QUESTION,
    TOO_EASY,
    Draft,
    NearDuplicates,
    ReaderChecks,
    parse_draft,
    rule_problem,
)
from openbook.generate.writer import QuestionWriter
from openbook.progress import meter
from openbook.provenance import library_versions
from openbook.records import LETTERS, Passage, Question

ATTEMPTS_SUFFIX = ".attempts.jsonl"
COLUMNS = ("id", "prompt", *LETTERS, "answer", "context", "source")


@dataclass(frozen=True)
class GenerateSettings:
    count: int  # questions the exam file is to hold
    seed: int = 0
    keep_easy: float = 0.2  # share of the too-easy questions kept
    max_attempts: int | None = None  # passages tried by this run at most (None: until `count` or the end)
    described: dict[str, Any] = field(default_factory=dict)  # what else fixes the drafts: models, sources…

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the one it continues."""
        return {"seed": self.seed, "keep_easy": self.keep_easy, **self.described}


@dataclass(frozen=True)
class Attempt:
    passage: str
    outcome: str  # ACCEPTED, ACCEPTED_EASY or a filter's reason
    seconds: float  # writing and judging
    tokens: int  # written
    reply: str  # the writer's reply, as given (what a rejection is judged on)
    row: dict[str, str] | None = None  # the exam row kept


@dataclass(frozen=True)
class GenerationReport:
    attempts: tuple[Attempt, ...]  # earlier runs' too
    kept: int
    count: int
    passages_left: int  # untried source passages

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(attempt.outcome for attempt in self.attempts)

    @property
    def seconds_per_kept(self) -> float:
        return sum(a.seconds for a in self.attempts) / self.kept if self.kept else float("inf")

    @property
    def acceptance(self) -> float:
        return self.kept / len(self.attempts) if self.attempts else 0.0

    @property
    def letters(self) -> Counter[str]:
        return Counter(a.row["answer"] for a in self.attempts if a.row is not None)


def attempts_path(out: Path) -> Path:
    return out.with_name(out.name + ATTEMPTS_SUFFIX)


def resume_attempts(out: Path, settings: GenerateSettings) -> list[Attempt]:
    """The attempts logged beside `out` by runs of the same settings (none: a new run); a last line
    cut by a stop is dropped from the log, and that attempt made again. A log of other settings is
    refused, as is an exam file at `out` without a log (not this command's)."""
    log = attempts_path(out)
    if not log.exists():
        if out.exists():
            raise ConfigError(
                f"{out} exists and was not written by `openbook generate` (no {log.name}); give another --out"
            )
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # cut by a stop in mid-write
                write_atomically(log, "".join(f"{kept}\n" for kept in lines[:-1]))
                break
            raise InputError(log, f"line {number} is not JSON (the log was edited or damaged)") from None
    if not records or "settings" not in records[0]:
        raise InputError(log, "line 1 does not record the settings of the run")
    earlier = records[0]["settings"]
    wanted = json.loads(json.dumps(settings.identity()))
    if earlier != wanted:
        changed = sorted(key for key in earlier.keys() | wanted.keys() if earlier.get(key) != wanted.get(key))
        raise ConfigError(f"{log} was made with other settings ({', '.join(changed)}); give another --out")
    return [Attempt(**record) for record in records[1:]]


def generate(
    settings: GenerateSettings,
    passages: Sequence[Passage],
    writer: QuestionWriter,
    checks: ReaderChecks,
    out: Path,
    progress: bool = True,
) -> GenerationReport:
    """Write, judge and keep questions from `passages` (in order) until `out` holds `settings.count`."""
    attempts = resume_attempts(out, settings)
    rows = [a.row for a in attempts if a.row is not None]
    tried = {a.passage for a in attempts}
    near = NearDuplicates()
    for kept in rows:
        near.add(kept["id"], kept["prompt"])
    letters = Counter(dict.fromkeys(LETTERS, 0))
    letters.update(kept["answer"] for kept in rows)
    log = attempts_path(out)
    log.parent.mkdir(parents=True, exist_ok=True)
    left = [p for p in passages if p.id not in tried]
    tried_now = 0
    with log.open("a", encoding="utf-8") as sink, meter("generating", settings.count, ("kept", "tried"), progress) as m:
        if not attempts:
            sink.write(json.dumps({"settings": settings.identity(), "versions": library_versions()}) + "\n")
        m.advance(completed=len(rows))
        for passage in left:
            if len(rows) >= settings.count or (
                settings.max_attempts is not None and tried_now >= settings.max_attempts
            ):
                break
            seed = _passage_seed(settings.seed, passage)
            rng = random.Random(seed)
            began = time.perf_counter()
            written = writer.write(passage, seed)
            outcome, draft = _judge(written.text if written.finished else "", passage, near, checks, settings, rng)
            row: dict[str, str] | None = None
            if draft is not None:
                row = _row(f"gen-{len(rows) + 1:05d}", draft, passage, letters, rng)
                letters[row["answer"]] += 1
                near.add(row["id"], row["prompt"])
                rows.append(row)
                write_atomically(out, _csv(rows))
            seconds = round(time.perf_counter() - began, 3)
            attempt = Attempt(passage.id, outcome, seconds, written.tokens, written.text, row)
            attempts.append(attempt)
            sink.write(json.dumps(asdict(attempt)) + "\n")
            sink.flush()
            tried_now += 1
            m.advance(completed=len(rows), kept=int(row is not None), tried=1)
    if rows:  # as the log has it, were a stop to fall between a kept row and its log line
        write_atomically(out, _csv(rows))
    return GenerationReport(tuple(attempts), len(rows), settings.count, len(left) - tried_now)


def _passage_seed(seed: int, passage: Passage) -> int:
    """The draft's seed: the run's and the passage's, so a resumed run writes the same drafts."""
    return zlib.crc32(f"{seed}:{passage.id}".encode())


def _judge(
    text: str,
    passage: Passage,
    near: NearDuplicates,
    checks: ReaderChecks,
    settings: GenerateSettings,
    rng: random.Random,
) -> tuple[str, Draft | None]:
    """The draft's outcome: the first filter it fails, or accepted (with the draft)."""
    draft = parse_draft(text)
    if isinstance(draft, str):
        return draft, None
    problem = rule_problem(draft)
    if problem is not None:
        return problem, None
    if near.match(draft.prompt) is not None:
        return NEAR_DUPLICATE_QUESTION, None
    question = Question(passage.id, draft.prompt, draft.options, draft.answer)
    easy = checks.too_easy(question, rng)  # the cheaper reading (no passage) first
    if easy and rng.random() >= settings.keep_easy:
        return TOO_EASY, None
    if not checks.agrees(question, passage):
        return KEY_DISAGREES, None
    return (ACCEPTED_EASY if easy else ACCEPTED), draft


def _row(qid: str, draft: Draft, passage: Passage, letters: Counter[str], rng: random.Random) -> dict[str, str]:
    """The exam row: the right option moved to the letter used least so far (ties: by the seed), the
    wrong ones in the writer's order around it."""
    fewest = min(letters.values())
    target = rng.choice([letter for letter in LETTERS if letters[letter] == fewest])
    wrong = [text for letter, text in draft.options.items() if letter != draft.answer]
    texts = wrong[: LETTERS.index(target)] + [draft.options[draft.answer]] + wrong[LETTERS.index(target) :]
    options = dict(zip(LETTERS, texts))
    return {
        "id": qid,
        "prompt": draft.prompt,
        **options,
        "answer": target,
        "context": passage.text,
        "source": passage.id,
    }


def _csv(rows: Sequence[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
