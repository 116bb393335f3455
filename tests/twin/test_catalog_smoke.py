"""The built-in catalogue loads and the October 2025 facts hold end to end."""

from __future__ import annotations

import datetime as dt

import pytest

from patchgate_twin.behaviours import apply_install, complete_reboot, run_wsus_sync
from patchgate_twin.catalog import Catalog, UnknownKb

NOW = dt.datetime(2025, 10, 25, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load([])


def test_builtin_catalogue_has_the_october_kbs(catalog: Catalog) -> None:
    kbs = {b.kb for b in catalog.behaviours()}
    assert {"KB5066835", "KB5070881", "KB5070893", "KB5068966", "KB5068861", "KB5073379"} <= kbs
    assert "ws2025-dc-hotpatch-oct2025" in catalog.images()


def test_kb5070893_restarts_only_with_the_wsus_role(catalog: Catalog) -> None:
    member = catalog.image("ws2025-dc-hotpatch-oct2025")
    wsus = catalog.image("ws2025-dc-wsus-oct2025")
    assert apply_install(member, catalog.behaviour("KB5070893"), NOW).restart_needed is False
    assert apply_install(wsus, catalog.behaviour("KB5070893"), NOW).restart_needed is True
    assert member.build == "26100.6905" and member.has_kb("KB5070893")


def test_kb5070881_shows_after_the_restart(catalog: Catalog) -> None:
    host = catalog.image("ws2025-dc-hotpatch-oct2025")
    outcome = apply_install(host, catalog.behaviour("KB5070881"), NOW)
    assert outcome.exit_code == 3010 and host.reboot.cbs_reboot_pending
    assert host.ubr == 6899 and not host.has_kb("KB5070881")
    complete_reboot(host, NOW + dt.timedelta(minutes=5))
    assert host.ubr == 6905 and host.has_kb("KB5070881")
    assert not host.reboot.cbs_reboot_pending
    assert host.last_boot_up_time == NOW + dt.timedelta(minutes=5)


def test_unknown_kb_is_a_clear_key_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError) as info:
        catalog.behaviour("KB1234567")
    assert isinstance(info.value, UnknownKb)
    assert "KB1234567" in str(info.value) and "--twin-catalog" in str(info.value)


def test_wsus_sync_succeeds_on_the_wsus_image(catalog: Catalog) -> None:
    host = catalog.image("ws2025-dc-wsus-oct2025")
    info = run_wsus_sync(host, NOW)
    assert info.result == "Succeeded" and host.wsus.last_sync is info
