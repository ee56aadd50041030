"""`openbook search`: the best passages for a query, from an index folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from openbook.cli.common import ConfigOption, reports_errors, results
from openbook.config import resolve_options
from openbook.retrieve import BM25Retriever


@dataclass
class SearchOptions:
    k: int = 5


@reports_errors
def search(
    index_dir: Annotated[Path, typer.Argument(help="Index folder built by `openbook index`.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="How many passages.")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the title, score and text of the best passages for QUERY."""
    options = resolve_options(SearchOptions, "search", config, {"k": k})
    retriever = BM25Retriever(index_dir)
    hits = retriever.search([query], options.k)[0]
    if not hits:
        results.print("no passage matches")
    for hit in hits:
        title = escape(hit.passage.title or "(untitled)")
        results.print(f"[bold]{hit.rank + 1}. {title}[/]  score {hit.score:.2f}  [dim]{escape(hit.passage.id)}[/]",
                      highlight=False)
        results.print(escape(hit.passage.text), highlight=False, soft_wrap=False)
        results.print()
