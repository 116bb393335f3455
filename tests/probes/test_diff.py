"""diff_keyed and its renderers over real posture dataclasses."""

from __future__ import annotations

from patchgate.model.diff import diff_keyed, render_html, render_table
from patchgate.model.posture import (
    PORT_DIFF_FIELDS,
    SERVICE_DIFF_FIELDS,
    FirewallRuleInfo,
    ListenerInfo,
    PortsPosture,
    ServiceInfo,
)


def svc(name: str, **kw) -> ServiceInfo:
    base = {"state": "Running", "start_mode": "Auto", "start_name": "LocalSystem", "path_name": f"C:\\{name}.exe"}
    base.update(kw)
    return ServiceInfo(name=name, **base)


def test_added_removed_changed_per_field() -> None:
    before = {"WinRM": svc("WinRM"), "BITS": svc("BITS", start_mode="Manual", state="Stopped"),
              "himds": svc("himds")}
    after = {"WinRM": svc("WinRM", start_mode="Disabled", state="Stopped"), "BITS": before["BITS"],
             "NewSvc": svc("NewSvc")}
    d = diff_keyed(before, after, SERVICE_DIFF_FIELDS)
    assert list(d.added) == ["NewSvc"]
    assert list(d.removed) == ["himds"]
    assert list(d.changed) == ["WinRM"]
    change = d.changed["WinRM"]
    assert change.field_names == ("start_mode", "state")
    assert change.field("start_mode").before == "Auto" and change.field("start_mode").after == "Disabled"
    assert len(d) == 3 and bool(d)


def test_no_change_is_empty_and_renders_as_such() -> None:
    same = {"WinRM": svc("WinRM")}
    d = diff_keyed(same, dict(same), SERVICE_DIFF_FIELDS)
    assert d.empty and not d
    assert render_table(d.rows()) == "(no differences)"


def test_fields_outside_the_list_are_ignored() -> None:
    d = diff_keyed({"a": svc("a", process_id=1)}, {"a": svc("a", process_id=2)}, SERVICE_DIFF_FIELDS)
    assert d.empty


def test_tuple_keys_for_ports_and_mapping_items() -> None:
    before = PortsPosture((ListenerInfo("TCP", "0.0.0.0", 8530, 100, "w3wp"),
                           ListenerInfo("TCP", "::", 8530, 100, "w3wp")))
    after = PortsPosture((ListenerInfo("TCP", "0.0.0.0", 8530, 200, "System"),
                          ListenerInfo("UDP", "0.0.0.0", 123, 9, "svchost")))
    d = diff_keyed(before.keyed(), after.keyed(), PORT_DIFF_FIELDS)
    assert list(d.added) == [("UDP", 123)]
    assert d.changed[("TCP", 8530)].field_names == ("local_addresses", "process_names")
    rows = d.rows()
    assert ("UDP/123", "(added)") == rows[0][:2]
    # plain dicts work as items too
    d2 = diff_keyed({"KB1": {"x": 1}}, {"KB1": {"x": 2}}, ["x"])
    assert d2.changed["KB1"].fields[0].after == 2


def test_without_applies_an_allowlist() -> None:
    r = FirewallRuleInfo(name="R1", group="Core Networking", action="Allow")
    d = diff_keyed({"R1": r}, {"R1": FirewallRuleInfo(name="R1", group="Core Networking", action="Block")},
                   ["action"])
    kept = d.without(lambda k, b, a: (a or b).group == "Core Networking")
    assert kept.empty and not d.empty


def test_table_is_short_and_readable() -> None:
    before = {f"S{i}": svc(f"S{i}") for i in range(40)}
    after = {k: svc(k, start_mode="Disabled") for k in before}
    text = diff_keyed(before, after, ["start_mode"]).table(max_rows=5)
    lines = text.splitlines()
    assert lines[0].split() == ["key", "field", "before", "after"]
    assert "S0" in lines[2] and "Auto" in lines[2] and "Disabled" in lines[2]
    assert lines[-1] == "... and 35 more row(s)"
    assert len(lines) == 8


def test_html_escapes_and_marks_rows() -> None:
    d = diff_keyed({}, {"<b>evil</b>": svc("x", path_name="C:\\a&b.exe")}, ["path_name"])
    page = render_html({"services": d}, title="VM lab-01")
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page
    assert 'class="added"' in page and "<h2>services: 1 added</h2>" in page


def test_html_says_what_changed_first_and_lists_changed_sections_before_the_rest() -> None:
    """Allure frames an HTML attachment small: the change that matters must be at the top."""
    same = diff_keyed({"a": svc("a")}, {"a": svc("a")}, ["start_mode"])
    kbs = diff_keyed({}, {"KB5070881": svc("KB5070881")}, ["start_mode"])
    page = render_html({"services": same, "firewall rules": same, "installed KBs": kbs}, title="vm")
    assert page.index('<p class="summary">installed KBs: 1 added</p>') < page.index("<table>")
    assert page.index("<h2>installed KBs: 1 added</h2>") < page.index("No differences: services, firewall rules.")
    assert "<h2>services" not in page


def test_to_dict_is_json_ready() -> None:
    import json
    before = PortsPosture((ListenerInfo("TCP", "0.0.0.0", 3389, 1, "svchost"),))
    d = diff_keyed(before.keyed(), {}, PORT_DIFF_FIELDS)
    data = json.loads(json.dumps(d.to_dict()))
    assert data["removed"]["TCP/3389"]["process_names"] == ["svchost"]
