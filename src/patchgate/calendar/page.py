"""Turn a saved copy of Microsoft's Windows Server release information page into the calendar file format.

Why: the hotpatch calendar changes every month and Microsoft can insert unplanned baselines; reading the table
Microsoft publishes is less error-prone than typing KB numbers. The page is
https://learn.microsoft.com/windows/release-health/windows-server-release-info (its hotpatch calendar section);
save it as HTML from a browser, or as markdown (``?accept=text/markdown`` [3P]). The page cannot be fetched from
here, so the importer reads the table by its column names, not by position: a column whose header names the month
(or availability date), the update type, the KB article and the OS build. Rows:

* ``Baseline`` opens a quarter; ``Hotpatch`` joins the quarter of the last baseline;
* an update type naming ``out-of-band`` goes to the quarter's ``oob`` list, hotpatch-compatible only when the type
  also says ``hotpatch`` (otherwise unknown, [U], so the track check is inconclusive on it);
* a row without a KB (planned, "TBD") becomes a ``pending`` month.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from patchgate.errors import ConfigError

PAGE_URL = "https://learn.microsoft.com/windows/release-health/windows-server-release-info#windows-server-hotpatch-calendar"
_KB = re.compile(r"KB\s?(\d{6,8})", re.IGNORECASE)
_BUILD = re.compile(r"(\d{5})\.(\d{1,6})")
_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}


@dataclass(frozen=True)
class PageRow:
    month: str  # YYYY-MM
    released: dt.date | None
    kind: str  # baseline | hotpatch | oob | oob-hotpatch
    kb: str | None
    build: str | None


class _Tables(HTMLParser):
    """Every <table> of an HTML page as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _markdown_tables(text: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
            continue  # the header separator
        if current is None:
            current = []
            tables.append(current)
        current.append([re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", c) for c in cells])  # keep link text
    return tables


def _column(header: list[str], *words: str) -> int | None:
    for i, name in enumerate(header):
        if any(w in name.lower() for w in words):
            return i
    return None


def _month(text: str) -> tuple[str, dt.date | None] | None:
    iso = re.search(r"(\d{4})-(\d{2})(?:-(\d{2}))?", text)
    if iso:
        y, m, d = iso.groups()
        return f"{y}-{m}", dt.date(int(y), int(m), int(d)) if d else None
    words = re.search(r"([A-Za-z]+)\s+(?:(\d{1,2}),?\s+)?(\d{4})", text)
    if words and words.group(1).lower() in _MONTHS:
        y, m = int(words.group(3)), _MONTHS[words.group(1).lower()]
        return f"{y}-{m:02d}", dt.date(y, m, int(words.group(2))) if words.group(2) else None
    return None


def _kind(text: str) -> str | None:
    low = text.lower()
    if "out-of-band" in low or "oob" in low:
        return "oob-hotpatch" if "hotpatch" in low else "oob"
    if "baseline" in low:
        return "baseline"
    if "hotpatch" in low:
        return "hotpatch"
    return None


def read_rows(text: str) -> list[PageRow]:
    """The hotpatch calendar rows of a saved page (HTML or markdown), in page order."""
    tables = _Tables() if "<table" in text.lower() else None
    if tables is not None:
        tables.feed(text)
        found = tables.tables
    else:
        found = _markdown_tables(text)
    rows: list[PageRow] = []
    for table in found:
        if not table:
            continue
        header = table[0]
        cols = (_column(header, "month", "availability", "date"), _column(header, "type"),
                _column(header, "kb"), _column(header, "build"))
        if cols[0] is None or cols[1] is None or cols[2] is None:
            continue  # not a hotpatch calendar table
        for cells in table[1:]:
            if len(cells) < len(header):
                continue
            when = _month(cells[cols[0]])
            kind = _kind(cells[cols[1]])
            if when is None or kind is None:
                continue
            kb = _KB.search(cells[cols[2]])
            build = _BUILD.search(cells[cols[3]]) if cols[3] is not None else None
            rows.append(PageRow(when[0], when[1], kind, f"KB{kb.group(1)}" if kb else None,
                                f"{build.group(1)}.{build.group(2)}" if build else None))
    return rows


def _release(row: PageRow) -> dict[str, Any]:
    out: dict[str, Any] = {"kb": row.kb, "build": row.build, "month": row.month}
    if row.released:
        out["released"] = row.released
    return out


def to_calendar(rows: list[PageRow], *, product: str = "Windows Server 2025", taken_on: dt.date | None = None,
                source: str = PAGE_URL) -> dict[str, Any]:
    """The calendar file's document for ``rows``; raises ConfigError when the page has no usable table."""
    quarters: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r.month, r.kind != "baseline")):
        if row.kb is None or row.build is None:
            pending.append({"month": row.month, "kind": "baseline" if row.kind == "baseline" else "hotpatch",
                            "source": source, "note": "no KB on the page yet"})
            continue
        if row.kind == "baseline":
            year, month = int(row.month[:4]), int(row.month[5:])
            quarters.append({"id": f"{year}Q{(month - 1) // 3 + 1}", "baseline": _release(row)})
            continue
        if not quarters:
            continue  # before the first baseline the page lists: nothing to attach it to
        if row.kind == "hotpatch":
            quarters[-1].setdefault("hotpatches", []).append(_release(row))
        else:
            oob = {**_release(row), "kind": "oob", "hotpatch_compatible": True if row.kind == "oob-hotpatch" else None}
            quarters[-1].setdefault("oob", []).append(oob)
    if not quarters:
        raise ConfigError("no hotpatch calendar table with a Baseline row found (columns: month or availability "
                          "date, update type, KB article, OS build)")
    doc: dict[str, Any] = {"product": product, "current_build": quarters[0]["baseline"]["build"].split(".")[0],
                           "sources": [source]}
    if taken_on:
        doc["taken_on"] = taken_on
    doc["always_allowed"] = ["KB5043080"]  # the 24H2 checkpoint cumulative update (docs/calendar.md)
    doc["quarters"] = quarters
    if pending:
        doc["pending"] = pending
    return doc


def import_page(path: Path, *, taken_on: dt.date | None = None) -> str:
    """The calendar file text (YAML) for a saved release-information page."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the page: {exc.strerror}", file=str(path)) from None
    try:
        doc = to_calendar(read_rows(text), taken_on=taken_on)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=str(path)) from None
    header = ("# Imported by 'patchgate calendar import' from a saved release information page.\n"
              "# Review before use: out-of-band rows need hotpatch_compatible from their KB article (null = [U]).\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)
