"""`openbook search`: the best passages for a query, from an index folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from openbook.cli.common import options_command, results
from openbook.config import option
from openbook.records import Question
from openbook.retrieve import AUTO, Retrieval

RETRIEVAL_HELP = (
    "RETRIEVER\\[/QUERY]\\[+RERANKER] (e.g. bm25, dense, hybrid-rrf+embed) or auto: hybrid-rrf+embed where the "
    "index has a dense part, else bm25."
)


@dataclass(frozen=True)
class SearchOptions:
    index_dir: Path | None = option(
        None, "Index folder built by `openbook index`.", argument=True, required=True, config=False
    )
    query: str | None = option(None, "What to look for.", argument=True, required=True, config=False)
    k: int = option(5, "How many passages.", flags=("-k", "--k"), minimum=1, unit="passages")
    retrieval: str = option(
        AUTO,
        RETRIEVAL_HELP + " The query is asked as a question whose one option is empty: every query form "
        "and reranker reads the query alone.",
    )


def _search(options: SearchOptions) -> None:
    """Print the title, score and text of the best passages for QUERY."""
    assert options.index_dir is not None and options.query is not None  # required arguments
    retrieval = Retrieval(options.index_dir)
    question = Question("query", options.query, {"A": ""})  # per-option queries: the query itself
    hits = retrieval.search([question], retrieval.resolve(options.retrieval), options.k)[0]
    if not hits:
        results.print("no passage matches")
    for hit in hits:
        title = escape(hit.passage.title or "(untitled)")
        results.print(
            f"[bold]{hit.rank + 1}. {title}[/]  score {hit.score:.2f}  [dim]{escape(hit.passage.id)}[/]",
            highlight=False,
        )
        results.print(escape(hit.passage.text), highlight=False, soft_wrap=False)
        results.print()


search = options_command(SearchOptions, "search", _search)
