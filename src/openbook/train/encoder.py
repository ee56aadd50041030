"""Fine-tune the encoder multiple-choice reader on exams with retrieved contexts.

Data: every answered question of the given exams, less any whose prompt also appears in an
`exclude` exam (the questions you report on), split by seed into training and validation. Each
question's context is retrieved from the index and packed into `context_tokens` of the encoder's own
tokens, once, and kept in `OUT/data.jsonl` so a resumed run trains on exactly the same text.

Training: cross-entropy over each question's options (padded options masked), AdamW with linear
warm-up and decay, `batch_size` questions per step. A checkpoint (model, optimiser, scheduler, step)
is written atomically every `checkpoint_every` steps and at each epoch's end; `resume` continues from
it on the same data order. After each epoch the validation MAP@3 is measured. The final model is a
transformers folder in OUT, read by `openbook answer --reader encoder --encoder OUT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openbook.errors import OpenbookError, require_modules
from openbook.metrics import score_rankings
from openbook.readers.encoder import encode_options, load_multiple_choice
from openbook.records import Question
from openbook.train.checkpoint import resumable_state, resumed_folder, run_record
from openbook.train.data import DATA_FILE, load_data, prepare_data
from openbook.train.loop import check_training, seed_everything, train_loop


@dataclass(frozen=True)
class EncoderTraining:
    base: str = "all-minilm-l6-v2"  # registered embedder, folder or hub id (DeBERTa-v3 …)
    retrieval: str = "bm25"
    passages: int = 6
    context_tokens: int = 256  # packed context, in the encoder's tokens
    max_tokens: int = 320  # per option: context + question + option
    epochs: int = 1
    batch_size: int = 4  # questions per step
    learning_rate: float = 5e-5
    warmup: float = 0.1  # share of the steps
    validation_fraction: float = 0.1
    max_questions: int | None = None  # after the split is drawn, the first N training questions
    checkpoint_every: int = 100
    seed: int = 13


def option_loss(logits, sizes: Sequence[int], answers: Sequence[int]):
    """Cross-entropy across each question's real options (padding masked out)."""
    import torch

    mask = torch.arange(logits.shape[1])[None, :] >= torch.tensor(sizes)[:, None]
    return torch.nn.functional.cross_entropy(
        logits.masked_fill(mask.to(logits.device), -1e4), torch.tensor(answers, device=logits.device)
    )


def validation_map3(network, tokenizer, data, settings: EncoderTraining, device: str) -> float:
    import torch

    pairs = []
    with torch.inference_mode():
        for start in range(0, len(data), 8):
            batch = data[start : start + 8]
            features, sizes = encode_options(
                tokenizer, [q for q, _ in batch], [c for _, c in batch], settings.max_tokens
            )
            logits = network(**{k: v.to(device) for k, v in features.items()}).logits.float().cpu().numpy()
            for (question, _), row, size in zip(batch, logits, sizes):
                order = np.argsort(-row[:size], kind="stable")
                pairs.append(([question.letters[i] for i in order], question.answer))
    return score_rankings(pairs).map_at_3


def train_encoder(
    questions: Sequence[Question],
    index: Path,
    out: Path,
    settings: EncoderTraining = EncoderTraining(),
    resume: bool = False,
    show_progress: bool = True,
) -> dict:
    require_modules("train", "torch", "transformers")
    import torch

    check_training(settings)
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(settings, questions)
    state = resumable_state(out, record, resume)
    seed_everything(settings.seed)
    network, tokenizer = load_multiple_choice(str(resumed_folder(out)) if state else settings.base)
    if state is None or not (out / DATA_FILE).is_file():
        if len(questions) < 2:
            raise OpenbookError(f"only {len(questions)} answered questions to train on")
        prepare_data(
            questions,
            index,
            settings,
            lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
            out,
            show_progress,
        )
    train, validation = load_data(out)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network.to(device)

    def batch_loss(batch):
        features, sizes = encode_options(tokenizer, [q for q, _ in batch], [c for _, c in batch], settings.max_tokens)
        logits = network(**{k: v.to(device) for k, v in features.items()}).logits
        return option_loss(logits, sizes, [q.letters.index(q.answer) for q, _ in batch])

    return train_loop(
        "encoder",
        network,
        tokenizer,
        train,
        validation,
        settings,
        record,
        out,
        batch_loss,
        lambda: validation_map3(network, tokenizer, validation, settings, device),
        state,
        show_progress,
    )
