"""The demo's final summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from worker.demo.samples import EXIT_OK, EXIT_TIMEOUT
from worker.demo.view import Board, _delivered, _price, _provider, _status_text


def summary_table(board: Board) -> Table:
    """The final table: request, provider, final status, events, price, acquisitions, verdict."""
    table = Table(title="tasking-worker demo: summary", header_style="bold")
    for name in (
        "request",
        "provider",
        "final status",
        "expected",
        "sequence",
        "price",
        "acquisitions",
        "delivered",
        "ok",
    ):
        table.add_column(name, overflow="fold")
    for rid, view in board.views.items():
        proposed, validated, refused = view.counts()
        acquisitions = f"{validated} validated, {proposed} proposed, {refused} refused"
        table.add_row(
            rid,
            _provider(view),
            _status_text(view.status),
            view.sample.expected.value,
            str(view.last.sequence if view.last else 0),
            _price(view.last),
            acquisitions,
            _delivered(view),
            Text("yes", style="green") if view.ok else Text("NO", style="bold red"),
        )
    return table


def _report(console: Console, board: Board, code: int, timeout: float, workdir: Path) -> None:
    console.print(summary_table(board))
    if code == EXIT_TIMEOUT:
        console.print(f"[bold red]timeout:[/] not every order finished within {timeout:g} s")
    for problem in board.problems():
        console.print(f"[red]✗[/] {escape(problem)}")
    if code == EXIT_OK:
        console.print("[bold green]every order reached its expected status[/]")
    console.print(f"[dim]worker and broker logs: {escape(str(workdir))}[/]")
