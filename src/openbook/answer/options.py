"""The answer options, declared once: name, type, default, help, panel and bounds of each.

`AnswerOptions` is the registry. The CLI's options of `answer`/`eval` (flags, help panels, shown
defaults), the `[answer]` table of a config file (known keys and types), run.json's settings and the
test of `configs/default.toml` are all derived from its fields; nothing lists them again. Fields are
made with `openbook.config.option`, as every command's options are. The options are what a user may
say; `openbook.answer.plan.make_plan` turns them, once, into the plan a run follows.
"""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from openbook.config import option

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
DEFAULT_BUDGET_PER_QUESTION = 10.0  # seconds: the CPU target the default cascade was measured against
AUTO_TRIAGE = "auto"  # the triage pass: the same language-model readers, no context
NO_TRIAGE = "none"  # no triage pass: one stage

EXAM_PANEL = "Exam and output"
MODEL_PANEL = "Model"
READERS_PANEL = "Readers"
RETRIEVAL_PANEL = "Retrieval and context"
CASCADE_PANEL = "Cascade and budget"
PANELS = (EXAM_PANEL, MODEL_PANEL, READERS_PANEL, RETRIEVAL_PANEL, CASCADE_PANEL)


@dataclass(frozen=True)
class AnswerOptions:
    """Everything `openbook answer` / `eval` can be told (command line > [answer] table of a config > here)."""

    exam: Path | None = option(None, "Exam CSV/JSONL (id,prompt,A..E[,answer]).", argument=True, panel=EXAM_PANEL)
    out: Path | None = option(
        None,
        "Run folder (created): submission.csv, predictions.jsonl, run.json and, with answers, metrics.json.",
        panel=EXAM_PANEL,
        flags=("--out", "-o"),
        changes_answers=False,
    )
    limit: int | None = option(
        None, "Answer only the first N questions.", panel=EXAM_PANEL, minimum=1, changes_answers=False
    )
    resume: bool = option(
        False,
        "Keep the answers already in --out (a stopped run) and answer only the rest.",
        panel=EXAM_PANEL,
        negative="--no-resume",
        changes_answers=False,
    )
    progress: bool = option(True, "Show a progress bar.", panel=EXAM_PANEL, negative="--quiet", changes_answers=False)

    model: str = option(DEFAULT_MODEL, "Model name (`openbook models list`) or a GGUF path.", panel=MODEL_PANEL)
    backend: str = option(
        "llama.cpp", "llama.cpp, transformers or transformers-layered (models larger than memory).", panel=MODEL_PANEL
    )
    adapter: str | None = option(
        None, "transformers: LoRA adapter folder from `openbook train llm`.", panel=MODEL_PANEL
    )
    packed: bool = option(
        False,
        "transformers: score a question's options in one sequence with a 4-D attention mask.",
        panel=MODEL_PANEL,
        negative="--no-packed",
    )
    n_ctx: int = option(
        2048, "Model context window per sequence (prompt + one option listing).", panel=MODEL_PANEL, minimum=64
    )
    threads: int | None = option(
        None, "CPU threads (default: all).", panel=MODEL_PANEL, minimum=1, changes_answers=False
    )
    question_batch: int = option(
        1,
        "Questions read together (the transformers backends batch across them).",
        panel=MODEL_PANEL,
        minimum=1,
        changes_answers=False,
    )
    ray: str | None = option(
        None,
        "Read on a Ray cluster: `--ray` alone starts one on this machine, `--ray HOST:PORT` (or `auto`) joins a "
        "running one. Actors each hold the model and read the questions side by side; retrieval, the budget and "
        "every decision stay in this process, so the answers are the ones a single process gives.",
        panel=MODEL_PANEL,
        changes_answers=False,
    )
    ray_actors: int | None = option(
        None,
        "With --ray: reading actors, each with --threads CPUs (default: all of a node's).",
        shown="one per node",
        panel=MODEL_PANEL,
        minimum=1,
        changes_answers=False,
    )
    share_prefix: bool = option(
        True,
        "Evaluate context + question once per question and reuse its KV cache for every option listing.",
        panel=MODEL_PANEL,
        negative="--no-share-prefix",
        changes_answers=False,
    )

    readers: list[str] = option(
        ["letter"], "letter, yesno and/or encoder (repeat to ensemble).", panel=READERS_PANEL, flags=("--reader", "-r")
    )
    rotations: int = option(
        1, "Letter reader: cyclic option orders averaged (1-5).", panel=READERS_PANEL, minimum=1, maximum=5
    )
    encoder: str | None = option(
        None, "The encoder reader's multiple-choice model (`openbook train encoder`).", panel=READERS_PANEL
    )
    encoder_tokens: int = option(384, "Encoder reader: tokens read per option.", panel=READERS_PANEL, minimum=16)
    ensemble: Path | None = option(
        None, "Ensemble from `openbook ensemble fit`: weights, ranker, calibrated confidence.", panel=READERS_PANEL
    )

    index: Path | None = option(
        None, "Index folder from `openbook index`; none: no context.", panel=RETRIEVAL_PANEL, flags=("--index", "-i")
    )
    retrieval: list[str] = option(
        ["auto"],
        "RETRIEVER\\[/QUERY]\\[+RERANKER] (e.g. bm25, hybrid-rrf/both+embed) or auto: hybrid-rrf+embed where the "
        "index has a dense part, else bm25. Repeat for one context per pipeline, read and averaged.",
        panel=RETRIEVAL_PANEL,
    )
    candidates: int = option(50, "Passages per retriever before fusion or reranking.", panel=RETRIEVAL_PANEL, minimum=1)
    dense_engine: str = option(
        "matmul", "Dense search: matmul (exact), faiss-flat or faiss-hnsw.", panel=RETRIEVAL_PANEL
    )
    passages: int = option(8, "Passages retrieved per question, packed best first.", panel=RETRIEVAL_PANEL, minimum=1)
    evidence: str = option(
        "passages",
        "What a context holds: whole passages, best first (passages), or the sentences of the retrieved "
        "passages that bear on the question and its options, in document order (sentences).",
        panel=RETRIEVAL_PANEL,
    )
    context_tokens: int = option(500, "Token budget of the packed context (0: none).", panel=RETRIEVAL_PANEL, minimum=0)

    triage_readers: list[str] = option(
        [AUTO_TRIAGE],
        "The cheap first pass's reader(s), which answer every question before --reader re-reads the hardest "
        "(auto: the same language-model readers without context; none: no cascade). Repeat.",
        panel=CASCADE_PANEL,
        flags=("--triage",),
    )
    triage_model: str | None = option(None, "The first pass's model (default: --model).", panel=CASCADE_PANEL)
    triage_context_tokens: int = option(0, "The first pass's context budget in tokens.", panel=CASCADE_PANEL, minimum=0)
    triage_rotations: int | None = option(
        3,
        "The first pass's letter-reader option orders (1-5; unset: --rotations); under a budget, at most: "
        "each question gets as many as the budget's first-pass share allows, long questions fewer.",
        panel=CASCADE_PANEL,
        minimum=1,
        maximum=5,
    )
    escalate_margin: float = option(
        1.0, "Re-read only questions whose top-1 minus top-2 probability is below this.", panel=CASCADE_PANEL, minimum=0
    )
    average_stages: bool = option(
        True,
        "A re-read question is decided by the mean of both stages, or by the main readers alone "
        "(--main-decides); a fitted --ensemble always weighs both.",
        panel=CASCADE_PANEL,
        negative="--main-decides",
    )
    context_coverage: float = option(
        0.5,
        "A re-read question reads its retrieved context only when one packed passage holds this share of the "
        "words of its prompt with one of its options; otherwise the letter reader reads its remaining option "
        "orders without context (0: always context).",
        panel=CASCADE_PANEL,
        minimum=0,
        maximum=1,
    )
    letter_prior: bool = option(
        False,
        "Letter readers: after the first pass, divide each reading by the model's letter prior fitted over it.",
        panel=CASCADE_PANEL,
        negative="--no-letter-prior",
    )
    budget_seconds: float | None = option(
        None,
        "Seconds for the whole run: the hardest questions are re-read first while the measured pace fits "
        "(inf: no limit).",
        panel=CASCADE_PANEL,
        minimum=0,
        changes_answers=False,
    )
    budget_per_question: float | None = option(
        None,
        f"The budget as seconds per question of the run (default {DEFAULT_BUDGET_PER_QUESTION:g}).",
        panel=CASCADE_PANEL,
        minimum=0,
        changes_answers=False,
    )


def option_fields() -> tuple[Field[Any], ...]:
    return fields(AnswerOptions)


def settings_of(options: AnswerOptions) -> dict[str, object]:
    """The options as run.json records them (paths as text)."""
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(options).items()}


def answer_settings(settings: dict[str, object]) -> dict[str, object]:
    """The settings a resumed run must share with the run it continues: those that change answers."""
    return {spec.name: settings.get(spec.name) for spec in option_fields() if spec.metadata["changes_answers"]}
