"""The lab's ``staging.source`` as the object the install step pulls packages from (or None: push)."""

from __future__ import annotations

import ntpath
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from patchgate.config.lab import Lab
from patchgate.config.staging import ShareSource
from patchgate.errors import LabError
from patchgate.remoting.content import ContentServer, Offer
from patchgate.secrets.base import Credentials, SecretsProvider, share_credentials


@dataclass
class ShareOffers:
    """Packages the lab's distribution point already holds, by file name; the VM reads them itself, with the
    account of ``staging.share.credentials`` when the lab names one (else its own)."""

    share: ShareSource
    credentials: Credentials | None = None

    def offer(self, path: Path, sha256: str, *, vm: str | None = None) -> Offer:
        base = self.share.path
        if base.lower().startswith(("http://", "https://")):
            url = base.rstrip("/") + "/" + urllib.parse.quote(path.name)
        else:
            url = ntpath.join(base, path.name)
        return Offer(url=url, sha256=sha256.lower(), size=path.stat().st_size, fingerprint="",
                     credentials=self.credentials)


def package_source(lab: Lab, run_id: str, secrets: SecretsProvider | None = None) -> ContentServer | ShareOffers | None:
    """A started content server (``harness``; the caller stops it), the share, or None (``push``). LabError
    when the source cannot serve (a share account the lab's secrets do not hold included): every VM of the
    run is then broken (inconclusive), none is touched."""
    staging = lab.staging
    if staging.source == "push":
        return None
    if staging.source == "share":
        assert staging.share is not None
        reference = staging.share.credentials
        if not reference:
            return ShareOffers(staging.share)
        if secrets is None:
            raise LabError(f"staging.share.credentials '{reference}' names an account, and this run has no "
                           "secrets provider to read it from")
        return ShareOffers(staging.share, share_credentials(secrets, reference))
    server = ContentServer(staging.address, staging.port, run_id=run_id)
    try:
        server.start()
    except OSError as exc:
        raise LabError(f"the content server cannot listen on {staging.address}:{staging.port} (staging.address, "
                       f"staging.port in the lab file): {exc.strerror or exc}") from None
    return server
