"""patchgate's pytest layer, one plugin (registered as the ``pytest11`` entry point ``patchgate_pytest.plugin``).

Installing patchgate makes ``pytest suites`` a gate run: the options (``--lab``, ``--candidate``), the lab run and
its fixtures, the invariant markers, progress, evidence and Allure wiring. ``patchgate validate`` names it with
``-p`` (it starts pytest without plugin autoloading); the repository's conftest.py names it too, for a checkout
used without installing.
"""

pytest_plugins = [
    "patchgate_pytest.options",
    "patchgate_pytest.redaction",
    "patchgate_pytest.invariants",
    "patchgate_pytest.lab",
    "patchgate_pytest.progress",
    "patchgate_pytest.checks",
    "patchgate_pytest.allure_wiring",
    "patchgate_pytest.allure_check_result",
    "patchgate_pytest.allure_writer",
]


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """The VM's ``host`` fixture, registered after every plugin so that it wins over testinfra's own."""
    from patchgate_pytest import host

    if not config.pluginmanager.is_registered(host):
        config.pluginmanager.register(host, "patchgate_pytest.host")
