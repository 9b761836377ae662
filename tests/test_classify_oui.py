"""oui.vendor(): the FM-16 vendor names for MACs answering ARP, offline."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netconform.checks.parsers.oui import CURATED, normalize, vendor


@pytest.mark.parametrize(
    ("mac", "expected"),
    [
        ("00:50:56:aa:bb:cc", "VMware"),
        ("00-0C-29-01-02-03", "VMware"),
        ("5254.0012.3456", "QEMU/KVM"),
        ("00:16:3e:00:00:01", "Xen"),
        ("08:00:27:00:00:01", "VirtualBox"),
        ("00:15:5d:00:00:01", "Microsoft Hyper-V"),
        ("02:42:ac:11:00:02", "Docker"),
        ("00:00:0c:07:ac:01", "Cisco"),
        ("00:00:5e:00:01:01", "IANA (VRRP/virtual router MAC)"),
        ("00:02:c9:00:00:01", "Mellanox"),
        ("02:00:00:00:00:01", "locally administered"),
        ("06:aa:bb:cc:dd:ee", "locally administered"),
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
    ],
)
def test_known_prefixes(mac: str, expected: str) -> None:
    assert vendor(mac) == expected


@pytest.mark.parametrize("bad", ["", "00:50:56", "zz:zz:zz:zz:zz:zz", "00:50:56:aa:bb:cc:dd", "x" * 12])
def test_not_a_mac_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        vendor(bad)


def test_curated_prefixes_are_well_formed() -> None:
    assert all(len(prefix) in (4, 6) and prefix == prefix.upper() for prefix in CURATED)
    assert all(int(prefix, 16) >= 0 for prefix in CURATED)


@given(st.binary(min_size=6, max_size=6), st.sampled_from([":", "-", ""]))
def test_any_mac_gets_a_name_in_any_spelling(raw: bytes, sep: str) -> None:
    mac = sep.join(f"{b:02x}" for b in raw)
    name = vendor(mac)
    assert name and name == vendor(mac.upper())
    assert normalize(mac) == raw.hex().upper()
