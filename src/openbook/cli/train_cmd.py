"""`openbook train …`: fine-tune the models openbook trains itself.

Each command's options are a dataclass here (config tables `[train-encoder]`, `[train-llm]`,
`[train-cross-encoder]`); their defaults are the training settings' own (`openbook.train`)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import typer

from openbook.cli.common import options_command, results
from openbook.config import option
from openbook.errors import OpenbookError
from openbook.evaluate.retrieval import grounded_questions
from openbook.exam import read_exam
from openbook.records import Question
from openbook.train.cross_encoder import CrossEncoderTraining, train_cross_encoder
from openbook.train.data import training_questions
from openbook.train.encoder import EncoderTraining, train_encoder
from openbook.train.llm import LLMTraining, train_llm

app = typer.Typer(
    help="Fine-tune models: the encoder multiple-choice reader, LoRA yes/no language models, a cross-encoder reranker.",
    no_args_is_help=True,
)
CROSS = CrossEncoderTraining()
ENCODER = EncoderTraining()
LLM = LLMTraining()
S = TypeVar("S")


# the options `train encoder` and `train llm` share, each command with its own defaults
def exams_option() -> Any:
    return option(
        [],
        "Exams with answers to learn from (e.g. llmse-6k-dev.csv llmse-stem-1k.csv).",
        argument=True,
        required=True,
    )


def index_option(help: str = "Index the contexts are retrieved from.") -> Any:
    return option(None, help, flags=("--index", "-i"), required=True)


def out_option(holds: str) -> Any:
    return option(None, f"Model folder (created): {holds}.", flags=("--out", "-o"), required=True)


def exclude_option() -> Any:
    return option([], "Exam(s) whose questions must not be trained on (the ones you report). Repeat.", shown="none")


def retrieval_option(default: str) -> Any:
    return option(
        default,
        "Retrieval pipeline for the contexts: RETRIEVER\\[/QUERY]\\[+RERANKER] or auto (hybrid-rrf+embed "
        "where the index has a dense part, else bm25).",
    )


def epochs_option(default: int, what: str = "the training questions") -> Any:
    return option(default, f"Passes over {what}.", minimum=1)


def batch_option(default: int, unit: str = "Questions") -> Any:
    return option(default, f"{unit} per step.", minimum=1)


def rate_option(default: float) -> Any:
    return option(default, "AdamW learning rate.")


def validation_option(default: float) -> Any:
    return option(default, "Share of the questions held out for validation.")


def max_questions_option() -> Any:
    return option(None, "Train on at most N questions (after the split).", minimum=1, shown="all")


def checkpoint_option(default: int) -> Any:
    return option(default, "Steps between checkpoints.", minimum=1)


def resume_option() -> Any:
    return option(False, "Continue the checkpoint in --out.")


def progress_option() -> Any:
    return option(True, "Show progress bars.", negative="--quiet")


def settings_of(options: object, settings_type: type[S]) -> S:
    """The training settings from the options of the same names (the rest keep their defaults)."""
    names = {spec.name for spec in fields(settings_type)}  # type: ignore[arg-type]
    return settings_type(**{spec.name: getattr(options, spec.name) for spec in fields(options) if spec.name in names})  # type: ignore[arg-type]


def questions_to_train_on(exams: list[Path], exclude: list[Path]) -> list[Question]:
    return training_questions([read_exam(e) for e in exams], [q for e in exclude for q in read_exam(e)])


@dataclass(frozen=True)
class CrossEncoderOptions:
    exam: Path | None = option(
        None, "Exam whose rows carry their source passage (a `context` column).", argument=True, required=True
    )
    index: Path | None = index_option("Index to draw hard negatives from (BM25).")
    out: Path | None = out_option("the trained CrossEncoder")
    base: str = option(CROSS.base, "Encoder to start from: embedder name, folder or hub id.")
    epochs: int = epochs_option(CROSS.epochs, "the pairs")
    negatives: int = option(CROSS.negatives, "Hard negatives per question.", minimum=0)
    batch_size: int = batch_option(CROSS.batch_size, "Pairs")
    seed: int = option(CROSS.seed, "Seed for sampling, shuffling and the new head.")
    progress: bool = option(True, "Show a progress bar.", negative="--quiet")


def _cross_encoder(options: CrossEncoderOptions) -> None:
    """Train a (question, passage) cross-encoder on an exam's source passages; rerank with +cross:OUT."""
    assert options.exam is not None and options.index is not None and options.out is not None  # required
    questions = grounded_questions(read_exam(options.exam))  # positives must really be the sources
    if not any(q.extra.get("context", "").strip() for q in questions):
        raise OpenbookError(f"{options.exam}: no row whose `context` column carries its question to learn from")
    settings = settings_of(options, CrossEncoderTraining)
    summary = train_cross_encoder(questions, options.index, options.out, settings, show_progress=options.progress)
    results.print(
        f"{options.out}: {summary['pairs']} pairs, {summary['seconds']} s, final loss {summary['final_loss']}",
        highlight=False,
    )


@dataclass(frozen=True)
class EncoderOptions:
    exams: list[Path] = exams_option()
    index: Path | None = index_option()
    out: Path | None = out_option("the model, checkpoints and training.json")
    exclude: list[Path] = exclude_option()
    base: str = option(ENCODER.base, "Encoder to start from: embedder name, folder or hub id.")
    retrieval: str = retrieval_option(ENCODER.retrieval)
    context_tokens: int = option(ENCODER.context_tokens, "Context budget in the encoder's tokens.", minimum=0)
    max_tokens: int = option(ENCODER.max_tokens, "Tokens per option: context + question + option.", minimum=1)
    epochs: int = epochs_option(ENCODER.epochs)
    batch_size: int = batch_option(ENCODER.batch_size)
    learning_rate: float = rate_option(ENCODER.learning_rate)
    validation_fraction: float = validation_option(ENCODER.validation_fraction)
    max_questions: int | None = max_questions_option()
    checkpoint_every: int = checkpoint_option(ENCODER.checkpoint_every)
    seed: int = option(ENCODER.seed, "Seed for the split, order and the new head.")
    resume: bool = resume_option()
    progress: bool = progress_option()


def _encoder(options: EncoderOptions) -> None:
    """Fine-tune a multiple-choice encoder on exams with retrieved contexts; read with --reader encoder."""
    assert options.index is not None and options.out is not None  # required
    questions = questions_to_train_on(options.exams, options.exclude)
    settings = settings_of(options, EncoderTraining)
    summary = train_encoder(
        questions, options.index, options.out, settings, resume=options.resume, show_progress=options.progress
    )
    last = summary["history"][-1]
    results.print(
        f"{options.out}: {summary['train_questions']} training questions, {last['seconds']} s for the last epoch, "
        f"validation MAP@3 {last['validation_map@3']}",
        highlight=False,
    )


@dataclass(frozen=True)
class LLMOptions:
    exams: list[Path] = exams_option()
    index: Path | None = index_option()
    out: Path | None = out_option("the LoRA adapter, checkpoints and training.json")
    exclude: list[Path] = exclude_option()
    model: str = option(LLM.model, "Language model: registered name (dequantized GGUF), folder or hub id.")
    retrieval: str = retrieval_option(LLM.retrieval)
    context_tokens: int = option(LLM.context_tokens, "Context budget in the model's tokens.", minimum=0)
    epochs: int = epochs_option(LLM.epochs)
    batch_size: int = batch_option(LLM.batch_size)
    learning_rate: float = rate_option(LLM.learning_rate)
    lora_rank: int = option(LLM.lora_rank, "LoRA rank on every linear layer (alpha: twice the rank).", minimum=1)
    validation_fraction: float = validation_option(LLM.validation_fraction)
    max_questions: int | None = max_questions_option()
    checkpoint_every: int = checkpoint_option(LLM.checkpoint_every)
    seed: int = option(LLM.seed, "Seed for the split, order and adapters.")
    resume: bool = resume_option()
    progress: bool = progress_option()


def _llm(options: LLMOptions) -> None:
    """LoRA-tune a language model as a yes/no judge of each option; read with --backend transformers --adapter OUT."""
    assert options.index is not None and options.out is not None  # required
    questions = questions_to_train_on(options.exams, options.exclude)
    settings = replace(settings_of(options, LLMTraining), lora_alpha=2 * options.lora_rank)
    summary = train_llm(
        questions, options.index, options.out, settings, resume=options.resume, show_progress=options.progress
    )
    last = summary["history"][-1]
    results.print(
        f"{options.out}: adapter with {summary['trainable_parameters']:,} parameters, {summary['train_questions']} "
        f"training questions, validation MAP@3 {last['validation_map@3']}",
        highlight=False,
    )


app.command("cross-encoder")(options_command(CrossEncoderOptions, "train-cross-encoder", _cross_encoder))
app.command("encoder")(options_command(EncoderOptions, "train-encoder", _encoder))
app.command("llm")(options_command(LLMOptions, "train-llm", _llm))
