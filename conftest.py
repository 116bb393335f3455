"""The suites' conftest: patchgate's pytest layer is the installed plugin ``patchgate_pytest`` (pytest11 entry
point); naming it here keeps a run with plugin autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``) a gate run."""

pytest_plugins = ["patchgate_pytest.plugin"]
