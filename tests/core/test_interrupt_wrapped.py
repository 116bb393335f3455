"""Ctrl-C that lands inside a class body is re-raised by the interpreter as a RuntimeError ("Error calling
__set_name__ ...") with the KeyboardInterrupt as its cause: the command still reports it as an interrupt
(exit 130), never as an internal error."""

from __future__ import annotations

import pytest

from patchgate import cli
from patchgate.run.interrupts import caused_by_interrupt
from patchgate.errors import EXIT_INTERRUPTED


class InterruptedWhileNamed:
    def __set_name__(self, owner: type, name: str) -> None:
        raise KeyboardInterrupt


def _define_a_class() -> None:
    class Interrupted:  # noqa: F841 - its body is the point
        field = InterruptedWhileNamed()


def test_the_interpreter_wraps_an_interrupt_in_a_class_body() -> None:
    with pytest.raises(RuntimeError) as caught:
        _define_a_class()
    assert isinstance(caught.value.__cause__, KeyboardInterrupt)
    assert caused_by_interrupt(caught.value)
    assert not caused_by_interrupt(RuntimeError("a bug"))


def test_a_wrapped_interrupt_exits_as_interrupted(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from patchgate.cli import calendar as calendar_command

    def interrupted(args) -> int:
        _define_a_class()
        return 0

    original = calendar_command.add_command

    def add_command(sub) -> None:
        original(sub)
        sub.choices["calendar"].set_defaults(func=interrupted)

    monkeypatch.setattr(calendar_command, "add_command", add_command)
    assert cli.main(["calendar"]) == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
