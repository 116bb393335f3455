"""TLS and login against the simulator: what is trusted, what is refused, and what the error says."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from patchgate.errors import HypervisorError
from patchgate.hypervisors.base import Hypervisor
from patchgate.hypervisors.vsphere import VsphereHypervisor
from patchgate.hypervisors.vsphere.simulator import Vcsim
from patchgate.secrets.base import Credentials

from .conftest import settings_for

WRONG_THUMB = "AA:" * 31 + "AA"


def other_ca(path: Path) -> Path:
    """A self-signed CA that did not sign the simulator's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the vcsim CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def connect(sim: Vcsim, creds: Credentials | None = None, **settings: object) -> VsphereHypervisor:
    hv = VsphereHypervisor(settings_for(sim, **settings), creds or sim.credentials, "vcsim-test")
    hv.connect()
    return hv


def test_provider_satisfies_protocol(vcsim: Vcsim) -> None:
    hv = VsphereHypervisor(settings_for(vcsim), vcsim.credentials, "vcsim-test")
    assert isinstance(hv, Hypervisor)
    assert hv.kind == "vsphere" and hv.cert_validation is True


def test_right_ca_bundle_connects_and_records_the_fingerprint(vcsim: Vcsim) -> None:
    hv = connect(vcsim)
    try:
        assert hv.server_fingerprint == vcsim.thumbprint
        assert hv.si.content.about.apiType == "VirtualCenter"
    finally:
        hv.close()
        hv.close()  # twice is fine


def test_right_pinned_thumbprint_connects_without_a_ca(vcsim: Vcsim) -> None:
    hv = connect(vcsim, ca_bundle=None, thumbprint=vcsim.thumbprint.lower())
    try:
        assert hv.si.content.about.apiType == "VirtualCenter"
    finally:
        hv.close()


def test_wrong_ca_bundle_is_refused_naming_the_ca_check(vcsim: Vcsim, tmp_path: Path) -> None:
    bundle = other_ca(tmp_path / "other-ca.pem")
    with pytest.raises(HypervisorError) as err:
        connect(vcsim, ca_bundle=bundle)
    message = str(err.value)
    assert "not trusted by CA bundle" in message and str(bundle) in message
    assert vcsim.url in message


def test_system_ca_store_does_not_trust_a_self_signed_simulator(vcsim: Vcsim) -> None:
    with pytest.raises(HypervisorError, match="not trusted by system CA store"):
        connect(vcsim, ca_bundle=None)


def test_wrong_thumbprint_is_refused_showing_both_fingerprints(vcsim: Vcsim) -> None:
    with pytest.raises(HypervisorError) as err:
        connect(vcsim, ca_bundle=None, thumbprint=WRONG_THUMB)
    message = str(err.value)
    assert "thumbprint mismatch" in message
    assert WRONG_THUMB in message and vcsim.thumbprint in message


def test_thumbprint_is_checked_even_when_the_ca_trusts_the_server(vcsim: Vcsim) -> None:
    with pytest.raises(HypervisorError, match="thumbprint mismatch"):
        connect(vcsim, thumbprint=WRONG_THUMB)


def test_validation_off_only_when_asked_and_it_says_so(vcsim: Vcsim,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="patchgate.hypervisors.vsphere"):
        hv = connect(vcsim, ca_bundle=None, cert_validation=False)
    try:
        assert hv.cert_validation is False
        assert hv.si.content.about.apiType == "VirtualCenter"
        assert "certificate validation is disabled" in caplog.text
    finally:
        hv.close()


def test_bad_credentials_name_the_url_and_never_the_password(vcsim: Vcsim) -> None:
    wrong = "wrong-password-" + vcsim.password[:6]
    with pytest.raises(HypervisorError) as err:
        connect(vcsim, Credentials(vcsim.username, SecretStr(wrong)))
    message = str(err.value)
    assert vcsim.url in message and "refused the login" in message and vcsim.username in message
    assert wrong not in message and vcsim.password not in message


def test_unreachable_endpoint_names_the_url(vcsim: Vcsim) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"https://127.0.0.1:{port}/sdk"
    with pytest.raises(HypervisorError, match=f"cannot reach {url}"):
        connect(vcsim, url=url)


def test_missing_ca_bundle_file_is_named(vcsim: Vcsim, tmp_path: Path) -> None:
    with pytest.raises(HypervisorError, match="does not exist"):
        connect(vcsim, ca_bundle=tmp_path / "nope.pem")
