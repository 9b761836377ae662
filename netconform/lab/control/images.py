"""Image "pulls" of the lab's kubelet: the host filesystem stands in for every image, except that an image
whose registry host lies under the reserved top-level domain `.invalid` (RFC 2606) cannot be pulled.

That gives tests a reproducible unpullable image (`registry.invalid/python:3.12`) without any network:
the kubelet reports it exactly as containerd does when the registry name does not resolve.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
UNPULLABLE_TLD = "invalid"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: registry host, repository path, tag or digest."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """The `tag` or `sha256:...` part as a registry's manifest URL names it."""
        return self.digest or self.tag or "latest"


def parse(image: str) -> ImageRef:
    """Split an image name the way containerd normalises it (`python` = docker.io/library/python:latest)."""
    name, _, digest_text = image.partition("@")
    digest = digest_text or None
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
        if "/" not in path:
            path = f"library/{path}"
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)


def registry_host(ref: ImageRef) -> str:
    """The registry's host name without its port."""
    host, _, _ = ref.registry.partition(":")
    return host


def pull_error(image: str) -> str | None:
    """containerd's error for an image that cannot be pulled, or None when the lab can "pull" it."""
    ref = parse(image)
    host = registry_host(ref).lower().rstrip(".")
    if host != UNPULLABLE_TLD and not host.endswith("." + UNPULLABLE_TLD):
        return None
    url = f"https://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
    return (
        f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
        f'failed to do request: Head "{url}": dial tcp: lookup {host}: no such host'
    )


def pull_failed_message(image: str, error: str) -> str:
    """The kubelet's `Failed` event for a pull error."""
    return f'Failed to pull image "{image}": {error}'


def backoff_message(image: str) -> str:
    return f'Back-off pulling image "{image}"'
