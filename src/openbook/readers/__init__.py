"""Readers: score every option of a question from its context. Every reader kind speaks `Reader`;
the prompt readers of a language model (letter, yes/no) are read together by `PromptReaders`."""

from openbook.readers.base import PromptReader, Reader, ReadPlan
from openbook.readers.encoder import EncoderReader
from openbook.readers.letter import LetterReader
from openbook.readers.prompted import PromptReaders, read_question, read_questions
from openbook.readers.yesno import YesNoReader

__all__ = [
    "EncoderReader",
    "LetterReader",
    "PromptReader",
    "PromptReaders",
    "ReadPlan",
    "Reader",
    "YesNoReader",
    "read_question",
    "read_questions",
]
