"""`paygo report`: the operator views as aligned text tables for a terminal.

Each view is read (billing.report_service) with its own order and a row limit; a view whose migration is not
applied yet is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from billing.report_service import ViewRows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return _printable(str(value))


def _printable(text: str) -> str:
    """Control characters (an ANSI escape in a vendor name stored before names were checked) shown escaped, never
    sent to the terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned, a rule under the header."""
    cells = [[_cell(value) for value in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(row[i], int | Decimal) or row[i] is None for row in rows)
               for i in range(len(columns))]
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.rjust(width) if is_number else value.ljust(width)
                         for value, width, is_number in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * width for width in widths]), *(line(row) for row in cells)])


def operator_report(views: Sequence[ViewRows]) -> str:
    """Each view under its name (ReportService.operator_views reads them)."""
    sections = []
    for view in views:
        more = f"\n(first {len(view.rows)} rows; more with --limit)" if view.truncated else ""
        body = format_table(view.columns, view.rows) if view.rows else "(no rows)"
        sections.append(f"== {view.name} ==\n{body}{more}")
    return "\n\n".join(sections) + "\n"
