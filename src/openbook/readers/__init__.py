"""Readers: score every option of a question from its context with a language model."""

from openbook.readers.base import Reader, ReadPlan, read_question, read_questions
from openbook.readers.encoder import EncoderReader
from openbook.readers.letter import LetterReader
from openbook.readers.yesno import YesNoReader
from openbook.records import OrderReading, ReaderOutput

__all__ = [
    "EncoderReader",
    "LetterReader",
    "OrderReading",
    "ReadPlan",
    "Reader",
    "ReaderOutput",
    "YesNoReader",
    "read_question",
    "read_questions",
]
