"""What an .msu says about itself: the properties file inside it.

An .msu (Microsoft Update Standalone Package) is a CAB archive holding the update's own .cab (or .wim), an .xml,
``WSUSSCAN.cab`` and a properties file ``<package>-pkgProperties.txt`` (Microsoft's listing of an expanded .msu:
https://learn.microsoft.com/windows-server/get-started/manage-nano-server, "Installing servicing packages"; the
properties file holds ``Key="Value"`` lines such as ``Applies to``, ``Build Date``, ``Installation Type``,
``KB Article Number`` and ``Support Link``: https://blogs.technet.microsoft.com/hot/2008/08/25/how-to-know-whether-a-fix-can-be-applied-to-vista-or-server-2008/).
The file is read with ``cabarchive``, which holds the whole archive in memory and reads stored and MSZIP
folders only; a larger package, or one compressed otherwise, is not read and the caller says so. **[U]** how the
outer CAB of a current Windows Server 2025 package is compressed, and whether its properties file is UTF-16
(what tools reading it expect) or UTF-8: both are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PROPERTIES_SUFFIX = "-pkgproperties.txt"
MAX_READ_BYTES = 256 * 2**20  # cabarchive reads the whole archive into memory
_LINE = re.compile(r'^\s*([^=]+?)\s*=\s*"?(.*?)"?\s*$')


@dataclass(frozen=True)
class MsuProperties:
    """The properties file of one package, or why it could not be read (``properties`` is then empty)."""

    member: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    unread: str | None = None

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.properties.items() if k.lower() == key.lower() and v), None)


def parse_properties(data: bytes) -> dict[str, str]:
    """``Key="Value"`` lines, in UTF-16 (with its byte order mark) or UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    else:
        text = data.decode("utf-8-sig", errors="replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def read_msu_properties(package: Path) -> MsuProperties:
    """The package's properties file; never raises for a package it cannot read (``unread`` says why)."""
    from cabarchive import CabArchive
    from cabarchive.errors import CorruptionError, NotSupportedError

    size = package.stat().st_size
    if size > MAX_READ_BYTES:
        return MsuProperties(unread=f"{size / 2**20:.0f} MiB: larger than the {MAX_READ_BYTES // 2**20} MiB "
                                    "patchgate reads into memory")
    data = package.read_bytes()
    if not data.startswith(b"MSCF"):
        return MsuProperties(unread="not a CAB archive (an .msu from the Microsoft Update Catalog is one)")
    try:
        archive = CabArchive(data)
    except NotSupportedError as exc:
        return MsuProperties(unread=f"not a CAB archive patchgate can read ({exc})")
    except (CorruptionError, ValueError) as exc:
        return MsuProperties(unread=f"a damaged CAB archive ({exc})")
    members = sorted(name for name in archive if name.lower().endswith(PROPERTIES_SUFFIX))
    if not members:
        return MsuProperties(unread="the archive holds no *-pkgProperties.txt")
    return MsuProperties(member=members[0], properties=parse_properties(archive[members[0]].buf or b""))
