"""One diff for every keyed collection: services by Name, firewall rules by Name, KBs by id, ports by (proto, port).

An invariant is then a few lines: diff the baseline and post-update collections on the fields that matter,
drop what the lab's policy allows, fail on what is left. The rendering helpers keep failure messages short
(a before/after table of what changed, not a dump of both postures) and give the report an HTML attachment.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")

MISSING = "-"
"""Shown in tables where a side has no value (an added or removed item)."""


def field_value(item: Any, name: str) -> Any:
    """Read ``name`` from a dataclass/object attribute or a mapping key (postures or raw dicts both work)."""
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change(Generic[K, T]):
    """One key present on both sides whose compared fields differ."""

    key: K
    before: T
    after: T
    fields: tuple[FieldChange, ...]

    def field(self, name: str) -> FieldChange | None:
        return next((f for f in self.fields if f.field == name), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.field for f in self.fields)


@dataclass(frozen=True)
class KeyedDiff(Generic[K, T]):
    """Added, removed and changed items, each keyed like the input mappings (insertion order kept)."""

    added: dict[K, T] = field(default_factory=dict)
    removed: dict[K, T] = field(default_factory=dict)
    changed: dict[K, Change[K, T]] = field(default_factory=dict)
    fields: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def __bool__(self) -> bool:
        return not self.empty

    def __len__(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def keys(self) -> list[K]:
        return [*self.added, *self.removed, *self.changed]

    def without(self, predicate: Callable[[K, T | None, T | None], bool]) -> KeyedDiff[K, T]:
        """A copy without the entries ``predicate(key, before, after)`` accepts (allowlists, waivers)."""
        return KeyedDiff(
            added={k: v for k, v in self.added.items() if not predicate(k, None, v)},
            removed={k: v for k, v in self.removed.items() if not predicate(k, v, None)},
            changed={k: c for k, c in self.changed.items() if not predicate(k, c.before, c.after)},
            fields=self.fields)

    def only(self, predicate: Callable[[K, T | None, T | None], bool]) -> KeyedDiff[K, T]:
        """A copy keeping only the entries ``predicate(key, before, after)`` accepts."""
        return self.without(lambda k, b, a: not predicate(k, b, a))

    def rows(self, *, summary: Sequence[str] | None = None) -> list[tuple[str, str, str, str]]:
        """(key, field, before, after) rows: one per changed field, one per added/removed item. ``summary``
        names the fields shown for added/removed items (default: the compared fields)."""
        shown = tuple(summary) if summary is not None else self.fields
        out: list[tuple[str, str, str, str]] = []
        for key, item in self.added.items():
            out.append((format_key(key), "(added)", MISSING, _summarise(item, shown)))
        for key, item in self.removed.items():
            out.append((format_key(key), "(removed)", _summarise(item, shown), MISSING))
        for key, change in self.changed.items():
            for fc in change.fields:
                out.append((format_key(key), fc.field, format_value(fc.before), format_value(fc.after)))
        return out

    def table(self, *, max_rows: int = 20, summary: Sequence[str] | None = None) -> str:
        return render_table(self.rows(summary=summary), max_rows=max_rows)

    def to_dict(self) -> dict[str, Any]:
        from patchgate.model.posture import _jsonable  # posture owns the JSON conversion rules

        return {
            "fields": list(self.fields),
            "added": {format_key(k): _jsonable(v) for k, v in self.added.items()},
            "removed": {format_key(k): _jsonable(v) for k, v in self.removed.items()},
            "changed": {format_key(k): {f.field: {"before": _jsonable(f.before), "after": _jsonable(f.after)}
                                        for f in c.fields} for k, c in self.changed.items()},
        }


def diff_keyed(before: Mapping[K, T], after: Mapping[K, T], fields: Sequence[str]) -> KeyedDiff[K, T]:
    """Compare two keyed collections on ``fields`` (attribute or mapping-key names).

    Keys only in ``after`` are added, only in ``before`` removed; keys in both with any differing field are
    changed, with one FieldChange per differing field in the order given.
    """
    if isinstance(fields, str):
        raise TypeError("fields must be a sequence of field names, not one string")
    names = tuple(fields)
    added = {k: v for k, v in after.items() if k not in before}
    removed = {k: v for k, v in before.items() if k not in after}
    changed: dict[K, Change[K, T]] = {}
    for key, old in before.items():
        if key not in after:
            continue
        new = after[key]
        deltas = tuple(FieldChange(n, field_value(old, n), field_value(new, n)) for n in names
                       if field_value(old, n) != field_value(new, n))
        if deltas:
            changed[key] = Change(key=key, before=old, after=new, fields=deltas)
    return KeyedDiff(added=added, removed=removed, changed=changed, fields=names)


# ----------------------------------------------------------------------------------------------- rendering

def format_key(key: Any) -> str:
    if isinstance(key, tuple):
        return "/".join(str(p) for p in key)
    return str(key)


def format_value(value: Any, limit: int = 60) -> str:
    """Short, readable text for a value in a table cell."""
    if value is None:
        text = "(none)"
    elif isinstance(value, bool):
        text = "True" if value else "False"
    elif isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(str(v) for v in value) or "(empty)"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _summarise(item: Any, names: Sequence[str]) -> str:
    parts = [f"{n}={format_value(field_value(item, n), 30)}" for n in names if field_value(item, n) is not None]
    return format_value("; ".join(parts), 80) if parts else "(present)"


def render_table(rows: Iterable[Sequence[Any]], headers: Sequence[str] = ("key", "field", "before", "after"),
                 *, max_rows: int = 20) -> str:
    """A small fixed-width before/after table; rows past ``max_rows`` are counted, not printed."""
    all_rows = [tuple(format_value(c) for c in r) for r in rows]
    if not all_rows:
        return "(no differences)"
    shown = all_rows[:max_rows]
    head = tuple(str(h) for h in headers)
    widths = [max(len(head[i]), *(len(r[i]) if i < len(r) else 0 for r in shown)) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cells[i] if i < len(cells) else "").ljust(widths[i]) for i in range(len(head))).rstrip()

    out = [line(head), line(["-" * w for w in widths]), *(line(r) for r in shown)]
    if len(all_rows) > max_rows:
        out.append(f"... and {len(all_rows) - max_rows} more row(s)")
    return "\n".join(out)


_CSS = ("body{font-family:Segoe UI,Arial,sans-serif;font-size:13px}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
        "th{background:#f0f0f0}tr.added td{background:#e6ffed}tr.removed td{background:#ffeef0}"
        "td.before{color:#b31d28}td.after{color:#22863a}h1{font-size:15px;margin:4px 0}h2{font-size:14px;margin:8px 0 4px}"
        "p.summary{font-weight:bold;margin:4px 0}")


def _counts(d: KeyedDiff[Any, Any]) -> str:
    return ", ".join(f"{n} {what}" for n, what in ((len(d.added), "added"), (len(d.removed), "removed"),
                                                  (len(d.changed), "changed")) if n) or "no differences"


def render_html(diffs: Mapping[str, KeyedDiff[Any, Any]] | KeyedDiff[Any, Any], title: str = "Posture diff") -> str:
    """A self-contained HTML page with one table per named diff (for a report attachment). All text escaped.

    Allure shows an HTML attachment in a small frame: the first lines say what changed (``installed KBs: 1
    added``), the changed sections come first, and the sections without differences share one closing line."""
    sections = diffs if isinstance(diffs, Mapping) else {title: diffs}
    changed = {name: d for name, d in sections.items() if d.rows()}
    unchanged = [str(name) for name in sections if name not in changed]
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    summary = "; ".join(f"{name}: {_counts(d)}" for name, d in changed.items()) or "no differences"
    parts.append(f"<p class=\"summary\">{html.escape(summary)}</p>")
    for name, d in changed.items():
        parts.append(f"<h2>{html.escape(str(name))}: {_counts(d)}</h2>")
        parts.append("<table><tr><th>key</th><th>field</th><th>before</th><th>after</th></tr>")
        for key, fname, before, after in d.rows():
            cls = " class=\"added\"" if fname == "(added)" else " class=\"removed\"" if fname == "(removed)" else ""
            parts.append(f"<tr{cls}><td>{html.escape(key)}</td><td>{html.escape(fname)}</td>"
                         f"<td class=\"before\">{html.escape(before)}</td>"
                         f"<td class=\"after\">{html.escape(after)}</td></tr>")
        parts.append("</table>")
    if unchanged:
        parts.append(f"<p>No differences: {html.escape(', '.join(unchanged))}.</p>")
    parts.append("</body></html>")
    return "".join(parts)
