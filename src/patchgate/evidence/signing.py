"""Signed verdicts: gate.json and the evidence manifest signed by a Vault transit ed25519 key.

Why: a verdict decides whether an update ships. A signature made by a key that never leaves Vault lets a
release pipeline (or an auditor, offline, with only the exported public key) check that gate.json is
the one the gate wrote, byte for byte.

For each signed file ``F`` the gate writes ``F.sig``, a small JSON document::

    {"format": "patchgate-signature/1", "file": "gate.json", "sha256": "...", "algorithm": "ed25519",
     "mount": "transit", "key": "patchgate-verdicts", "key_version": 1, "signature": "vault:v1:..."}

and beside the run the public key of that key version, as PEM (``<key>.v<version>.pub.pem``).
Check online with :func:`verify_online` (transit verify) or offline with :func:`verify_offline`
(``cryptography``'s Ed25519; no Vault needed).

Transit signs the base64 of the whole file, so this suits small documents (gate.json, manifests), not
evidence archives: sign the manifest that lists their hashes instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from patchgate.atomic import atomic_write
from patchgate.config.lab import Lab
from patchgate.errors import SecretsError
from patchgate.secrets.vault_session import VaultSession, translate

log = logging.getLogger(__name__)

FORMAT = "patchgate-signature/1"
ALGORITHM = "ed25519"
SIG_SUFFIX = ".sig"


class SigningError(SecretsError):
    """The verdict could not be signed (transit key missing, wrong type, not permitted, Vault down)."""


@dataclass(frozen=True)
class Signature:
    file: str
    sha256: str
    key: str
    key_version: int
    signature: str
    mount: str = "transit"
    algorithm: str = ALGORITHM
    format: str = FORMAT

    def raw(self) -> bytes:
        """The 64 signature bytes inside Vault's ``vault:v<N>:<base64>`` envelope."""
        parts = self.signature.split(":")
        if len(parts) != 3 or parts[0] != "vault" or not parts[1].startswith("v"):
            raise ValueError("signature is not in Vault's 'vault:v<N>:<base64>' form: "
                             f"{self.signature[:16]}...")
        return base64.b64decode(parts[2], validate=True)

    def dump(self, path: Path) -> None:
        atomic_write(path, (json.dumps(asdict(self), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Signature":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**{k: data[k] for k in ("file", "sha256", "key", "key_version", "signature", "mount",
                                                "algorithm", "format")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a patchgate signature file: {exc}") from None


def _client(session_or_client: Any) -> Any:
    return getattr(session_or_client, "client", session_or_client)


def _address(client: Any) -> str:
    return str(getattr(getattr(client, "adapter", None), "base_uri", "Vault"))



def signature_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(path)}{SIG_SUFFIX}")


# ---------------------------------------------------------------- signing (online)


def _read_key(session_or_client: Any, key: str, mount: str) -> dict[str, Any]:
    """The transit key's description (type, versions, public keys); Vault errors named by path."""
    client = _client(session_or_client)
    try:
        return client.secrets.transit.read_key(key, mount_point=mount)["data"]
    except Exception as exc:  # noqa: BLE001 - translated
        raise translate(exc, address=_address(client), path=f"{mount}/keys/{key}", action="read signing key",
                        error=SigningError) from None


def check_key(session_or_client: Any, key: str, *, mount: str = "transit") -> int:
    """Fail early unless ``key`` is an ed25519 transit key; returns its latest version."""
    data = _read_key(session_or_client, key, mount)
    if data.get("type") != ALGORITHM:
        raise SigningError(f"transit key '{mount}/keys/{key}' is of type {data.get('type')!r}; verdict "
                           f"signing needs an {ALGORITHM} key "
                           f"(bao write -f {mount}/keys/{key} type={ALGORITHM})")
    return int(data.get("latest_version") or 1)


def sign_bytes(session_or_client: Any, data: bytes, *, key: str, mount: str = "transit",
               name: str = "-") -> Signature:
    client = _client(session_or_client)
    try:
        reply = client.secrets.transit.sign_data(key, hash_input=base64.b64encode(data).decode("ascii"),
                                                 mount_point=mount)
    except Exception as exc:  # noqa: BLE001 - translated
        raise translate(exc, address=_address(client), path=f"{mount}/sign/{key}", action=f"sign {name} with",
                        error=SigningError) from None
    signature = reply["data"]["signature"]
    version = int(reply["data"].get("key_version") or signature.split(":")[1].lstrip("v"))
    return Signature(file=name, sha256=hashlib.sha256(data).hexdigest(), key=key, key_version=version,
                     signature=signature, mount=mount)


def sign_file(session_or_client: Any, path: str | os.PathLike[str], *, key: str,
              mount: str = "transit") -> Path:
    """Sign a file's exact bytes; writes and returns ``<file>.sig``."""
    target = Path(path)
    signature = sign_bytes(session_or_client, target.read_bytes(), key=key, mount=mount, name=target.name)
    out = signature_path(target)
    signature.dump(out)
    log.info("signed %s with transit key %s/%s v%s", target, mount, key, signature.key_version)
    return out


def verify_online(session_or_client: Any, path: str | os.PathLike[str],
                  sig_path: str | os.PathLike[str] | None = None, *, key: str | None = None) -> bool:
    """Ask Vault's transit engine whether the file matches its signature (``key`` overrides the file's)."""
    client = _client(session_or_client)
    signature = Signature.load(sig_path or signature_path(path))
    name = key or signature.key
    data = Path(path).read_bytes()
    try:
        reply = client.secrets.transit.verify_signed_data(
            name, hash_input=base64.b64encode(data).decode("ascii"), signature=signature.signature,
            mount_point=signature.mount)
    except Exception as exc:  # noqa: BLE001 - translated
        raise translate(exc, address=_address(client), path=f"{signature.mount}/verify/{name}",
                        action="verify a signature with", error=SigningError) from None
    return bool(reply["data"].get("valid"))


def export_public_key(session_or_client: Any, key: str, dest_dir: str | os.PathLike[str], *,
                      mount: str = "transit", version: int | None = None) -> Path:
    """Write the PEM public key of ``key`` (latest or given version) to ``dest_dir``; returns the path."""
    data = _read_key(session_or_client, key, mount)
    version = version or int(data.get("latest_version") or 1)
    entry = (data.get("keys") or {}).get(str(version))
    if not isinstance(entry, dict) or not entry.get("public_key"):
        raise SigningError(f"transit key '{mount}/keys/{key}' has no public key for version {version}")
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(entry["public_key"]))
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = Path(dest_dir) / f"{key}.v{version}.pub.pem"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, pem)
    return out


# ---------------------------------------------------------------- verification (offline)


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """A PEM public key, or the raw 32-byte key base64-encoded as transit shows it."""
    blob = Path(path).read_bytes()
    if b"-----BEGIN" in blob:
        key = serialization.load_pem_public_key(blob)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(blob.strip(), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{path} is neither a PEM nor a base64 Ed25519 public key: {exc}") from None


def verify_offline(path: str | os.PathLike[str], sig_path: str | os.PathLike[str] | None,
                   pubkey_path: str | os.PathLike[str]) -> bool:
    """True when ``path``'s bytes carry a valid signature by the key in ``pubkey_path``; no Vault needed.

    A malformed signature or key file raises ValueError (that is a usage problem, not a forgery).
    """
    signature = Signature.load(sig_path or signature_path(path))
    if signature.algorithm != ALGORITHM:
        raise ValueError(f"unsupported signature algorithm {signature.algorithm!r}")
    data = Path(path).read_bytes()
    key = load_public_key(pubkey_path)
    try:
        key.verify(signature.raw(), data)
    except InvalidSignature:
        return False
    return True


# ---------------------------------------------------------------- the gate's entry point


def signing_enabled(lab: Lab) -> bool:
    return lab.signs_verdicts


class VerdictSigner:
    """Signs a run's gate.json and manifest and puts the public key beside them."""

    def __init__(self, session: VaultSession, key: str, *, mount: str = "transit",
                 owns_session: bool = False) -> None:
        self.session = session
        self.key = key
        self.mount = mount
        self._owns_session = owns_session

    @classmethod
    def from_lab(cls, lab: Lab, *, session: VaultSession | None = None) -> "VerdictSigner | None":
        """None when the lab does not ask for signed verdicts."""
        if not signing_enabled(lab):
            return None
        settings = lab.secrets.settings
        assert settings.signing_key  # for type checkers; signing_enabled checked it
        owns = session is None
        signer = cls(session or VaultSession(settings), settings.signing_key, mount=settings.transit_mount,
                     owns_session=owns)
        check_key(signer.session, signer.key, mount=signer.mount)
        return signer

    def sign_run(self, files: list[Path], out_dir: Path) -> list[Path]:
        """Sign each file and export the public key of the version used; returns the files written."""
        written: list[Path] = []
        versions: set[int] = set()
        for path in files:
            sig = sign_file(self.session, path, key=self.key, mount=self.mount)
            versions.add(Signature.load(sig).key_version)
            written.append(sig)
        for version in sorted(versions):
            written.append(export_public_key(self.session, self.key, out_dir, mount=self.mount,
                                             version=version))
        return written

    def close(self) -> None:
        if self._owns_session:
            self.session.close()


# ---------------------------------------------------------------- a run folder (evidence hooks and `patchgate verify`)

from patchgate.evidence.signing_status import SIGNED_FILES  # noqa: E402 - beside the run-folder code it serves

"""What a signed run signs: the verdict, and the manifest whose hashes cover every other output file."""


class SignatureMismatch(ValueError):
    """A signature that does not match its file (or is missing): the run folder must not be trusted.

    A ValueError so ``patchgate verify`` lists it as a problem with this message.
    """


def sign_run(out_dir: str | os.PathLike[str], lab: Lab, *, session: VaultSession | None = None) -> list[Path]:
    """Sign gate.json and the evidence manifest of a finished run when the lab asks for it.

    Returns the files written (``*.sig`` and the exported public key), or [] when signing is off.
    Raises SigningError when the lab asks for signatures and they cannot be made: an unsigned verdict
    that should have been signed must be noticed, not skipped quietly.
    """
    if not signing_enabled(lab):
        return []
    folder = Path(out_dir)
    missing = [name for name in SIGNED_FILES if not (folder / name).is_file()]
    if missing:
        raise SigningError(f"cannot sign the run in {folder}: {', '.join(missing)} not written")
    signer = VerdictSigner.from_lab(lab, session=session)
    assert signer is not None  # signing_enabled checked it
    try:
        written = signer.sign_run([folder / name for name in SIGNED_FILES], folder)
    finally:
        signer.close()
    log.info("signed %s in %s with transit key %s/%s", ", ".join(SIGNED_FILES), folder, signer.mount,
             signer.key)
    return written


def _lab_of_run(folder: Path) -> Lab:
    """The lab file the run itself used (recorded in run-manifest.json), for online verification."""
    from patchgate.config import load_lab

    manifest = folder / "run-manifest.json"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["lab"]["file"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    if not recorded or not Path(recorded).is_file():
        raise ValueError(f"online verification needs the run's lab file (for the Vault address and login), "
                         f"but {manifest} names {recorded or 'none'} and it is not there: pass --lab LAB, or "
                         "--public-key FILE to verify offline")
    return load_lab(Path(recorded))


def verify_run(out_dir: str | os.PathLike[str], public_key: str | os.PathLike[str] | None = None, *,
               lab: Lab | str | os.PathLike[str] | None = None, session: VaultSession | None = None,
               names: tuple[str, ...] = SIGNED_FILES) -> bool:
    """Check the signatures of a run folder: offline with ``public_key``, else online with Vault's transit.

    Online uses ``lab`` (a Lab, a lab file or a name under labs/), by default the lab file recorded in
    run-manifest.json. True when gate.json and the evidence manifest (or ``names``: the promotions manifest) all
    carry a valid signature;
    a missing or non-matching signature raises :class:`SignatureMismatch` naming the file (so the
    report says which one); an unusable key or signature file raises ValueError.
    """
    folder = Path(out_dir)
    problems: list[str] = []
    present = [name for name in names if signature_path(folder / name).is_file()]
    for name in names:
        if name not in present:
            problems.append(f"{name}: no signature ({name}{SIG_SUFFIX} missing)")
    if public_key is not None:
        for name in present:
            if not verify_offline(folder / name, None, public_key):
                problems.append(f"{name}: signature does not match (offline, key {Path(public_key).name})")
    elif present:
        if session is None:
            if isinstance(lab, Lab):
                model = lab
            elif lab is not None:
                from patchgate.config import load_lab, resolve_lab

                model = load_lab(resolve_lab(str(lab)))
            else:
                model = _lab_of_run(folder)
            if model.secrets.kind != "vault":
                raise ValueError(f"lab '{model.name}' has no Vault secrets section: online verification "
                                 "needs Vault; pass --public-key FILE to verify offline")
            own = VaultSession(model.secrets.settings, renew=False)
        else:
            own = None
        try:
            for name in present:
                if not verify_online(own or session, folder / name):
                    problems.append(f"{name}: signature does not match (transit verify, key "
                                    f"{Signature.load(signature_path(folder / name)).key})")
        finally:
            if own is not None:
                own.close()
    if problems:
        raise SignatureMismatch("; ".join(problems))
    return True
