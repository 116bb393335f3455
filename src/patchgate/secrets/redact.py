"""One redactor for the whole process: every secret value read is registered here, and every output
path (logging, Allure results and attachments, junit.xml, gate.json, manifests, error messages) runs
text through it before writing."""

from __future__ import annotations

import logging
import threading

MASK = "***REDACTED***"
_MIN_LEN = 4  # shorter values would mask ordinary words; such secrets are refused by providers


class Redactor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: list[str] = []

    def register(self, value: str | None) -> None:
        if not value or len(value) < _MIN_LEN:
            return
        with self._lock:
            if value not in self._values:
                self._values.append(value)
                self._values.sort(key=len, reverse=True)

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


class RedactingFilter(logging.Filter):
    """Attach to handlers: rewrites each record's final message with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not leak args either
            message = str(record.msg)
        record.msg = redactor.redact(message)
        record.args = None
        return True
