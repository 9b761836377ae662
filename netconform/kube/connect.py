"""Connects to a cluster the way kubectl does, failing with one clear line instead of a traceback.

Order: `--kubeconfig` (may list several files, like KUBECONFIG), then `KUBECONFIG`, then
`~/.kube/config`, then the in-cluster service account. Every request made through the returned
`Cluster` carries a timeout, and urllib3 does not retry, so an unreachable API fails fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from netconform.kube.counting import Counters, count_requests

DEFAULT_TIMEOUT = 10.0


class KubeError(Exception):
    """A problem with the cluster or its access, worded for a one-line message."""

    exit_code = 4


def api_error_line(exc: BaseException, doing: str) -> str:
    """One line describing an API failure (status, reason and the server's message)."""
    if isinstance(exc, ApiException):
        message = ""
        body = getattr(exc, "body", None)
        if body:
            try:
                message = json.loads(body).get("message", "")
            except (ValueError, AttributeError):
                message = str(body)[:200]
        status = exc.status
        if status == 401:
            return f"{doing}: 401 Unauthorized: the credentials of the kubeconfig are not accepted"
        return f"{doing}: HTTP {status} {exc.reason}{': ' + message if message else ''}".replace("\n", " ")
    text = str(exc).replace("\n", " ")
    if "Max retries exceeded" in text or "Connection refused" in text or "timed out" in text.lower():
        return f"{doing}: the API server cannot be reached ({_unreachable_reason(text)})"
    return f"{doing}: {type(exc).__name__}: {text[:200]}"


def _unreachable_reason(text: str) -> str:
    """urllib3's nested error text, said in a few words (refused, no answer in time, unknown host)."""
    read = re.search(r"Read timed out\. \(read timeout=([\d.]+)\)", text)
    if read:
        return f"it accepted the connection but sent no answer within {float(read.group(1)):g} s"
    connect = re.search(r"connect timeout=([\d.]+)", text)
    if connect:
        return f"no connection within {float(connect.group(1)):g} s"
    if "Connection refused" in text:
        return "connection refused"
    if (
        "Name or service not known" in text
        or "nodename nor servname" in text
        or "Temporary failure in name" in text
    ):
        return "its host name does not resolve"
    return text.split("Caused by", 1)[-1].strip(" ()")[:160]


@dataclass
class Cluster:
    """An authenticated, counted API client plus what we know about where it points."""

    api_client: Any
    server: str
    context: str | None
    timeout: float = DEFAULT_TIMEOUT
    counters: Counters = field(default_factory=Counters)
    _exec_client: Any = None
    _exec_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def core(self) -> Any:
        """CoreV1Api (typed Any: the generated models' Optional fields add noise, not safety)."""
        return client.CoreV1Api(self.api_client)

    @property
    def request_timeout(self) -> tuple[float, float]:
        """(connect, read) timeout for every request."""
        return (min(5.0, self.timeout), self.timeout)

    def exec_client(self) -> Any:
        """A DEDICATED ApiClient for websocket exec: `stream()` swaps the client's `call_api` while it
        opens the socket, which must never race with ordinary requests on the shared client."""
        with self._exec_lock:
            if self._exec_client is None:
                self._exec_client = client.ApiClient(self.api_client.configuration)
            return self._exec_client

    @property
    def exec_lock(self) -> threading.Lock:
        return self._exec_lock

    def close(self) -> None:
        for api in (self.api_client, self._exec_client):
            if api is not None:
                with contextlib.suppress(Exception):  # best effort; the process is ending anyway
                    api.close()


def call(cluster: Cluster, method: str, *args: Any, api: Any = None, **kwargs: Any) -> dict[str, Any]:
    """Call a generated client method and return the response as plain JSON.

    Responses are not deserialized into the client's models: those validate strictly, and one field a
    server leaves out would turn a usable answer into a traceback. Non-2xx still raises ApiException.
    """
    target = api if api is not None else cluster.core
    resp = getattr(target, method)(
        *args, _preload_content=False, _request_timeout=cluster.request_timeout, **kwargs
    )
    data = resp.data if hasattr(resp, "data") else resp.read()
    if not data:
        return {}
    parsed: dict[str, Any] = json.loads(data)
    return parsed


def _kubeconfig_files(kubeconfig: str | None) -> list[str]:
    raw = kubeconfig or os.environ.get("KUBECONFIG", "")
    files = [p for p in raw.split(os.pathsep) if p]
    if not files:
        default = Path(config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
        if default.exists():
            files = [str(default)]
    return files


def _in_cluster() -> bool:
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
    )


def connect(
    kubeconfig: str | None = None, context: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Cluster:
    """Build a `Cluster` or raise `KubeError` with a one-line reason (no request is made yet)."""
    configuration = client.Configuration()
    files = _kubeconfig_files(kubeconfig)
    used_context: str | None = context
    if files:
        for f in files:
            if not Path(f).is_file():
                raise KubeError(f"kubeconfig {f} does not exist or is not a file")
        try:
            if len(files) == 1:
                contexts, current = config.list_kube_config_contexts(config_file=files[0])
                names = [c["name"] for c in contexts]
                if context is not None and context not in names:
                    raise KubeError(
                        f"context {context!r} not found in {files[0]} "
                        f"(contexts: {', '.join(names) or 'none'})"
                    )
                used_context = context or (current or {}).get("name")
            config.load_kube_config(
                config_file=os.pathsep.join(files) if len(files) > 1 else files[0],
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        except KubeError:
            raise
        except ConfigException as exc:
            raise KubeError(f"bad kubeconfig {files[0]}: {str(exc).splitlines()[0]}") from None
        except Exception as exc:  # YAML errors and the like: still one line
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise KubeError(f"bad kubeconfig {files[0]}: {first}") from None
    elif _in_cluster():
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise KubeError(f"in-cluster config: {exc}") from None
        used_context = None
    else:
        raise KubeError(
            "no cluster given: use --kubeconfig, --context, KUBECONFIG, ~/.kube/config or --lab NAME"
        )
    configuration.retries = False
    api_client = client.ApiClient(configuration)
    cluster = Cluster(
        api_client=api_client, server=str(configuration.host), context=used_context, timeout=timeout
    )
    count_requests(api_client, cluster.counters)
    return cluster


def server_version(cluster: Cluster) -> str:
    """The API server's git version; the first request of a run, so it also proves reachability."""
    try:
        info = call(cluster, "get_code", api=client.VersionApi(cluster.api_client))
    except Exception as exc:
        raise KubeError(api_error_line(exc, f"connecting to {cluster.server}")) from None
    return str(info.get("gitVersion", "unknown"))
