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


@dataclass
class ShareOffers:
    """Packages the lab's distribution point already holds, by file name; the VM reads them itself."""

    share: ShareSource

    def offer(self, path: Path, sha256: str, *, vm: str | None = None) -> Offer:
        base = self.share.path
        if base.lower().startswith(("http://", "https://")):
            url = base.rstrip("/") + "/" + urllib.parse.quote(path.name)
        else:
            url = ntpath.join(base, path.name)
        return Offer(url=url, sha256=sha256.lower(), size=path.stat().st_size, fingerprint="")


def package_source(lab: Lab, run_id: str) -> ContentServer | ShareOffers | None:
    """A started content server (``harness``; the caller stops it), the share, or None (``push``). LabError
    when the source cannot serve: every VM of the run is then broken (inconclusive), none is touched."""
    staging = lab.staging
    if staging.source == "push":
        return None
    if staging.source == "share":
        assert staging.share is not None
        if staging.share.credentials:
            raise LabError("reading the share with an account of its own is not available yet: leave "
                           "staging.share.credentials out of the lab file (the VM's own account reads the share)")
        return ShareOffers(staging.share)
    server = ContentServer(staging.address, staging.port, run_id=run_id)
    try:
        server.start()
    except OSError as exc:
        raise LabError(f"the content server cannot listen on {staging.address}:{staging.port} (staging.address, "
                       f"staging.port in the lab file): {exc.strerror or exc}") from None
    return server
