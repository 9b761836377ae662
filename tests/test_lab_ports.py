"""The real control plane's loopback ports: outside the ephemeral range, never a held or listening one,
disjoint between labs that allocate at the same moment (real sockets, real flock)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from netconform.lab.control.ports import PORTS_FILE, allocate, ephemeral_range, usable_range


def test_ports_come_from_outside_the_kernels_ephemeral_range(tmp_path: Path) -> None:
    low, high = ephemeral_range()
    ports = allocate(tmp_path / "lab-a", 12, root=tmp_path)
    assert len(set(ports)) == 12
    assert not any(low <= p <= high for p in ports), (ports, low, high)
    start, end = usable_range((low, high))
    assert all(start <= p <= end for p in ports)
    assert sorted(json.loads((tmp_path / "lab-a" / PORTS_FILE).read_text())) == sorted(ports)


def test_a_listening_port_and_another_labs_ports_are_passed_over(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        span = (busy, busy + 3) if busy < 65532 else (busy - 3, busy)
        other = allocate(tmp_path / "lab-a", 1, root=tmp_path, span=span)
        assert busy not in other
        mine = allocate(tmp_path / "lab-b", 2, root=tmp_path, span=span)
        assert busy not in mine and not set(mine) & set(other), (busy, other, mine)
        with pytest.raises(RuntimeError, match=r"only 0 of 1 loopback ports free"):
            allocate(tmp_path / "lab-c", 1, root=tmp_path, span=span)


def test_labs_allocating_at_once_get_disjoint_ports(tmp_path: Path) -> None:
    chosen: dict[int, list[int]] = {}

    def one(number: int) -> None:
        chosen[number] = allocate(tmp_path / f"lab-{number}", 10, root=tmp_path, span=(21000, 21199))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    every = [p for ports in chosen.values() for p in ports]
    assert len(chosen) == 6 and len(every) == 60 and len(set(every)) == 60


def test_a_lab_asking_again_keeps_what_it_holds(tmp_path: Path) -> None:
    first = allocate(tmp_path / "lab-a", 3, root=tmp_path)
    second = allocate(tmp_path / "lab-a", 3, root=tmp_path)
    assert not set(first) & set(second)
    assert sorted(json.loads((tmp_path / "lab-a" / PORTS_FILE).read_text())) == sorted(first + second)
