"""Keep the latest tables in docs/performance.md, between two markers, with the machine they ran on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- bench:start (written by make bench) -->"
END = "<!-- bench:end -->"


def md_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any], tables: list[tuple[str, list[str], list[list[str]]]]) -> str:
    m = results["machine"]
    parts = [f"Measured {results['started_at']} on {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, "
             f"Python {m['python']}, {m['os']}; load average at the start {m.get('load_average')}; the whole "
             f"bench took {results['duration_s'] / 60:.1f} min."]
    for title, columns, rows in tables:
        parts.append(f"**{title}**\n\n{md_table(columns, rows)}")
    return "\n\n".join(parts)


def update_doc(path: Path, body: str, *, start: str = START, end: str = END) -> None:
    """Replace what is between ``start`` and ``end`` (appended when missing) with ``body``."""
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# Performance\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}", encoding="utf-8")
