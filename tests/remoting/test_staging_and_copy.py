"""File copy round trips, on-VM sha256 verification and the install op, over the real pypsrp path."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from patchgate.config.candidate import Candidate
from patchgate.errors import InstallError, StagingError
from patchgate.remoting import staging
from patchgate_twin import filecopy
from patchgate_twin.shell import PipelineOutput


def _candidate(tmp_path: Path, files: dict[str, bytes], *, sha_override: dict[str, str] | None = None) -> Candidate:
    packages = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        sha = (sha_override or {}).get(name) or hashlib.sha256(data).hexdigest()
        packages.append({"file": name, "sha256": sha})
    source = tmp_path / "KB5070881.yaml"
    source.write_text("kb: KB5070881\n")
    return Candidate(kb="KB5070881", title="2025-10 hotpatch", classification="hotpatch",
                     target_build="26100.6905", release_date=dt.date(2025, 10, 14), packages=packages,
                     references={"kb_article": "https://support.microsoft.com/help/5070881"}, source=source)


@pytest.mark.parametrize("size", [0, 1, 1000, 1_500_000])
def test_copy_round_trip_bytes_match(open_session, lab_host, tmp_path, size):
    session = open_session()
    data = os.urandom(size)
    local = tmp_path / "payload.bin"
    local.write_bytes(data)
    remote = r"C:\ProgramData\patchgate\staging\Payload.BIN"
    assert session.copy_file(local, remote) == remote
    assert lab_host.read("ws2025-a", filecopy.key(remote)) == data


def test_copy_uses_the_long_lived_pool(open_session, endpoints, tmp_path):
    session = open_session()
    local = tmp_path / "a.bin"
    local.write_bytes(os.urandom(300_000))
    session.copy_file(local, r"C:\x\a.bin")
    session.copy_file(local, r"C:\x\b.bin")
    counters = endpoints.counters("ws2025-a")
    assert counters["Create"] == 1 and counters["pipelines"] == 2


def test_twin_copy_refuses_a_transport_hash_mismatch(tmp_path):
    import base64
    from patchgate_twin.guestfiles import BlobStore, GuestFiles
    from patchgate_twin.shell import Statement
    files = GuestFiles({}, BlobStore(tmp_path / "disk"))
    chunk = base64.b64encode(b"hello").decode()
    wrong = base64.b64encode(hashlib.sha1(b"other").hexdigest().encode()).decode()
    script = "\n".join(filecopy._COPY_MARKERS)
    out = filecopy.run_copy(files, Statement(script=script, arguments=[r"C:\a.txt", False]), [chunk, wrong])
    assert out.failed and "hash mismatch" in out.errors[0]
    assert files.index == {}
    assert [p.name for p in (tmp_path / "disk").iterdir()] == ["incoming"]  # nothing left half-written
    assert not any((tmp_path / "disk" / "incoming").iterdir())


def test_stage_and_install_happy_path(open_session, lab_host, tmp_path):
    session = open_session()
    data = os.urandom(200_000)
    candidate = _candidate(tmp_path, {"windows11.0-kb5070881-x64.msu": data})
    result = staging.stage_and_install(session, candidate, timeout=60)
    expected_path = r"C:\ProgramData\patchgate\staging\KB5070881\windows11.0-kb5070881-x64.msu"
    assert result.staged_paths == [expected_path]
    assert result.package_path == expected_path
    assert result.exit_code == 3010 and result.restart_needed is True
    assert lab_host.read("ws2025-a", filecopy.key(expected_path)) == data
    install_call = lab_host.calls[-1][1][0]
    assert install_call.script.startswith("# patchgate-op: install")
    assert install_call.parameters == {"PackagePath": expected_path,
                                       "Sha256": {"windows11.0-kb5070881-x64.msu": hashlib.sha256(data).hexdigest()}}
    # prepare, copy, install: the install op itself hashes what it installs
    assert [filecopy.op_name(c[1][0].script) or "copy" for c in lab_host.calls] == ["stage-prepare", "copy", "install"]


def test_several_packages_install_by_the_target_file(open_session, lab_host, tmp_path):
    """Microsoft: pass DISM the target cumulative update; it finds the checkpoints in the same folder."""
    session = open_session()
    lab_host.install_doc = {"RestartNeeded": False, "ExitCode": 0, "Log": []}
    candidate = _candidate(tmp_path, {"windows11.0-kb5043080-x64.msu": b"checkpoint",
                                      "windows11.0-kb5070881-x64.msu": b"target"})
    result = staging.stage_and_install(session, candidate, timeout=60)
    assert len(result.staged_paths) == 2
    folder = r"C:\ProgramData\patchgate\staging\KB5070881"
    assert result.package_path == folder + r"\windows11.0-kb5070881-x64.msu"
    assert lab_host.calls[-1][1][0].parameters["PackagePath"] == result.package_path
    assert {p.rsplit("\\", 1)[0] for p in result.staged_paths} == {folder}  # the checkpoint sits beside it
    assert result.restart_needed is False and result.exit_code == 0


def test_several_packages_must_name_one_target(tmp_path):
    with pytest.raises(ValueError, match="exactly one must name KB5070881"):
        _candidate(tmp_path, {"a-checkpoint.msu": b"first", "b-other.msu": b"second"})


def test_sha256_mismatch_on_the_vm_is_refused(open_session, lab_host, tmp_path):
    session = open_session()
    lab_host.corrupt_writes = True  # e.g. an AV filter or a broken disk changed the staged bytes
    candidate = _candidate(tmp_path, {"kb.msu": b"the approved bytes"})
    with pytest.raises(StagingError) as info:
        staging.stage_and_install(session, candidate, timeout=60)
    message = str(info.value)
    assert "kb.msu" in message and "ws2025-a" in message
    assert hashlib.sha256(b"the approved bytes").hexdigest() in message
    assert "actual" in message and "refusing to install" in message
    assert lab_host.installed == []  # the install op hashed the staged file first and installed nothing


def test_a_staged_file_that_is_gone_is_refused(open_session, lab_host, tmp_path):
    session = open_session()
    candidate = _candidate(tmp_path, {"kb.msu": b"the approved bytes"})
    root = staging.stage(session, candidate)[0]
    lab_host.vm_files("ws2025-a").index.pop(filecopy.key(root))  # removed between the copy and the install
    with pytest.raises(StagingError, match="not there"):
        staging.install(session, root, kb="KB5070881", expected={"kb.msu": candidate.packages[0].sha256})
    assert lab_host.installed == []


def test_local_file_not_matching_the_candidate_is_refused_before_copying(open_session, lab_host, tmp_path):
    session = open_session()
    candidate = _candidate(tmp_path, {"kb.msu": b"tampered"}, sha_override={"kb.msu": "ab" * 32})
    with pytest.raises(StagingError) as info:
        staging.stage_and_install(session, candidate, timeout=60)
    assert "ab" * 32 in str(info.value)
    assert not any(filecopy.is_copy_script(c[1][0].script) for c in lab_host.calls)


def test_failed_install_is_an_install_error(open_session, lab_host, tmp_path):
    session = open_session()
    lab_host.install_doc = {"RestartNeeded": False, "ExitCode": -2146498530, "Log": ["not applicable"]}
    lab_host.install_errors = ["Add-WindowsPackage : The specified package is not applicable to this image."]
    candidate = _candidate(tmp_path, {"kb.msu": b"bytes"})
    with pytest.raises(InstallError) as info:
        staging.stage_and_install(session, candidate, timeout=60)
    assert "0x800F081E" in str(info.value) and "not applicable" in str(info.value)


def test_op_scripts_carry_their_marker_and_contract_keys():
    for op, contract in ((staging.OP_STAGE_PREPARE, staging.STAGE_PREPARE_CONTRACT),
                         (staging.OP_INSTALL, staging.INSTALL_CONTRACT), (staging.OP_FETCH, staging.FETCH_CONTRACT)):
        text = staging.load_op_script(op)
        assert filecopy.op_name(text) == op
        assert "ConvertTo-Json -Compress" in text
        for key in contract:
            assert f"{key} =" in text, f"{op}.ps1 never sets {key}"


def test_parse_document_rejects_a_broken_contract():
    from patchgate.remoting.base import ScriptResult
    bad = ScriptResult("stage-prepare", [json.dumps({"Path": "C:\\a", "Exists": "yes"})])
    with pytest.raises(StagingError) as info:
        staging.parse_document(bad, "stage-prepare", staging.STAGE_PREPARE_CONTRACT, "vm1", StagingError)
    assert "Exists" in str(info.value) and "vm1" in str(info.value)


def test_fetch_carries_a_size_past_2_gib_over_psrp(open_session, lab_host, tmp_path):
    """PSRP carries a Python int as a 32-bit I32: a package's size past 2 GiB must reach the op intact."""
    from patchgate.remoting.content import Offer

    data = b"stand-in package"
    candidate = _candidate(tmp_path, {"kb.msu": data})
    big = 2**31 + 7
    seen: list[dict] = []

    def fetch_op(vm, statements, _input):
        parameters = statements[0].parameters
        seen.append(parameters)
        lab_host.vm_files(vm).write_bytes(filecopy.key(parameters["Destination"]), data)
        return PipelineOutput(output=[json.dumps({
            "Path": parameters["Destination"], "Sha256": hashlib.sha256(data).hexdigest().upper(),
            "Bytes": len(data), "Skipped": False, "Method": "http", "Resumes": 0, "Log": []})])

    class BigSource:
        def offer(self, path, sha256, *, vm=None):
            return Offer(url="https://127.0.0.1:1/p/t/x/kb.msu", sha256=sha256, size=big, fingerprint="AB" * 32)

    lab_host.handler = fetch_op
    staged = staging.fetch(open_session(), candidate, BigSource(), timeout=60)
    assert staged == [r"C:\ProgramData\patchgate\staging\KB5070881\kb.msu"]
    assert int(seen[0]["Size"]) == big and seen[0]["Keep"] == ["kb.msu"]
