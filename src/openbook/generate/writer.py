"""The language model that writes a question from a passage. Its output is constrained by a grammar
made from a JSON schema (llama.cpp's, through llama-cpp-python's `response_format`), so every draft
it finishes parses: a question, five options and the letter of the right one. The schema bounds every
field, so a reply always finishes within the context window (it is not cut at a token count)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from openbook.errors import require_modules
from openbook.models import resolve_model
from openbook.records import LETTERS, Passage

QUESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "minLength": 10, "maxLength": 300},
        **{letter: {"type": "string", "minLength": 1, "maxLength": 200} for letter in LETTERS},
        "answer": {"type": "string", "enum": list(LETTERS)},
    },
    "required": ["question", *LETTERS, "answer"],
}

SYSTEM = "You write hard multiple-choice science exam questions from an encyclopedia passage."
INSTRUCTIONS = (
    "Write one question that the passage answers. Give five options, A to E: exactly one is right by the "
    "passage; the four others are plausible but wrong, of the same kind and length as the right one. Do not "
    "put the answer in the question. Reply in JSON with the keys question, A, B, C, D, E and answer (the "
    "letter of the right option)."
)


@dataclass(frozen=True)
class Written:
    text: str  # the model's reply: JSON when it finished (finish reason "stop")
    finished: bool  # False: cut where the context window ended, and the JSON with it
    tokens: int  # generated
    seconds: float


class QuestionWriter:
    """A chat model on llama.cpp that writes one question per passage (a draft to be filtered)."""

    def __init__(self, model: str, n_ctx: int = 2048, threads: int | None = None, temperature: float = 0.7):
        require_modules("generate", "llama_cpp")
        from llama_cpp import Llama

        self.model_path = str(resolve_model(model))
        self._llm = Llama(model_path=self.model_path, n_ctx=n_ctx, n_threads=threads, verbose=False)
        self.temperature = temperature

    def write(self, passage: Passage, seed: int) -> Written:
        """A draft question about `passage`; the same passage and seed write the same draft."""
        began = time.perf_counter()
        # the whole prompt evaluated afresh: a prefix reused from the last draft would change the
        # logits in their last bits, and a sampled draft with them, so a resumed run would differ
        self._llm.reset()
        reply: Any = self._llm.create_chat_completion(  # not streamed: one response
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Passage:\n{passage.in_context()}\n\n{INSTRUCTIONS}"},
            ],
            response_format={"type": "json_object", "schema": QUESTION_SCHEMA},
            temperature=self.temperature,
            max_tokens=None,  # until the JSON closes, or the context window ends
            seed=seed,
        )
        choice = reply["choices"][0]
        return Written(
            text=choice["message"]["content"] or "",
            finished=choice["finish_reason"] == "stop",
            tokens=int(reply["usage"]["completion_tokens"]),
            seconds=time.perf_counter() - began,
        )
