"""One redactor for the whole process: every secret value read is registered here, and every output
path (logging, Allure results and attachments, junit.xml, gate.json, manifests, error messages) runs
text through it before writing.

A value is registered together with the forms it takes once serialised (JSON string escaping, XML
escaping, the HTTP Basic ``user:password`` token when both halves are known), because a password with
a quote or an ampersand in it would otherwise slip through a report file unmasked.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from patchgate.atomic import atomic_write

MASK = "***REDACTED***"
_MIN_LEN = 4  # shorter values would mask ordinary words; such secrets are refused by providers
MIN_SECRET_LENGTH = _MIN_LEN

# Files under an output folder that are never text: rewriting them byte-wise could corrupt them.
BINARY_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".zip", ".gz",
                             ".tgz", ".xz", ".bz2", ".7z", ".cab", ".msu", ".exe", ".dll", ".webm",
                             ".mp4", ".pdf", ".woff", ".woff2", ".ttf", ".sig"})


def _xml_escape(text: str, *, quotes: bool = False) -> str:
    """xml.sax.saxutils.escape (with its quote entities when asked), without importing urllib and http.client at
    every command's start."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;").replace("'", "&apos;") if quotes else text


def _variants(value: str) -> set[str]:
    """The raw value and the spellings it takes inside JSON and XML documents."""
    forms = {value}
    forms.add(json.dumps(value)[1:-1])                       # JSON string body, ASCII escapes
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])   # JSON string body, UTF-8 kept
    forms.add(_xml_escape(value, quotes=True))
    forms.add(_xml_escape(value))
    return {form for form in forms if len(form) >= _MIN_LEN}


class Redactor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: list[str] = []
        self._registered: set[str] = set()  # raw values already registered: a fast, lock-free repeat check

    def register(self, value: str | None) -> None:
        if not value or len(value) < _MIN_LEN or value in self._registered:
            return  # providers re-register on every read (each WSMan authentication): keep that cheap
        with self._lock:
            self._registered.add(value)
            changed = False
            for form in _variants(value):
                if form not in self._values:
                    self._values.append(form)
                    changed = True
            if changed:
                # longest first, so a value containing another is masked whole
                self._values.sort(key=len, reverse=True)

    def register_credentials(self, username: str, password: str) -> None:
        """Register a password and the HTTP Basic token built from it (which logs may show)."""
        self.register(password)
        if password and len(password) >= _MIN_LEN:
            self.register(base64.b64encode(f"{username}:{password}".encode()).decode("ascii"))

    def redact(self, text: str) -> str:
        if not text:
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        for value in self._values:
            raw = value.encode("utf-8")
            if raw in data:
                data = data.replace(raw, MASK.encode())
        return data

    @property
    def count(self) -> int:
        return len(self._values)


redactor = Redactor()


def safe_str(exc: BaseException) -> str:
    """An exception's message fit to show a user or write to a report: registered secrets masked.

    Lower layers (hvac, requests, pypsrp) build messages we do not control; this is the one place
    they pass through before reaching a console, a log, gate.json or an Allure attachment.
    """
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error type
        text = f"<unprintable {type(exc).__name__}>"
    return redactor.redact(text or type(exc).__name__)


def safe_traceback(exc: BaseException) -> str:
    """The full formatted traceback (with chained causes), secrets masked."""
    return redactor.redact("".join(traceback.format_exception(exc)))


# ---------------------------------------------------------------- logging

class RedactingFilter(logging.Filter):
    """Attach to handlers: rewrites each record's final message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    """Mask a record in place; idempotent, so the factory and the handler filter may both run."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not leak args either
        message = str(record.msg)
    record.msg = redactor.redact(message)
    record.args = None
    if record.exc_text:
        record.exc_text = redactor.redact(record.exc_text)
    elif record.exc_info and record.exc_info[1] is not None:
        # Formatter.format() reuses a cached exc_text, so caching the masked text here means every
        # handler prints the masked traceback.
        record.exc_text = redactor.redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


_install_lock = threading.Lock()
_installed = False
_filter = RedactingFilter()


def install_logging_redaction() -> None:
    """Mask secrets in every log record of the process, whichever handler ends up writing it.

    Two layers, because neither alone covers everything:

    * a log-record factory masks the message, arguments, traceback and stack text when a record is
      created, so handlers added later (pytest's caplog, Allure's log capture, a user's FileHandler,
      loggers with ``propagate=False``) only ever see masked text;
    * the same filter goes on the root logger's current handlers, for records built by hand with
      ``logging.makeLogRecord`` (which bypasses the factory).

    Safe to call more than once.
    """
    global _installed
    with _install_lock:
        for handler in logging.getLogger().handlers:
            if _filter not in handler.filters:
                handler.addFilter(_filter)
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        factory._patchgate_previous = previous  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
        _installed = True


# ---------------------------------------------------------------- files

def _is_text(path: Path, head: bytes) -> bool:
    return path.suffix.lower() not in BINARY_SUFFIXES and b"\x00" not in head


def redact_file(path: str | os.PathLike[str]) -> bool:
    """Rewrite one text file with registered secrets masked; returns True when it changed.

    Binary files (by suffix or a NUL byte in the first 8 KiB) are left alone. The rewrite goes
    through a temporary file and an atomic rename, so a reader never sees half a file.
    """
    return redacted_content(path)[1]


def redacted_content(path: str | os.PathLike[str]) -> tuple[bytes | None, bool]:
    """Redact one file as ``redact_file`` does; returns its content afterwards (None: it is gone) and whether
    it changed, so a caller that hashes the folder next reads each file once."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None, False
    if not _is_text(target, data[:8192]):
        return data, False
    masked = redactor.redact_bytes(data)
    if masked == data:
        return data, False
    atomic_write(target, masked, mode=target.stat().st_mode & 0o7777)
    return masked, True


def redact_tree(root: str | os.PathLike[str], seen: Callable[[Path, bytes], None] | None = None,
                skip: Callable[[Path], bool] | None = None) -> list[Path]:
    """Redact every text file below ``root`` (gate.json, junit.xml, allure-results, manifests).

    Returns the files that were changed, so the caller can record that redaction happened; ``seen(path,
    content)`` gets every file's content after redaction (the evidence manifest hashes it); ``skip(path)``
    names files already masked with every registered secret (their writer did it).
    """
    changed: list[Path] = []
    base = Path(root)
    for path in ([base] if base.is_file() else sorted(_walk(base))):
        if skip is not None and skip(path):
            continue
        content, was_changed = redacted_content(path)
        if was_changed:
            changed.append(path)
        if content is not None and seen is not None:
            seen(path, content)
    return changed


def _walk(base: Path) -> Iterable[Path]:
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            candidate = Path(dirpath, name)
            if not candidate.is_symlink():
                yield candidate
