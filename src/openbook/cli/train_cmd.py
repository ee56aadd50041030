"""`openbook train …`: fine-tune the models openbook trains itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openbook.cli.common import reports_errors, results
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
DEFAULTS = CrossEncoderTraining()
ENCODER = EncoderTraining()
LLM = LLMTraining()
# options `train encoder` and `train llm` share (each command keeps its own defaults)
ExcludeOpt = Annotated[
    list[Path] | None, typer.Option(help="Exam(s) whose questions must not be trained on (the ones you report).")
]
IndexOpt = Annotated[Path, typer.Option("--index", "-i", help="Index the contexts are retrieved from.")]
RetrievalOpt = Annotated[str, typer.Option(help="Retrieval pipeline for the contexts.")]
EpochsOpt = Annotated[int, typer.Option(help="Passes over the training questions.")]
BatchOpt = Annotated[int, typer.Option(help="Questions per step.")]
RateOpt = Annotated[float, typer.Option(help="AdamW learning rate.")]
ValidationOpt = Annotated[float, typer.Option(help="Share of the questions held out for validation.")]
MaxQuestionsOpt = Annotated[int | None, typer.Option(help="Train on at most N questions (after the split).")]
CheckpointOpt = Annotated[int, typer.Option(help="Steps between checkpoints.")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue the checkpoint in --out.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--quiet", help="Show progress bars.")]


def questions_to_train_on(exams: list[Path], exclude: list[Path] | None) -> list[Question]:
    return training_questions([read_exam(e) for e in exams], [q for e in exclude or [] for q in read_exam(e)])


@app.command("cross-encoder")
@reports_errors
def cross_encoder(
    exam: Annotated[Path, typer.Argument(help="Exam whose rows carry their source passage (a `context` column).")],
    index: Annotated[Path, typer.Option("--index", "-i", help="Index to draw hard negatives from (BM25).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the trained CrossEncoder.")],
    base: Annotated[str, typer.Option(help="Encoder to start from: embedder name, folder or hub id.")] = DEFAULTS.base,
    epochs: Annotated[int, typer.Option(help="Passes over the pairs.")] = DEFAULTS.epochs,
    negatives: Annotated[int, typer.Option(help="Hard negatives per question.")] = DEFAULTS.negatives,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = DEFAULTS.batch_size,
    seed: Annotated[int, typer.Option(help="Seed for sampling, shuffling and the new head.")] = DEFAULTS.seed,
    progress: Annotated[bool, typer.Option("--progress/--quiet", help="Show a progress bar.")] = True,
) -> None:
    """Train a (question, passage) cross-encoder on an exam's source passages; rerank with +cross:OUT."""
    questions = grounded_questions(read_exam(exam))  # positives must really be the sources
    if not any(q.extra.get("context", "").strip() for q in questions):
        raise OpenbookError(f"{exam}: no row whose `context` column carries its question to learn from")
    settings = CrossEncoderTraining(base=base, epochs=epochs, negatives=negatives, batch_size=batch_size, seed=seed)
    summary = train_cross_encoder(questions, index, out, settings, show_progress=progress)
    results.print(
        f"{out}: {summary['pairs']} pairs, {summary['seconds']} s, final loss {summary['final_loss']}", highlight=False
    )


@app.command("encoder")
@reports_errors
def encoder(
    exams: Annotated[
        list[Path], typer.Argument(help="Exams with answers to learn from (e.g. llmse-6k-dev.csv llmse-stem-1k.csv).")
    ],
    index: IndexOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the model, checkpoints and training.json.")],
    exclude: ExcludeOpt = None,
    base: Annotated[str, typer.Option(help="Encoder to start from: embedder name, folder or hub id.")] = ENCODER.base,
    retrieval: RetrievalOpt = ENCODER.retrieval,
    context_tokens: Annotated[
        int, typer.Option(help="Context budget in the encoder's tokens.")
    ] = ENCODER.context_tokens,
    max_tokens: Annotated[
        int, typer.Option(help="Tokens per option: context + question + option.")
    ] = ENCODER.max_tokens,
    epochs: EpochsOpt = ENCODER.epochs,
    batch_size: BatchOpt = ENCODER.batch_size,
    learning_rate: RateOpt = ENCODER.learning_rate,
    validation_fraction: ValidationOpt = ENCODER.validation_fraction,
    max_questions: MaxQuestionsOpt = None,
    checkpoint_every: CheckpointOpt = ENCODER.checkpoint_every,
    seed: Annotated[int, typer.Option(help="Seed for the split, order and the new head.")] = ENCODER.seed,
    resume: ResumeOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Fine-tune a multiple-choice encoder on exams with retrieved contexts; read with --reader encoder."""
    questions = questions_to_train_on(exams, exclude)
    settings = EncoderTraining(
        base=base,
        retrieval=retrieval,
        context_tokens=context_tokens,
        max_tokens=max_tokens,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_fraction=validation_fraction,
        max_questions=max_questions,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    summary = train_encoder(questions, index, out, settings, resume=resume, show_progress=progress)
    last = summary["history"][-1]
    results.print(
        f"{out}: {summary['train_questions']} training questions, {last['seconds']} s for the last epoch, "
        f"validation MAP@3 {last['validation_map@3']}",
        highlight=False,
    )


@app.command("llm")
@reports_errors
def llm(
    exams: Annotated[list[Path], typer.Argument(help="Exams with answers to learn from.")],
    index: IndexOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the adapter, checkpoints and training.json.")],
    exclude: ExcludeOpt = None,
    model: Annotated[
        str, typer.Option(help="Language model: registered name (dequantized GGUF), folder or hub id.")
    ] = LLM.model,
    retrieval: RetrievalOpt = LLM.retrieval,
    context_tokens: Annotated[int, typer.Option(help="Context budget in the model's tokens.")] = LLM.context_tokens,
    epochs: EpochsOpt = LLM.epochs,
    batch_size: BatchOpt = LLM.batch_size,
    learning_rate: RateOpt = LLM.learning_rate,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank on every linear layer.")] = LLM.lora_rank,
    validation_fraction: ValidationOpt = LLM.validation_fraction,
    max_questions: MaxQuestionsOpt = None,
    checkpoint_every: CheckpointOpt = LLM.checkpoint_every,
    seed: Annotated[int, typer.Option(help="Seed for the split, order and adapters.")] = LLM.seed,
    resume: ResumeOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """LoRA-tune a language model as a yes/no judge of each option; read with --backend transformers --adapter OUT."""
    questions = questions_to_train_on(exams, exclude)
    settings = LLMTraining(
        model=model,
        retrieval=retrieval,
        context_tokens=context_tokens,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lora_rank=lora_rank,
        lora_alpha=2 * lora_rank,
        validation_fraction=validation_fraction,
        max_questions=max_questions,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    summary = train_llm(questions, index, out, settings, resume=resume, show_progress=progress)
    last = summary["history"][-1]
    results.print(
        f"{out}: adapter with {summary['trainable_parameters']:,} parameters, {summary['train_questions']} "
        f"training questions, validation MAP@3 {last['validation_map@3']}",
        highlight=False,
    )
