"""Property tests: the keyed diff's algebra, and model -> render -> parse for arbitrary names and text."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from patchgate.model.diff import diff_keyed
from patchgate.probes.parsers import parse_probe
from patchgate_twin.model import FirewallRule, HotFix, Service, WindowsHost
from patchgate_twin.render import render_probe

UTC = dt.UTC
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters=","), min_size=1,
                max_size=20)
records = st.dictionaries(st.sampled_from("abcdefgh"), st.fixed_dictionaries(
    {"x": st.integers(0, 3), "y": st.sampled_from(["p", "q"]), "z": st.booleans()}), max_size=8)


@given(records, records)
def test_diff_partitions_keys_and_reconstructs_after(before, after) -> None:
    d = diff_keyed(before, after, ["x", "y"])
    assert set(d.added) == after.keys() - before.keys()
    assert set(d.removed) == before.keys() - after.keys()
    for key in before.keys() & after.keys():
        differs = any(before[key][f] != after[key][f] for f in ("x", "y"))
        assert (key in d.changed) == differs
    rebuilt = {k: dict(v) for k, v in before.items() if k not in d.removed}
    rebuilt.update(d.added)
    for key, change in d.changed.items():
        for fc in change.fields:
            rebuilt[key][fc.field] = fc.after
    assert {k: (v["x"], v["y"]) for k, v in rebuilt.items()} == {k: (v["x"], v["y"]) for k, v in after.items()}
    assert diff_keyed(before, before, ["x", "y", "z"]).empty


@settings(max_examples=60)
@given(st.dictionaries(names, st.tuples(text, st.sampled_from(["Running", "Stopped"]),
                                        st.sampled_from(["Auto", "Manual", "Disabled"]), st.booleans(), text),
                       max_size=6))
def test_services_round_trip_any_text(spec) -> None:
    host = WindowsHost("h", services={n: Service(n, dn, state=s, start_mode=m, delayed_auto_start=d, path_name=p)
                                      for n, (dn, s, m, d, p) in spec.items()})
    posture = parse_probe("services", render_probe("services", host))
    assert set(posture.services) == set(spec)
    for n, (dn, s, m, d, p) in spec.items():
        got = posture.services[n]
        assert (got.display_name, got.state, got.start_mode, got.delayed_auto_start, got.path_name) == (dn, s, m, d, p)


@settings(max_examples=60)
@given(st.lists(st.tuples(names, text, st.lists(names, max_size=3), st.booleans(),
                          st.sampled_from(["Inbound", "Outbound"])), max_size=5, unique_by=lambda t: t[0]))
def test_firewall_rules_round_trip(spec) -> None:
    host = WindowsHost("h", firewall_rules={
        n: FirewallRule(n, dn, group=dn, local_port=ports, enabled=en, direction=dirn)
        for n, dn, ports, en, dirn in spec})
    rules = parse_probe("firewall", render_probe("firewall", host)).rules
    for n, dn, ports, en, dirn in spec:
        r = rules[n]
        assert r.display_name == dn and r.local_port == tuple(ports) and r.enabled is en and r.direction == dirn
        assert r.group == (dn or None)


@given(st.lists(st.integers(1000000, 9999999), unique=True, max_size=6),
       st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 1, 1), timezones=st.just(UTC)))
def test_updates_round_trip(kbs, boot) -> None:
    host = WindowsHost("h", last_boot_up_time=boot, hotfixes=[HotFix(f"KB{k}") for k in kbs])
    u = parse_probe("updates", render_probe("updates", host))
    assert u.kb_ids == {f"KB{k}" for k in kbs} and u.last_boot_up_time == boot
