"""Corpora: streaming readers for Wikipedia dumps and tables, and sentence-aware chunking."""

from openbook.corpus.chunking import ChunkSettings, chunk_document
from openbook.corpus.drops import DropTally
from openbook.corpus.formats import FORMATS, FieldMap, detect_format, read_documents

__all__ = ["FORMATS", "ChunkSettings", "DropTally", "FieldMap", "chunk_document", "detect_format", "read_documents"]
