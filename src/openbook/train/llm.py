"""Fine-tune a language model as a yes/no option judge with LoRA (the 1st place's recipe).

Every linear layer gets a LoRA adapter (peft); the binary head is the model's own output layer read
at the final token: the score of an option is log-sum-exp of the "yes" logits minus that of the
"no" logits, exactly what the yes/no reader computes, so a trained adapter loads straight back into
it (`openbook answer --backend transformers --adapter OUT --reader yesno`). Loss: binary
cross-entropy of sigmoid(score) against "this option is the answer".

Each question is one packed sequence: its context + question prefix once, then all its option
continuations, a 4-D attention mask letting each option see the prefix and itself only (the same
layout as the backend's packed scoring), so the prefix is computed once per question in training too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from openbook.metrics import score_rankings
from openbook.records import Question


@dataclass(frozen=True)
class LLMTraining:
    model: str = "smollm2-135m-instruct"  # registered GGUF model (dequantized), folder or hub id
    retrieval: str = "bm25"
    passages: int = 6
    context_tokens: int = 384
    epochs: int = 1
    batch_size: int = 2  # questions per step
    learning_rate: float = 2e-4
    warmup: float = 0.1
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    validation_fraction: float = 0.1
    max_questions: int | None = None
    checkpoint_every: int = 50
    seed: int = 13


def yes_no_scores(backend, reader, question: Question, context):
    """The option scores (log-sum-exp yes minus no, at each option's last token), with gradients."""
    import torch

    from openbook.backends.transformers_backend import packed_layout
    from openbook.readers.base import shared_prefix

    prefix = shared_prefix(backend, question, context)
    continuations = reader.plan(question).continuations
    ids, positions, mask, last = packed_layout(prefix, continuations)
    device = backend.device
    keep, columns = backend.logits_only_at(last)  # the head (and its gradient) at the options' last tokens only
    logits = (
        backend.network(
            input_ids=ids[None].to(device),
            position_ids=positions[None].to(device),
            attention_mask=mask[None, None].to(device),
            use_cache=False,
            **keep,
        )
        .logits[0, columns]
        .float()
    )
    yes = torch.logsumexp(logits[:, reader.yes_ids], dim=1)
    no = torch.logsumexp(logits[:, reader.no_ids], dim=1)
    return yes - no


def validation_map3(backend, reader, data) -> float:
    from openbook.readers import read_question

    pairs = []
    for question, context in data:
        (output,) = read_question([reader], backend, question, context)
        pairs.append((sorted(output.probabilities, key=lambda letter: -output.probabilities[letter]), question.answer))
    return score_rankings(pairs).map_at_3


def train_llm(
    questions: Sequence[Question],
    index: Path,
    out: Path,
    settings: LLMTraining = LLMTraining(),
    resume: bool = False,
    show_progress: bool = True,
) -> dict:
    from openbook.errors import require_modules

    require_modules("train", "torch", "transformers", "peft")
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from openbook.backends.base import model_token_counter
    from openbook.backends.transformers_backend import TransformersBackend
    from openbook.errors import OpenbookError
    from openbook.readers import YesNoReader
    from openbook.train.checkpoint import resumable_state, resumed_folder, run_record
    from openbook.train.data import DATA_FILE, load_data, prepare_data
    from openbook.train.loop import check_training, seed_everything, train_loop

    check_training(settings)
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(settings, questions)
    state = resumable_state(out, record, resume)
    seed_everything(settings.seed)
    backend = TransformersBackend(settings.model, n_ctx=4096)
    if state is None:
        lora = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        backend.network = get_peft_model(backend.network, lora)
    else:
        backend.network = PeftModel.from_pretrained(backend.network, resumed_folder(out), is_trainable=True)
    reader = YesNoReader(backend)
    if state is None or not (out / DATA_FILE).is_file():
        if len(questions) < 2:
            raise OpenbookError(f"only {len(questions)} answered questions to train on")
        prepare_data(questions, index, settings, model_token_counter(backend), out, show_progress)
    train, validation = load_data(out)
    loss_function = torch.nn.BCEWithLogitsLoss()

    def batch_loss(batch):
        losses = []
        for question, context in batch:
            scores = yes_no_scores(backend, reader, question, context)
            labels = torch.tensor(
                [float(letter == question.answer) for letter in question.letters], device=scores.device
            )
            losses.append(loss_function(scores, labels))
        return torch.stack(losses).mean()

    summary = train_loop(
        "llm",
        backend.network,
        backend.tokenizer,
        train,
        validation,
        settings,
        record,
        out,
        batch_loss,
        lambda: validation_map3(backend, reader, validation),
        state,
        show_progress,
    )
    summary["adapter"] = str(out)
    summary["trainable_parameters"] = sum(p.numel() for p in backend.network.parameters() if p.requires_grad)
    return summary
