"""Retrieval: turn a question into ranked passages. Every retriever speaks `Retriever`; a pipeline
(retriever, query form, reranker) is named by a `RetrievalSpec` and run by `Retrieval`."""

from openbook.retrieve.base import Retriever
from openbook.retrieve.plan import AUTO, RETRIEVERS, Retrieval, RetrievalSpec
from openbook.retrieve.sparse import BM25Retriever

__all__ = ["AUTO", "BM25Retriever", "RETRIEVERS", "Retrieval", "RetrievalSpec", "Retriever"]
