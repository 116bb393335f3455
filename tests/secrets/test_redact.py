"""A registered secret never survives into logs, output files or error messages."""

from __future__ import annotations

import io
import json
import logging
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydantic import SecretStr

from patchgate.errors import SecretsError
from patchgate.secrets.base import Credentials
from patchgate.secrets.redact import (
    MASK,
    install_logging_redaction,
    redact_file,
    redact_tree,
    redactor,
    safe_str,
    safe_traceback,
)


@pytest.fixture
def canary() -> str:
    # quote, ampersand and angle brackets: the value changes spelling inside JSON and XML
    value = f'cAnary-{secrets.token_hex(6)}"&<x>'
    redactor.register(value)
    return value


def _escaped_forms(value: str) -> list[str]:
    return [value, json.dumps(value)[1:-1], value.replace("&", "&amp;").replace("<", "&lt;"),
            value.split('"')[0]]  # the random prefix alone must not be left behind either


def test_log_handler_added_after_install_never_sees_canary(canary: str) -> None:
    install_logging_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("patchgate.test.redact.late")
    logger.propagate = False  # even a logger that bypasses the root handlers
    logger.addHandler(handler)
    try:
        logger.warning("password is %s", canary)
        logger.warning(f"inline {canary} in an f-string")
        try:
            raise RuntimeError(f"boom with {canary}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert output.count(MASK) >= 3
    assert "RuntimeError" in output  # the traceback is still there, only masked
    for form in _escaped_forms(canary)[:1]:
        assert form not in output


def test_caplog_sees_masked_text(canary: str, caplog: pytest.LogCaptureFixture) -> None:
    install_logging_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("patchgate.test.redact").info("secret=%s", canary)
    assert canary not in caplog.text
    assert f"secret={MASK}" in caplog.text


def test_filter_masks_hand_built_records(canary: str) -> None:
    install_logging_redaction()
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        install_logging_redaction()  # idempotent; puts the filter on current root handlers
        root.handle(logging.makeLogRecord({"msg": "made %s", "args": (canary,), "levelno": logging.ERROR,
                                           "levelname": "ERROR"}))
    finally:
        root.removeHandler(handler)
    assert canary not in stream.getvalue()
    assert MASK in stream.getvalue()


def test_redact_tree_rewrites_json_xml_and_attachments(canary: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "allure-results").mkdir(parents=True)
    (out / "gate.json").write_text(json.dumps({"verdict": "block", "reason": f"auth failed for {canary}"}))
    (out / "gate.utf8.json").write_text(json.dumps({"x": canary}, ensure_ascii=False))
    suite = ET.Element("testsuite")
    ET.SubElement(suite, "failure", message=f"pw {canary}").text = f"trace {canary}"
    ET.ElementTree(suite).write(out / "junit.xml", encoding="utf-8", xml_declaration=True)
    (out / "allure-results" / "abc-attachment.txt").write_text(f"stdout: {canary}\n")
    binary = out / "allure-results" / "shot.png"
    png = b"\x89PNG\r\n\x1a\n\x00" + canary.encode()
    binary.write_bytes(png)

    changed = redact_tree(out)

    assert {p.name for p in changed} == {"gate.json", "gate.utf8.json", "junit.xml", "abc-attachment.txt"}
    for path in (out / "gate.json", out / "gate.utf8.json", out / "junit.xml",
                 out / "allure-results" / "abc-attachment.txt"):
        text = path.read_text()
        for form in _escaped_forms(canary):
            assert form not in text, path.name
        assert MASK in text
    assert json.loads((out / "gate.json").read_text())["verdict"] == "block"
    assert ET.parse(out / "junit.xml").getroot().find("failure") is not None
    assert binary.read_bytes() == png  # binaries are never rewritten
    assert redact_file(out / "gate.json") is False  # nothing left to mask


def test_safe_str_and_traceback_mask_exception_text(canary: str) -> None:
    try:
        try:
            raise ValueError(f"inner {canary}")
        except ValueError as inner:
            raise SecretsError("outer failure") from inner
    except SecretsError as exc:
        assert canary not in safe_traceback(exc)
        assert "outer failure" in safe_str(exc)
    assert safe_str(RuntimeError(f"x {canary}")) == f"x {MASK}"


def test_basic_auth_token_is_registered() -> None:
    import base64

    password = "Pw-" + secrets.token_hex(5)
    redactor.register_credentials("admin", password)
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    assert redactor.redact(f"Authorization: Basic {token}") == f"Authorization: Basic {MASK}"


def test_short_values_are_not_registered() -> None:
    before = redactor.count
    redactor.register("abc")
    assert redactor.count == before
    assert redactor.redact("abc") == "abc"


def test_credentials_repr_hides_password(canary: str) -> None:
    creds = Credentials("admin", SecretStr(canary))
    assert canary not in repr(creds)
    assert canary not in str(creds)
