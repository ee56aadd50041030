"""Retrieval: turn a query into ranked passages. Every retriever speaks `Retriever`."""

from openbook.retrieve.base import Retriever
from openbook.retrieve.sparse import BM25Retriever

__all__ = ["BM25Retriever", "Retriever"]
