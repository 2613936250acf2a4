"""Printing search results and index reports in the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loupe.indexer import IndexReport
from loupe.tools.models.registry import ModelKind, families, missing_modules
from loupe.tools.records import MatchedRecord, SearchResult

console = Console()


def print_result(result: SearchResult, title: str) -> None:
    if not result.records:
        console.print(f"[bold]{title}[/bold]: no match. {result.note}")
        return
    print_records(result.records, f"{title} ({result.seconds * 1000:.0f} ms)")


def print_records(records: list[MatchedRecord], title: str) -> None:
    """The records as a table: rank, score, match label, file, why it matched, a few metadata facts."""
    table = Table(title=title, show_lines=False, expand=False)
    for column in ("#", "score", "match", "file", "why", "metadata"):
        table.add_column(column, overflow="fold")
    for rank, record in enumerate(records, start=1):
        why = record.why + (f"\n“{record.matched_text}”" if record.matched_text else "")
        table.add_row(str(rank), f"{record.score:.2f}", record.match, escape(record.file_name), escape(why),
                      escape(record.facts_line()))
    console.print(table)


def print_report(report: IndexReport) -> None:
    for problem in report.problems:
        console.print(f"[yellow]skipped[/yellow] {problem}", highlight=False)
    timing = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in report.stage_seconds.items())
    console.print(f"[bold]indexed:[/bold] {report.summary()}" + (f"  ({timing})" if timing else ""))


def print_models() -> None:
    """Every registered backend with the extra it needs and whether that extra is installed here."""
    table = Table(title="model backends (set them in loupe.toml; `loupe eval --compare` takes the same names)")
    for column in ("kind", "name it", "extra", "installed"):
        table.add_column(column)
    for kind in ModelKind:
        for family in families(kind):
            missing = missing_modules(family.extra) if family.extra else []
            extra = f"[{family.extra}]" if family.extra else "default"
            installed = "yes" if not missing else f"no: pip install 'loupe[{family.extra}]'"
            table.add_row(*(escape(cell) for cell in (str(kind), family.usage, extra, installed)))
    console.print(table)
