"""The twin's WSMan endpoint at the protocol level: faults, auth, TLS, against pypsrp and raw HTTP."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import uuid

import pytest
import requests
from pydantic import SecretStr
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from remoting_lab import PASSWORD, USERNAME, LabHost, http_settings

from patchgate.errors import RemotingError
from patchgate.hypervisors.base import GuestEndpoint
from patchgate.remoting.base import Script
from patchgate.remoting.psrp_remoting import PsrpRemoting
from patchgate.secrets.base import Credentials
from patchgate_twin.wsman import TwinEndpoints


def _wsman(port: int, password: str = PASSWORD) -> WSMan:
    return WSMan("127.0.0.1", port=port, username=USERNAME, password=password, ssl=False, auth="basic",
                 encryption="never", read_timeout=10, operation_timeout=5, no_proxy=True)


def test_unknown_shell_is_a_wsman_fault(endpoints):
    port = endpoints.start("vm-f")
    pool = RunspacePool(_wsman(port))
    pool.open()
    endpoints.endpoint("vm-f").drop_shells()
    with pytest.raises(WSManFaultError) as info:
        PowerShell(pool).add_script("Get-Date").invoke()
    assert info.value.code == 0x8033805B
    assert "shell was not found" in info.value.reason


def test_bad_request_is_a_soap_fault_not_a_crash(endpoints):
    port = endpoints.start("vm-f")
    response = requests.post(f"http://127.0.0.1:{port}/wsman", data=b"<not-xml", auth=(USERNAME, PASSWORD),
                             headers={"Content-Type": "application/soap+xml;charset=UTF-8"}, timeout=10)
    assert response.status_code == 500
    assert b"s:Fault" in response.content and b"WSManFault" in response.content
    # and the listener still serves a real client afterwards
    with RunspacePool(_wsman(port)) as pool:
        assert PowerShell(pool).add_script("Get-Date").invoke()


def test_every_response_relates_to_its_request(endpoints):
    port = endpoints.start("vm-f")
    message_id = f"uuid:{str(uuid.uuid4()).upper()}"
    envelope = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
        '<a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</a:Action>'
        f'<a:MessageID>{message_id}</a:MessageID>'
        '<w:SelectorSet><w:Selector Name="ShellId">00000000-0000-0000-0000-000000000000</w:Selector>'
        '</w:SelectorSet></s:Header><s:Body/></s:Envelope>')
    response = requests.post(f"http://127.0.0.1:{port}/wsman", data=envelope.encode(), auth=(USERNAME, PASSWORD),
                             timeout=10)
    assert response.status_code == 500
    assert f"<wsa:RelatesTo>{message_id}</wsa:RelatesTo>".encode() in response.content


def test_basic_auth_is_checked(endpoints):
    port = endpoints.start("vm-f")
    with pytest.raises(AuthenticationError):
        RunspacePool(_wsman(port, password="wrong")).open()
    response = requests.post(f"http://127.0.0.1:{port}/wsman", data=b"", timeout=10)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ws2025-tls.lab.example")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "listener.pem", tmp_path / "listener.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


def test_https_validates_the_listener_certificate_by_default(tmp_path):
    context, ca = _self_signed(tmp_path)
    eps = TwinEndpoints(LabHost(), lambda vm: (USERNAME, PASSWORD), ssl_context=context)
    try:
        port = eps.start("ws2025-tls")
        creds = Credentials(USERNAME, SecretStr(PASSWORD))
        endpoint = GuestEndpoint("127.0.0.1", port)
        strict = PsrpRemoting(http_settings(ssl=True, encryption="auto"))
        assert strict.cert_validation is True
        with pytest.raises(RemotingError) as info:
            strict.open("ws2025-tls", endpoint, creds)
        assert "ca_bundle" in str(info.value)

        pinned = PsrpRemoting(http_settings(ssl=True, encryption="auto", ca_bundle=ca))
        with pinned.open("ws2025-tls", endpoint, creds) as session:
            assert "ws2025-tls" in session.run(Script("p", "Get-Date")).text

        lax = PsrpRemoting(http_settings(ssl=True, encryption="auto", cert_validation=False))
        assert lax.cert_validation is False
        with lax.open("ws2025-tls", endpoint, creds) as session:
            assert session.cert_validation is False
            assert "ws2025-tls" in session.run(Script("p", "Get-Date")).text
    finally:
        eps.stop_all()


def test_http_basic_without_encryption_never_is_a_config_error(endpoints, credentials):
    from patchgate.errors import ConfigError
    port = endpoints.start("vm-f")
    with pytest.raises(ConfigError) as info:
        PsrpRemoting(http_settings(encryption="auto")).open("vm-f", GuestEndpoint("127.0.0.1", port), credentials)
    assert "encryption" in str(info.value)
