"""The duplicate report as a terminal table, JSON, CSV and an HTML contact sheet.

One row per image: the group it belongs to, whether it is the suggested keeper, and why it is a copy.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable

from rich.table import Table

from loupe.tools.duplicates import DuplicateReport

FORMATS = ("table", "json", "csv", "html")


def as_table(report: DuplicateReport) -> Table:
    table = Table(title=f"{len(report.groups)} groups, {report.copies} copies in {report.rows} images "
                        f"({report.seconds:.1f} s; keeper: {', '.join(report.keep)})")
    for column in ("group", "", "file", "pixels", "date", "why"):
        table.add_column(column, overflow="fold")
    for number, group in enumerate(report.groups, start=1):
        for member in group.members:
            table.add_row(str(number), "keep" if member is group.keeper else "copy", member.path,
                          f"{member.width}x{member.height}", member.date[:10], member.why, end_section=False)
        table.rows[-1].end_section = True
    return table


def as_json(report: DuplicateReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


def as_csv(report: DuplicateReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["group", "role", "path", "width", "height", "file_size", "date", "match", "why", "id"])
    for number, group in enumerate(report.groups, start=1):
        for member in group.members:
            writer.writerow([number, "keep" if member is group.keeper else "copy", member.path, member.width,
                             member.height, member.file_size, member.date, member.match or "", member.why, member.id])
    return buffer.getvalue()


def as_html(report: DuplicateReport, thumbnail: Callable[[str], bytes | None]) -> str:
    """A contact sheet: one row of thumbnails per group, the keeper first and framed; self-contained (the
    thumbnails are embedded), so it can be mailed or opened anywhere."""
    rows = []
    for number, group in enumerate(report.groups, start=1):
        cells = []
        for member in group.members:
            data = thumbnail(member.id)
            image = f'<img src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">' if data else ""
            role = "keep" if member is group.keeper else html.escape(member.why)
            cells.append(f'<figure class="{"keep" if member is group.keeper else "copy"}">{image}<figcaption>'
                         f'<b>{html.escape(member.file_name)}</b><br>{member.width}x{member.height} · '
                         f'{html.escape(member.date[:10])}<br>{role}<br><small>{html.escape(member.path)}</small>'
                         "</figcaption></figure>")
        rows.append(f"<section><h2>Group {number}</h2>{''.join(cells)}</section>")
    return ("<!doctype html><meta charset=utf-8><title>Loupe duplicates</title><style>"
            "body{font-family:sans-serif} section{display:flex;flex-wrap:wrap;gap:12px;border-top:1px solid #ccc}"
            "h2{width:100%;font-size:1em} figure{width:220px;margin:0} img{max-width:220px;max-height:220px}"
            ".keep img{outline:4px solid #2a2}</style>"
            f"<h1>{len(report.groups)} groups, {report.copies} copies in {report.rows} images</h1>" + "".join(rows))
