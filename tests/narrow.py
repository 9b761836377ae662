"""`present(value, what)`: the kubernetes client's models make every field optional; a test that needs
one asserts it is there (with what was missing) and gets the narrowed value back."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def present(value: T | None, what: str) -> T:
    assert value is not None, f"{what} is missing"
    return value
