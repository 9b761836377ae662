"""Offline MAC vendor lookup (FM-16): name who owns each MAC that answers ARP for one IP.

When two MACs answer for one address the report shows both with their vendor, so the conflicting
device can be found ("00:50:56 is VMware": a VM). A small curated table of prefixes common in data
centres and virtualisation (checked against the IEEE registry), then the system's IEEE list when
Debian's `ieee-data` package is installed. No network access.

    >>> vendor("00:50:56:aa:bb:cc")
    'VMware'
    >>> vendor("02:42:ac:11:00:02")
    'Docker'
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

# prefix (upper-case hex, no separators; 4 or 6 digits) -> vendor
CURATED: dict[str, str] = {
    # virtualisation and containers
    "005056": "VMware", "000C29": "VMware", "000569": "VMware", "001C14": "VMware",
    "525400": "QEMU/KVM", "00163E": "Xen", "080027": "VirtualBox", "00155D": "Microsoft Hyper-V",
    "001C42": "Parallels", "0242": "Docker",
    # network gear and load balancers
    "00000C": "Cisco", "001AA1": "Cisco", "00005E": "IANA (VRRP/virtual router MAC)",
    "001C73": "Arista", "444CA8": "Arista", "000585": "Juniper", "288A1C": "Juniper",
    "0001D7": "F5 Networks", "0023E9": "F5 Networks", "001B17": "Palo Alto Networks",
    # servers and NICs
    "001422": "Dell", "B8AC6F": "Dell", "F8BC12": "Dell", "180373": "Dell", "001EC9": "Dell",
    "0026B9": "Dell", "F48E38": "Dell",
    "3CD92B": "HP", "0025B3": "HP", "001B78": "HP",
    "001B21": "Intel", "A0369F": "Intel", "3CFDFE": "Intel", "001517": "Intel",
    "001018": "Broadcom",
    "0002C9": "Mellanox", "248A07": "Mellanox", "7CFE90": "Mellanox", "EC0D9A": "Mellanox",
    "98039B": "Mellanox", "B8599F": "Mellanox",
    "002590": "Supermicro", "0CC47A": "Supermicro", "AC1F6B": "Supermicro",
    "00E04C": "Realtek", "B827EB": "Raspberry Pi", "DCA632": "Raspberry Pi",
    "000D3A": "Microsoft", "0017FA": "Microsoft", "0025AE": "Microsoft",
}  # fmt: skip

SYSTEM_OUI_FILES = (Path("/usr/share/ieee-data/oui.txt"), Path("/usr/share/misc/oui.txt"))
_HEX = re.compile(r"[0-9A-F]{12}")
_IEEE_LINE = re.compile(r"^([0-9A-F]{2})-([0-9A-F]{2})-([0-9A-F]{2})\s+\(hex\)\s+(.+?)\s*$")


def normalize(mac: str) -> str:
    """12 upper-case hex digits from "aa:bb:..", "AA-BB-..", "aabb.ccdd.eeff" or "aabbccddeeff"."""
    digits = re.sub(r"[:\-.\s]", "", mac).upper()
    if not _HEX.fullmatch(digits):
        raise ValueError(f"not a MAC address: {mac!r}")
    return digits


def vendor(mac: str) -> str:
    """The vendor owning mac's prefix; "locally administered", "multicast" or "unknown" otherwise.

    Raises ValueError for text that is not a MAC address.
    """
    digits = normalize(mac)
    for length in (6, 4):
        if digits[:length] in CURATED:
            return CURATED[digits[:length]]
    first = int(digits[:2], 16)
    if first & 0x01:
        return "multicast"
    if first & 0x02:
        return "locally administered"
    return _system_table().get(digits[:6], "unknown")


@functools.lru_cache(maxsize=1)
def _system_table() -> dict[str, str]:
    """The IEEE registry from Debian's ieee-data, when installed (read once)."""
    for path in SYSTEM_OUI_FILES:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        table = {}
        for line in text.splitlines():
            match = _IEEE_LINE.match(line)
            if match:
                table["".join(match.groups()[:3])] = match.group(4)
        return table
    return {}
