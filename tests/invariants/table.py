"""The catalogue's expectation table (every behaviour x image with the verdict Microsoft's documentation implies),
rendered as Markdown for docs/invariants.md, so the document and the test read the same rows."""

from __future__ import annotations

from patchgate_twin.catalog import Catalog

BEGIN = "<!-- catalogue-table:begin (generated from the twin catalogue; tests/invariants/test_catalogue_table.py) -->"
END = "<!-- catalogue-table:end -->"


def rows(catalog: Catalog) -> list[tuple[str, str, str, str, str, str]]:
    """(KB, what, image, verdict, failing invariants, sources) for every expect row, real KBs first."""
    out = []
    for b in sorted(catalog.behaviours(), key=lambda b: (b.synthetic, b.kb)):
        what = b.title.removeprefix("Synthetic regression: ").removeprefix("Synthetic lab trouble: ").removeprefix(
            "Synthetic IOC: ")
        sources = " ".join(f"[{i}]({url})" for i, url in enumerate(b.sources, 1)) if b.sources else (
            "synthetic" if b.synthetic else "")
        for image, exp in sorted(b.expect.items()):
            why = f" - {exp.note}" if exp.note else ""
            out.append((b.kb, (what + why).replace("|", "\\|"), image, exp.verdict,
                        ", ".join(f"`{f}`" for f in exp.fails), sources))
    return out


def markdown(catalog: Catalog) -> str:
    lines = [BEGIN, "", "| KB | behaviour | image | verdict | failing invariants (exactly) | sources |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {kb} | {what} | `{image}` | {verdict} | {fails} | {sources} |"
              for kb, what, image, verdict, fails, sources in rows(catalog)]
    lines += ["", END]
    return "\n".join(lines)


def refresh(doc: str, catalog: Catalog) -> str:
    """``doc`` with its generated block replaced by the current table."""
    start, end = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[:start] + markdown(catalog) + doc[end:]


if __name__ == "__main__":  # .venv/bin/python -m tests.invariants.table: rewrite the table in docs/invariants.md
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "docs" / "invariants.md"
    path.write_text(refresh(path.read_text(encoding="utf-8"), Catalog.load()), encoding="utf-8")
    print(f"updated {path}")
