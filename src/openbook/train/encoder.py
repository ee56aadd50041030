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

import json
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from openbook.errors import OpenbookError
from openbook.evaluate.metrics import score_rankings
from openbook.progress import console, meter
from openbook.readers.encoder import encode_options, load_multiple_choice
from openbook.retrieve import Retrieval
from openbook.retrieve.context import Context, pack_context
from openbook.types import Question

DATA_FILE = "data.jsonl"
SUMMARY_FILE = "training.json"
CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class EncoderTraining:
    base: str = "all-minilm-l6-v2"  # registered embedder, folder or hub id (DeBERTa-v3 …)
    retrieval: str = "bm25"
    passages: int = 6
    context_tokens: int = 256        # packed context, in the encoder's tokens
    max_tokens: int = 320            # per option: context + question + option
    epochs: int = 1
    batch_size: int = 4              # questions per step
    learning_rate: float = 5e-5
    warmup: float = 0.1              # share of the steps
    validation_fraction: float = 0.1
    max_questions: int | None = None  # after the split is drawn, the first N training questions
    checkpoint_every: int = 100
    seed: int = 13


def normalised_prompt(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def training_questions(exams: Sequence[Sequence[Question]], exclude: Sequence[Question]) -> list[Question]:
    """Answered questions of all exams, de-duplicated by prompt, less the excluded prompts; ids are
    made unique as `exam-number:id`."""
    banned = {normalised_prompt(q.prompt) for q in exclude}
    seen: set[str] = set()
    kept = []
    for number, exam in enumerate(exams):
        for question in exam:
            key = normalised_prompt(question.prompt)
            if question.answer in question.letters and key not in banned and key not in seen:
                seen.add(key)
                kept.append(Question(f"{number}:{question.id}", question.prompt, question.options, question.answer))
    return kept


def split(questions: Sequence[Question], fraction: float, seed: int) -> tuple[list[Question], list[Question]]:
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(round(len(questions) * fraction))) if fraction > 0 else 0
    return [questions[i] for i in order[cut:]], [questions[i] for i in order[:cut]]


def _question_record(question: Question, context: Context, part: str) -> dict[str, object]:
    return {"id": question.id, "prompt": question.prompt, "options": question.options, "answer": question.answer,
            "context": context.text, "passages": list(context.passage_ids), "part": part}


def prepare_data(questions: Sequence[Question], index: Path, settings: EncoderTraining, tokenizer, out: Path,
                 show_progress: bool) -> None:
    train, validation = split(questions, settings.validation_fraction, settings.seed)
    if settings.max_questions is not None:
        train = train[:settings.max_questions]
    retrieval = Retrieval(index)
    spec = retrieval.resolve(settings.retrieval)
    records = []

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    every = [*((q, "train") for q in train), *((q, "validation") for q in validation)]
    with meter("retrieving contexts", len(every), ("questions",), enabled=show_progress) as m:
        for start in range(0, len(every), 256):
            batch = every[start:start + 256]
            hit_lists = retrieval.search([q for q, _ in batch], spec, settings.passages)
            for (question, part), hits in zip(batch, hit_lists):
                records.append(_question_record(question, pack_context(hits, settings.context_tokens, count_tokens), part))
            m.advance(completed=start + len(batch), questions=len(batch))
    partial = out / (DATA_FILE + ".partial")
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    partial.replace(out / DATA_FILE)


def load_data(out: Path) -> tuple[list[tuple[Question, Context]], list[tuple[Question, Context]]]:
    parts: dict[str, list] = {"train": [], "validation": []}
    for line in (out / DATA_FILE).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        parts[r["part"]].append((Question(r["id"], r["prompt"], r["options"], r["answer"]),
                                 Context(r["context"], tuple(r["passages"]), 0)))
    return parts["train"], parts["validation"]


def option_loss(logits, sizes: Sequence[int], answers: Sequence[int]):
    """Cross-entropy across each question's real options (padding masked out)."""
    import torch

    mask = torch.arange(logits.shape[1])[None, :] >= torch.tensor(sizes)[:, None]
    return torch.nn.functional.cross_entropy(logits.masked_fill(mask.to(logits.device), -1e4),
                                             torch.tensor(answers, device=logits.device))


def validation_map3(network, tokenizer, data, settings: EncoderTraining, device: str) -> float:
    import torch

    network.eval()
    pairs = []
    with torch.inference_mode():
        for start in range(0, len(data), 8):
            batch = data[start:start + 8]
            features, sizes = encode_options(tokenizer, [q for q, _ in batch], [c for _, c in batch], settings.max_tokens)
            logits = network(**{k: v.to(device) for k, v in features.items()}).logits.float().cpu().numpy()
            for (question, _), row, size in zip(batch, logits, sizes):
                order = np.argsort(-row[:size], kind="stable")
                pairs.append(([question.letters[i] for i in order], question.answer))
    network.train()
    return score_rankings(pairs).map_at_3


def _save_checkpoint(out: Path, network, tokenizer, optimiser, scheduler, state: dict) -> None:
    import torch

    partial = out / (CHECKPOINT + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    network.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    torch.save({"optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, partial / "optimiser.pt")  # dropout continues as it would have
    (partial / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    final = out / CHECKPOINT
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


def _check_resumable(out: Path, settings: EncoderTraining) -> dict | None:
    state_file = out / CHECKPOINT / "state.json"
    if not state_file.is_file():
        return None
    state = json.loads(state_file.read_text())
    if state.get("settings") != asdict(settings):
        raise OpenbookError(f"{out} holds a training run with other settings ({state.get('settings')}); "
                            "resume with the same settings or choose another --out")
    return state


def train_encoder(questions: Sequence[Question], index: Path, out: Path, settings: EncoderTraining = EncoderTraining(),
                  resume: bool = False, show_progress: bool = True) -> dict:
    import torch
    from transformers import get_linear_schedule_with_warmup

    out.mkdir(parents=True, exist_ok=True)
    state = _check_resumable(out, settings) if resume else None
    if not resume and (out / CHECKPOINT).exists():
        raise OpenbookError(f"{out} holds a training checkpoint: pass --resume to continue it or choose another --out")
    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    network, tokenizer = load_multiple_choice(str(out / CHECKPOINT) if state else settings.base)
    if state is None or not (out / DATA_FILE).is_file():
        if len(questions) < 2:
            raise OpenbookError(f"only {len(questions)} answered questions to train on")
        prepare_data(questions, index, settings, tokenizer, out, show_progress)
    train, validation = load_data(out)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    network.to(device).train()
    steps_per_epoch = (len(train) + settings.batch_size - 1) // settings.batch_size
    total_steps = steps_per_epoch * settings.epochs
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimiser, int(settings.warmup * total_steps), total_steps)
    step = 0
    history: list[dict] = []
    if state is not None:
        saved = torch.load(out / CHECKPOINT / "optimiser.pt", weights_only=False)
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        step, history = state["step"], state["history"]
        console.print(f"resuming {out} at step {step} of {total_steps}")
    epoch_started = time.perf_counter()
    losses: list[float] = []
    while step < total_steps:
        epoch, within = divmod(step, steps_per_epoch)
        order = list(range(len(train)))
        random.Random(settings.seed + epoch).shuffle(order)  # the same order on resume
        with meter(f"encoder epoch {epoch + 1}/{settings.epochs}", steps_per_epoch, ("questions",),
                   enabled=show_progress) as m:
            m.advance(completed=within)
            for position in range(within, steps_per_epoch):
                batch = [train[i] for i in order[position * settings.batch_size:(position + 1) * settings.batch_size]]
                features, sizes = encode_options(tokenizer, [q for q, _ in batch], [c for _, c in batch], settings.max_tokens)
                logits = network(**{k: v.to(device) for k, v in features.items()}).logits
                loss = option_loss(logits, sizes, [q.letters.index(q.answer) for q, _ in batch])
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                optimiser.step()
                scheduler.step()
                losses.append(loss.item())
                step += 1
                m.advance(completed=position + 1, questions=len(batch))
                if step % settings.checkpoint_every == 0 and step % steps_per_epoch:
                    _save_checkpoint(out, network, tokenizer, optimiser, scheduler,
                                     {"step": step, "history": history, "settings": asdict(settings)})
        seconds = time.perf_counter() - epoch_started
        score = validation_map3(network, tokenizer, validation, settings, device) if validation else None
        history.append({"epoch": epoch + 1, "seconds": round(seconds, 1), "train_questions": len(train),
                        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
                        "validation_map@3": score, "validation_questions": len(validation)})
        console.print(f"epoch {epoch + 1}: {history[-1]}")
        _save_checkpoint(out, network, tokenizer, optimiser, scheduler,
                         {"step": step, "history": history, "settings": asdict(settings)})
        epoch_started = time.perf_counter()
        losses = []
    network.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {"settings": asdict(settings), "history": history, "train_questions": len(train),
               "validation_questions": len(validation), "validation_ids": [q.id for q, _ in validation]}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
