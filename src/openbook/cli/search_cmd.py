"""`openbook search`: the best passages for a query, from an index folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from openbook.cli.common import ConfigOption, reports_errors, results
from openbook.config import check_at_least, resolve_options
from openbook.errors import ConfigError
from openbook.retrieve import Retrieval, RetrievalSpec


@dataclass
class SearchOptions:
    k: int = 5
    retrieval: str = "bm25"


@reports_errors
def search(
    index_dir: Annotated[Path, typer.Argument(help="Index folder built by `openbook index`.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="How many passages.")] = None,
    retrieval: Annotated[
        str | None, typer.Option(help="Retriever: bm25, dense, hybrid-rrf or hybrid-weighted.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the title, score and text of the best passages for QUERY."""
    options = resolve_options(SearchOptions, "search", config, {"k": k, "retrieval": retrieval})
    check_at_least("-k", options.k, unit="passages")
    spec = RetrievalSpec.parse(options.retrieval)
    if spec.query != "joint" or spec.rerank:
        raise ConfigError(
            "search takes a plain query: give a retriever only (query forms and rerankers need a question)"
        )
    hits = Retrieval(index_dir).retriever(spec.retriever).search([query], options.k)[0]
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
