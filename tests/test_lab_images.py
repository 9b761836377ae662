"""The lab's image names: which ones "pull" (all, from the host filesystem) and the `.invalid` exception."""

from __future__ import annotations

import pytest

from netconform.lab.control.images import ImageRef, parse, pull_error


@pytest.mark.parametrize(
    "image, ref",
    [
        ("python", ImageRef("docker.io", "library/python", "latest", None)),
        ("python:3.12-slim", ImageRef("docker.io", "library/python", "3.12-slim", None)),
        ("bitnami/nginx:1", ImageRef("docker.io", "bitnami/nginx", "1", None)),
        ("registry.invalid/python:3.12", ImageRef("registry.invalid", "python", "3.12", None)),
        ("localhost:5000/a/b@sha256:ab", ImageRef("localhost:5000", "a/b", None, "sha256:ab")),
        ("quay.io/x/y:v1@sha256:cd", ImageRef("quay.io", "x/y", "v1", "sha256:cd")),
    ],
)
def test_parse_normalises_like_containerd(image: str, ref: ImageRef) -> None:
    assert parse(image) == ref


def test_only_registries_under_invalid_fail() -> None:
    for fine in ("python:3.12", "docker.io/library/python:3.12-slim", "invalid/x", "a.invalid.example.com/x"):
        assert pull_error(fine) is None, fine
    assert pull_error("registry.invalid/python:3.12") == (
        'failed to pull and unpack image "registry.invalid/python:3.12": failed to resolve reference '
        '"registry.invalid/python:3.12": failed to do request: Head '
        '"https://registry.invalid/v2/python/manifests/3.12": dial tcp: lookup registry.invalid: no such host'
    )
    port = pull_error("Mirror.INVALID:5000/team/probe@sha256:ab")
    assert (
        port is not None and "manifests/sha256:ab" in port and "lookup mirror.invalid: no such host" in port
    )
