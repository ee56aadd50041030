"""Readers: score every option of a question from its context with a language model."""

from openbook.readers.base import Reader, ReaderOutput
from openbook.readers.letter import LetterReader
from openbook.readers.yesno import YesNoReader

READERS = {"letter": LetterReader, "yesno": YesNoReader}

__all__ = ["READERS", "LetterReader", "Reader", "ReaderOutput", "YesNoReader"]
