"""The environment is read once per HTTP client, never on every request.

pytest sets and deletes ``PYTEST_CURRENT_TEST`` in ``os.environ`` at every phase of every test, in the main thread,
while the lab's threads talk to hosts and Vault. A requests session that trusts the environment walks the whole of
``os.environ`` on each request (proxy and no-proxy lookup), and a key deleted during that walk raises ``KeyError``
(pytest-dev/pytest#10876; the same race is reported against other clients used under pytest). Nothing of that request
has been sent when it raises, so it is safe to send again; better still, a client that has resolved its environment
settings once does not walk it again.
"""

from __future__ import annotations

import os

import requests


def raised_reading_environ(exc: BaseException) -> bool:
    """True when ``exc`` is a KeyError raised by ``os.environ`` itself (a key another thread deleted mid-walk)."""
    if not isinstance(exc, KeyError):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is type(os.environ).__getitem__.__code__


def settled_session(url: str, verify: bool | str) -> tuple[requests.Session, bool | str]:
    """A requests session whose proxies and CA bundle come from the environment as it is now, and which never
    reads it again; returns it with the ``verify`` to pass on each request (``REQUESTS_CA_BUNDLE`` applied)."""
    session = requests.Session()
    settings = session.merge_environment_settings(url, {}, None, verify, None)
    session.proxies = settings["proxies"]
    session.trust_env = False
    return session, settings["verify"]


__all__ = ["raised_reading_environ", "settled_session"]
