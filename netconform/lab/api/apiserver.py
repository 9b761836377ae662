"""The lab's Kubernetes API subset on aiohttp: enough for kubectl >= 1.30 and the official Python client.

Paths follow the real API (`/api/v1/namespaces/NS/pods/NAME/exec`, `/apis/GROUP/VERSION/...`); errors are
`Status` objects; every request is counted by verb and resource (the suite asserts on these counters);
lab-only endpoints live under `/lab/v1/` and are not counted. Nothing here blocks the event loop: exec
and log streaming use asyncio subprocesses and files, everything else is in-memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jsonpatch
import jsonpointer
from aiohttp import WSMsgType, web

from netconform.lab.api import resources, tables
from netconform.lab.api.admission import Admission
from netconform.lab.api.resources import Resource
from netconform.lab.api.store import (
    ApiError,
    Obj,
    Store,
    bad_request,
    not_found,
    now_iso,
    parse_field_selector,
    parse_label_selector,
)
from netconform.lab.faults.conditions import EPHEMERAL_DISABLED, LabConditions

log = logging.getLogger("netconform.lab.api")

K8S_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-netconform-lab",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
MAX_WATCH_SECONDS = 1800
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
UNAUTHENTICATED_PATHS = {"/version", "/healthz", "/readyz", "/livez"}


class Backend(Protocol):
    """What the API needs from the rest of the lab (kubelet, faults, status)."""

    async def exec_argv(
        self, namespace: str, pod: str, container: str | None, command: list[str]
    ) -> tuple[list[str], dict[str, str]]: ...

    def log_file(self, namespace: str, pod: str, container: str | None, previous: bool) -> Path: ...

    def container_alive(self, namespace: str, pod: str, container: str | None) -> bool: ...

    def attach_target(self, namespace: str, pod: str, container: str | None) -> tuple[Any, Path]: ...

    def lab_status(self) -> dict[str, Any]: ...

    async def fault_list(self) -> list[dict[str, Any]]: ...

    async def fault_add(self, name: str, node: str | None) -> dict[str, Any]: ...

    async def fault_clear(self, name: str | None) -> list[str]: ...


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    read_only: bool
    # the lab's own in-cluster controllers (the ingress controller): their requests are counted apart,
    # so the counters say what clients such as the suite cost
    in_cluster: bool = False


@dataclass
class Counters:
    """Exact request counters, by verb and resource (`pods`, `pods/exec`, or a non-resource path)."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_cluster_requests: int = 0
    exec_sessions: int = 0
    exec_active: int = 0
    watches_active: int = 0

    def snapshot(self) -> dict[str, Any]:
        by_verb: dict[str, dict[str, int]] = {}
        for (verb, res), n in sorted(self.requests.items()):
            by_verb.setdefault(verb, {})[res] = n
        return {
            "requests_total": sum(self.requests.values()),
            "requests": by_verb,
            "in_cluster_requests": self.in_cluster_requests,
            "exec_sessions": self.exec_sessions,
            "exec_active": self.exec_active,
            "watches_active": self.watches_active,
        }


@dataclass
class Target:
    """A parsed resource URL."""

    res: Resource
    namespace: str | None
    name: str | None
    sub: str | None

    @property
    def counter_resource(self) -> str:
        return f"{self.res.name}/{self.sub}" if self.sub else self.res.name


def status_response(err: ApiError) -> web.Response:
    return web.json_response(err.status(), status=err.code)


def success_status(details: dict[str, Any] | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "yes")


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _strategic_list(live: list[Any], patch: list[Any], order: list[str] | None = None) -> list[Any]:
    """A strategic merge of a list keyed by `name`, in the order the real API server gives it
    (apimachinery's normalizeElementOrder): the patch's items in `$setElementOrder`'s order (else the
    patch's), each merged with its live item, and every live item the patch does not name inserted among
    them by its live position, so without an order a new item comes first (`[new, old]`).

    >>> [c["name"] for c in _strategic_list([{"name": "a"}, {"name": "b"}], [{"name": "c"}, {"name": "b"}])]
    ['c', 'a', 'b']
    >>> [c["name"] for c in _strategic_list([{"name": "a"}], [{"name": "c"}], ["a", "c"])]
    ['a', 'c']
    """
    position = {x["name"]: i for i, x in enumerate(live)}
    by_name = {x["name"]: x for x in live}
    in_patch = {x["name"]: x for x in patch}
    deleted = {n for n, x in in_patch.items() if x.get("$patch") == "delete"}
    names = [n for n in (order or []) if n in in_patch or n in by_name]
    names += [x["name"] for x in patch if x["name"] not in names]
    merged = [
        _merge_patch(by_name.get(n), in_patch[n], True) if n in in_patch else copy.deepcopy(by_name[n])
        for n in names
        if n not in deleted
    ]
    start = 0
    for item in (copy.deepcopy(x) for x in live if x["name"] not in names):
        at = start
        while at < len(merged) and position.get(merged[at]["name"], -1) < position[item["name"]]:
            at += 1
        merged.insert(at, item)
        start = at + 1
    return merged


def _keyed(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(x, dict) and "name" in x for x in items)


def _merge_patch(target: Any, patch: Any, strategic: bool, order: list[str] | None = None) -> Any:
    """RFC 7386 merge patch; `strategic` merges lists of named dicts by `name` (containers, ports, env),
    ordered by the patch's `$setElementOrder/FIELD` directive when it has one (kubectl's patches do)."""
    if not isinstance(patch, dict):
        if strategic and patch and _keyed(patch) and _keyed(target):
            return _strategic_list(target, patch, order)
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders = {
        k.split("/", 1)[1]: [str(x["name"]) for x in v if isinstance(x, dict) and "name" in x]
        for k, v in patch.items()
        if strategic and k.startswith("$setElementOrder/") and isinstance(v, list)
    }
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            result.pop(k, None)
        else:
            result[k] = _merge_patch(result.get(k), v, strategic, orders.get(k))
    for k, names in orders.items():  # an order alone (no items patched) reorders the live list
        if k not in patch and _keyed(result.get(k)):
            result[k] = _strategic_list(result[k], [], names)
    return result


def _json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 (what `kubectl patch --type=json` sends), by the `jsonpatch` library: a path whose parent
    is missing, a failed `test` or a bad operation is refused with 422, as the real API server does.

    >>> _json_patch({"a": {"b": 1}}, [{"op": "replace", "path": "/a/b", "value": 2}])
    {'a': {'b': 2}}
    """
    try:
        return jsonpatch.JsonPatch(ops).apply(doc, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise ApiError(422, "Invalid", f"the json patch test operation failed: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, ValueError) as exc:
        raise ApiError(422, "Invalid", f"the json patch does not apply: {exc}") from None


class ApiServer:
    """The aiohttp application plus the state the handlers share."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        tokens: dict[str, User],
        conditions: LabConditions | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.tokens = tokens
        self.admission = Admission(store, conditions)
        self.conditions = self.admission.conditions
        self.counters = Counters()
        self.started = time.monotonic()
        self.app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # ------------------------------------------------------------------ plumbing
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return status_response(err)
        except json.JSONDecodeError as err:
            return status_response(bad_request(f"invalid JSON body: {err}"))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as err:  # one bad request must never take the API down
            log.exception("internal error on %s %s", request.method, request.path)
            return status_response(ApiError(500, "InternalError", f"internal error: {err}"))

    def _authenticate(self, request: web.Request) -> User:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        user = self.tokens.get(token)
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    @staticmethod
    def allowed(user: User, verb: str, resource: str) -> bool:
        if not user.read_only or resource == "selfsubjectaccessreviews":
            return True
        # like the "view" ClusterRole: no secrets, no exec/attach, and pods/ephemeralcontainers is
        # authorized apart from pods (a viewer may read pods but neither read nor patch that subresource)
        return verb in ("get", "list", "watch") and resource not in (
            "secrets",
            "pods/exec",
            "pods/attach",
            "pods/ephemeralcontainers",
        )

    def _authorize(self, user: User, verb: str, t: Target) -> None:
        if self.allowed(user, verb, t.counter_resource):
            return
        where = f' in the namespace "{t.namespace}"' if t.namespace else " at the cluster scope"
        res = t.counter_resource
        raise ApiError(
            403,
            "Forbidden",
            f"{t.res.name} {f'{t.name!r} ' if t.name else ''}is forbidden: User "
            f'"{user.name}" cannot {verb} resource "{res}" in API group "{t.res.group}"{where}'.replace(
                "'", '"'
            ),
            {"name": t.name or "", "group": t.res.group, "kind": t.res.name},
        )

    def _count(self, verb: str, resource: str) -> None:
        self.counters.requests[(verb, resource)] += 1

    @staticmethod
    def _parse(segments: list[str]) -> tuple[str, str, list[str]] | None:
        if len(segments) >= 2 and segments[0] == "api":
            return "", segments[1], segments[2:]
        if len(segments) >= 3 and segments[0] == "apis":
            return segments[1], segments[2], segments[3:]
        return None

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        def res_or_404(name: str) -> Resource:
            r = resources.lookup(group, version, name)
            if r is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return r

        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = resources.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                if len(rest) > 5:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return Target(
                    candidate, rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None
                )
        r = res_or_404(rest[0])
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(r, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path.startswith("/lab/v1"):
            self._authenticate(request)
            return await self._lab(request, path)
        if path in UNAUTHENTICATED_PATHS:
            self._count("get", path)
            if path == "/version":
                return web.json_response(K8S_VERSION)
            return web.Response(text="ok")
        user = self._authenticate(request)
        segments = [s for s in path.split("/") if s]
        parsed = self._parse(segments)
        if parsed is None or not parsed[2]:
            self._count("get", path)
            return self._discovery(path, segments)
        group, version, rest = parsed
        if group and resources.GROUP_VERSIONS.get(group) != version:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        t = self._target(group, version, rest)
        verb = self._verb(request, t)
        if user.in_cluster:
            self.counters.in_cluster_requests += 1
        else:
            self._count(verb, t.counter_resource)
        self._authorize(user, verb, t)
        if t.res.name == "selfsubjectaccessreviews":
            return await self._ssar(request, user)
        if t.sub == "exec":
            return await self._exec(request, t)
        if t.sub == "log":
            return await self._log(request, t)
        if t.sub == "attach":
            return await self._attach(request, t)
        if t.sub == "ephemeralcontainers" and self.conditions.is_active(EPHEMERAL_DISABLED):
            # an API server without the feature: the subresource does not exist; empty details (no name),
            # unlike a missing pod: kubectl debug tells the two apart by that
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if t.namespace and verb in ("create",) and t.res.name != "events":
            self._check_namespace_writable(t.namespace)
        handler = {
            "get": self._get,
            "list": self._list,
            "watch": self._watch,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._deletecollection,
        }.get(verb)
        if handler is None:
            raise ApiError(
                405, "MethodNotAllowed", f"{request.method} is not supported on {t.counter_resource}"
            )
        return await handler(request, t)

    @staticmethod
    def _verb(request: web.Request, t: Target) -> str:
        if t.sub in ("exec", "attach"):
            return "create"
        m = request.method
        if m == "GET":
            if _truthy(request.query.get("watch")):
                return "watch"
            return "get" if t.name else "list"
        if m == "POST":
            return "create"
        if m == "PUT":
            return "update"
        if m == "PATCH":
            return "patch"
        if m == "DELETE":
            return "delete" if t.name else "deletecollection"
        return m.lower()

    def _discovery(self, path: str, segments: list[str]) -> web.Response:
        if path == "/api":
            return web.json_response(resources.api_versions())
        if path == "/apis":
            return web.json_response(resources.api_group_list())
        if len(segments) == 2 and segments[0] == "api":
            body = resources.resource_list("", segments[1])
        elif len(segments) == 2 and segments[0] == "apis" and segments[1] in resources.GROUP_VERSIONS:
            v = resources.GROUP_VERSIONS[segments[1]]
            gv = {"groupVersion": f"{segments[1]}/{v}", "version": v}
            return web.json_response(
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": segments[1],
                    "versions": [gv],
                    "preferredVersion": gv,
                }
            )
        elif (
            len(segments) == 3
            and segments[0] == "apis"
            and resources.GROUP_VERSIONS.get(segments[1]) == segments[2]
        ):
            body = resources.resource_list(segments[1], segments[2])
        else:
            body = None
        if body is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return web.json_response(body)

    def _check_namespace_writable(self, namespace: str) -> None:
        ns = self.store.find("namespaces", "", namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
                {"name": namespace, "kind": "namespaces"},
            )

    # ------------------------------------------------------------------ CRUD
    def _respond(self, request: web.Request, t: Target, obj: Obj, status: int = 200) -> web.Response:
        if _wants_table(request):
            tbl = tables.table(
                t.res.name,
                [obj],
                obj["metadata"].get("resourceVersion", ""),
                request.query.get("includeObject", "Metadata"),
            )
            return web.json_response(tbl, status=status)
        return web.json_response(obj, status=status)

    async def _get(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None
        obj = self.store.get(t.res.name, t.namespace or "", t.name)
        return self._respond(request, t, obj)

    async def _list(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        items = self.store.select(t.res.name, t.namespace, labels, fields)
        rv = str(self.store.rv)
        if _wants_table(request):
            return web.json_response(
                tables.table(t.res.name, items, rv, request.query.get("includeObject", "Metadata"))
            )
        return web.json_response(
            {
                "kind": f"{t.res.kind}List",
                "apiVersion": t.res.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise bad_request("request body is empty")
        return json.loads(raw)

    async def _create(self, request: web.Request, t: Target) -> web.StreamResponse:
        if t.name:
            raise ApiError(405, "MethodNotAllowed", "POST to a named resource is not supported")
        obj = await self._body(request)
        if not isinstance(obj, dict):
            raise bad_request("the body must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if t.res.namespaced:
            if meta.get("namespace") and meta["namespace"] != t.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = t.namespace or "default"
        for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
            meta.pop(f, None)
        self.admission.on_create(t.res, obj)
        if request.query.get("dryRun"):
            return self._respond(request, t, obj, 201)
        created = self.store.create(t.res.name, obj, t.res.namespaced)
        return self._respond(request, t, created, 201)

    async def _update(self, request: web.Request, t: Target) -> web.StreamResponse:
        if not t.name:
            raise ApiError(405, "MethodNotAllowed", "PUT needs a name")
        new = await self._body(request)
        if not isinstance(new, dict):
            raise bad_request("the body must be a JSON object")
        return self._store_update(request, t, new, check_rv=True)

    def _store_update(self, request: web.Request, t: Target, new: Obj, check_rv: bool) -> web.Response:
        assert t.name is not None
        old = self.store.get(t.res.name, t.namespace or "", t.name)
        meta = new.setdefault("metadata", {})
        if meta.get("name", t.name) != t.name:
            raise bad_request("the name of the object does not match the name on the URL")
        meta["name"] = t.name
        if t.res.namespaced:
            meta["namespace"] = t.namespace
        if t.sub == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            merged["metadata"]["resourceVersion"] = (
                meta.get("resourceVersion") or old["metadata"]["resourceVersion"]
            )
            new = merged
        elif t.sub is None:
            new["status"] = (
                old.get("status", {})
                if t.res.name in ("pods", "nodes", "namespaces")
                else new.get("status", old.get("status"))
            )
            if new.get("status") is None:
                new.pop("status", None)
            generation = int(old["metadata"].get("generation") or 1)
            if t.res.name in resources.GENERATION_RESOURCES and new.get("spec") != old.get("spec"):
                generation += 1  # like a real server: spec changes count, status and metadata do not
            meta["generation"] = generation
            self.admission.on_update(t.res, old, new)
        elif t.sub == "ephemeralcontainers" and t.res.name == "pods":
            merged = copy.deepcopy(old)
            merged["spec"]["ephemeralContainers"] = (new.get("spec") or {}).get("ephemeralContainers") or []
            merged["metadata"]["resourceVersion"] = (
                meta.get("resourceVersion") or old["metadata"]["resourceVersion"]
            )
            self.admission.on_ephemeral_containers(old, merged)
            new = merged
        elif t.sub != "finalize":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if request.query.get("dryRun"):
            return self._respond(request, t, new)
        return self._respond(request, t, self.store.update(t.res.name, new, check_rv=check_rv))

    async def _patch(self, request: web.Request, t: Target) -> web.StreamResponse:
        if not t.name:
            raise ApiError(405, "MethodNotAllowed", "PATCH needs a name")
        ctype = request.content_type
        patch = await self._body(request)
        current = self.store.get(t.res.name, t.namespace or "", t.name)
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise bad_request("a json patch must be a list of operations")
            new = _json_patch(current, patch)
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            new = _merge_patch(current, patch, strategic=ctype.startswith("application/strategic"))
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: application/json-patch+json, "
                f"application/merge-patch+json, application/strategic-merge-patch+json (got {ctype})",
            )
        if isinstance(patch, dict) and "resourceVersion" not in patch.get("metadata", {}):
            new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._store_update(request, t, new, check_rv=True)

    async def _delete(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None
        ns = t.namespace or ""
        obj = self.store.get(t.res.name, ns, t.name)
        grace = request.query.get("gracePeriodSeconds")
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            body = json.loads(await request.read() or b"{}")
            if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                grace = str(body["gracePeriodSeconds"])
        if request.query.get("dryRun"):
            return self._respond(request, t, obj)
        return self._respond(request, t, self.delete_object(t.res.name, ns, t.name, grace))

    def delete_object(self, resource: str, namespace: str, name: str, grace: str | None) -> Obj:
        """Delete with Kubernetes semantics: pods on a node and namespaces go through a terminating phase."""
        obj = self.store.get(resource, namespace, name)
        if resource == "pods" and obj.get("spec", {}).get("nodeName") and grace != "0":
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            seconds = (
                int(grace) if grace is not None else int(obj["spec"].get("terminationGracePeriodSeconds", 30))
            )

            def mark(o: Obj) -> None:
                o["metadata"]["deletionTimestamp"] = now_iso()
                o["metadata"]["deletionGracePeriodSeconds"] = seconds

            return self.store.mutate(resource, namespace, name, mark) or obj
        if resource == "namespaces":
            if name in ("default", "kube-system", "kube-public", "kube-node-lease"):
                raise ApiError(
                    403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted'
                )

            def terminate(o: Obj) -> None:
                o["metadata"].setdefault("deletionTimestamp", now_iso())
                o.setdefault("status", {})["phase"] = "Terminating"

            return self.store.mutate(resource, namespace, name, terminate) or obj
        return self.store.delete(resource, namespace, name)

    async def _deletecollection(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        items = self.store.select(t.res.name, t.namespace, labels, fields)
        deleted = [
            self.delete_object(
                t.res.name,
                o["metadata"].get("namespace", ""),
                o["metadata"]["name"],
                request.query.get("gracePeriodSeconds"),
            )
            for o in items
        ]
        return web.json_response(
            {
                "kind": f"{t.res.kind}List",
                "apiVersion": t.res.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": deleted,
            }
        )

    # ------------------------------------------------------------------ watch
    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        if t.name:
            fields = [*fields, *parse_field_selector(f"metadata.name={t.name}")]
        rv_text = request.query.get("resourceVersion")
        since = int(rv_text) if rv_text and rv_text.isdigit() and rv_text != "0" else None
        try:
            timeout = min(float(request.query.get("timeoutSeconds", MAX_WATCH_SECONDS)), MAX_WATCH_SECONDS)
        except ValueError:
            raise bad_request("timeoutSeconds must be a number") from None
        as_table = _wants_table(request)
        include = request.query.get("includeObject", "Metadata")
        watcher = self.store.watch(t.res.name, t.namespace, labels, fields, since)
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self.counters.watches_active += 1
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or request.transport is None or request.transport.is_closing():
                    break
                try:
                    ev = await asyncio.wait_for(watcher.queue.get(), min(remaining, 5.0))
                except TimeoutError:
                    continue
                obj = ev.obj
                if as_table:
                    obj = tables.table(t.res.name, [obj], obj["metadata"].get("resourceVersion", ""), include)
                await resp.write(json.dumps({"type": ev.type, "object": obj}).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.counters.watches_active -= 1
            self.store.unwatch(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ authorization
    async def _ssar(self, request: web.Request, user: User) -> web.StreamResponse:
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", "selfsubjectaccessreviews only support create")
        body = await self._body(request)
        spec = body.get("spec", {}) if isinstance(body, dict) else {}
        attrs = spec.get("resourceAttributes")
        if attrs:
            res = attrs.get("resource", "")
            if attrs.get("subresource"):
                res = f"{res}/{attrs['subresource']}"
            allowed = self.allowed(user, attrs.get("verb", ""), res)
        else:
            allowed = not user.read_only or spec.get("nonResourceAttributes", {}).get("verb") == "get"
        out = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": {
                "allowed": allowed,
                **({} if allowed else {"reason": f"user {user.name} is read-only"}),
            },
        }
        return web.json_response(out, status=201)

    # ------------------------------------------------------------------ exec
    async def _exec(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None and t.namespace is not None
        command = request.query.getall("command", [])
        if not command:
            raise bad_request("you must specify at least 1 command")
        container = request.query.get("container")
        want_stdin = _truthy(request.query.get("stdin"))
        want_stdout = _truthy(request.query.get("stdout")) or "stdout" not in request.query
        want_stderr = _truthy(request.query.get("stderr")) or "stderr" not in request.query
        argv, env = await self.backend.exec_argv(t.namespace, t.name, container, command)
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True, max_msg_size=16 * 1024 * 1024)
        if not ws.can_prepare(request).ok:
            raise ApiError(
                400,
                "BadRequest",
                "exec needs a websocket upgrade with subprotocol "
                "v5.channel.k8s.io or v4.channel.k8s.io (SPDY is not served by the lab)",
            )
        await ws.prepare(request)
        self.counters.exec_sessions += 1
        self.counters.exec_active += 1
        try:
            await self._run_exec(ws, argv, env, want_stdin, want_stdout, want_stderr)
        finally:
            self.counters.exec_active -= 1
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _run_exec(
        self,
        ws: web.WebSocketResponse,
        argv: list[str],
        env: dict[str, str],
        want_stdin: bool,
        want_stdout: bool,
        want_stderr: bool,
    ) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if want_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            await ws.send_bytes(
                bytes([ERROR])
                + json.dumps(
                    {
                        "metadata": {},
                        "status": "Failure",
                        "message": f"exec failed: {err}",
                        "reason": "InternalError",
                        "code": 500,
                    }
                ).encode()
            )
            return
        send_lock = asyncio.Lock()

        async def pump(stream: asyncio.StreamReader | None, channel: int, forward: bool) -> None:
            if stream is None:
                return
            while True:
                chunk = await stream.read(65536)
                if not chunk:
                    return
                if forward and not ws.closed:
                    async with send_lock:
                        with contextlib.suppress(ConnectionResetError, RuntimeError):
                            await ws.send_bytes(bytes([channel]) + chunk)

        async def feed_stdin() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    if msg.type == WSMsgType.TEXT and msg.data:
                        data = msg.data.encode()
                    else:
                        continue
                else:
                    data = msg.data
                channel, payload = data[0], data[1:]
                if channel == STDIN and proc.stdin is not None and not proc.stdin.is_closing():
                    proc.stdin.write(payload)
                    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                        await proc.stdin.drain()
                elif channel == CLOSE and payload[:1] == bytes([STDIN]) and proc.stdin is not None:
                    proc.stdin.close()
            # the client went away: the process must not outlive its session
            _kill_group(proc)

        reader = asyncio.ensure_future(feed_stdin())
        try:
            await asyncio.gather(
                pump(proc.stdout, STDOUT, want_stdout), pump(proc.stderr, STDERR, want_stderr)
            )
            code = await proc.wait()
        except asyncio.CancelledError:
            _kill_group(proc)
            raise
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if code == 0:
            status: Obj = {"metadata": {}, "status": "Success"}
        else:
            exit_code = code if code > 0 else 128 - code
            status = {
                "metadata": {},
                "status": "Failure",
                "message": f"command terminated with non-zero exit code: exit status {exit_code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
            }
        if not ws.closed:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())

    # ------------------------------------------------------------------ attach
    async def _attach(self, request: web.Request, t: Target) -> web.StreamResponse:
        """pods/attach (what `kubectl debug -i` and `kubectl attach` use): the client's stdin goes to the
        container's stdin (a pipe, when the container has `stdin: true`), the container's output from now
        on comes back on stdout, until the container exits or the client goes."""
        assert t.name is not None and t.namespace is not None
        container = request.query.get("container")
        stdin, log_path = self.backend.attach_target(t.namespace, t.name, container)
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True, max_msg_size=16 * 1024 * 1024)
        if not ws.can_prepare(request).ok:
            raise ApiError(
                400,
                "BadRequest",
                "attach needs a websocket upgrade with subprotocol "
                "v5.channel.k8s.io or v4.channel.k8s.io (SPDY is not served by the lab)",
            )
        await ws.prepare(request)
        self.counters.exec_sessions += 1
        self.counters.exec_active += 1
        loop = asyncio.get_running_loop()
        offset = len(await loop.run_in_executor(None, _read_file, log_path))

        async def feed() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if stdin is None or stdin.is_closing():
                    continue
                if channel == STDIN:
                    stdin.write(payload)
                    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                        await stdin.drain()
                elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                    stdin.close()

        reader = asyncio.ensure_future(feed())
        try:
            # the output while the container lives; bounded by the container and the client connection
            while not ws.closed and not reader.done():
                chunk = await loop.run_in_executor(None, _read_file, log_path, offset)
                if chunk:
                    offset += len(chunk)
                    await ws.send_bytes(bytes([STDOUT]) + chunk)
                elif not self.backend.container_alive(t.namespace, t.name, container):
                    break
                else:
                    await asyncio.sleep(0.1)
            if not ws.closed:
                status = {"metadata": {}, "status": "Success"}
                with contextlib.suppress(ConnectionResetError, RuntimeError):
                    await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.counters.exec_active -= 1
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    # ------------------------------------------------------------------ logs
    async def _log(self, request: web.Request, t: Target) -> web.StreamResponse:
        assert t.name is not None and t.namespace is not None
        container = request.query.get("container")
        previous = _truthy(request.query.get("previous"))
        path = self.backend.log_file(t.namespace, t.name, container, previous)
        tail = request.query.get("tailLines")
        limit = request.query.get("limitBytes")
        data = await asyncio.get_running_loop().run_in_executor(None, _read_file, path)
        offset = len(data)
        if tail is not None and tail.lstrip("-").isdigit():
            lines = data.splitlines(keepends=True)
            n = int(tail)
            data = b"".join(lines[-n:]) if n > 0 else b""
        if limit and limit.isdigit():
            data = data[: int(limit)]
        if not _truthy(request.query.get("follow")):
            return web.Response(body=data, content_type="text/plain")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(data)
        try:
            # tail the file while the container lives; bounded by the container and the client connection
            while request.transport is not None and not request.transport.is_closing():
                chunk = await asyncio.get_running_loop().run_in_executor(None, _read_file, path, offset)
                if chunk:
                    offset += len(chunk)
                    await resp.write(chunk)
                elif not self.backend.container_alive(t.namespace, t.name, container):
                    break
                else:
                    await asyncio.sleep(0.25)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ lab endpoints
    async def _lab(self, request: web.Request, path: str) -> web.StreamResponse:
        if path == "/lab/v1/status" and request.method == "GET":
            status = self.backend.lab_status()
            status.setdefault("api", self.counters.snapshot())  # the real control plane has its own
            return web.json_response(status)
        if path == "/lab/v1/faults":
            if request.method == "GET":
                return web.json_response({"faults": await self.backend.fault_list()})
            if request.method == "POST":
                body = await self._body(request)
                if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                    raise bad_request('the body must be {"name": FAULT, "node": NODE or null}')
                return web.json_response(
                    await self.backend.fault_add(body["name"], body.get("node")), status=201
                )
            if request.method == "DELETE":
                return web.json_response({"cleared": await self.backend.fault_clear(None)})
        if path.startswith("/lab/v1/faults/") and request.method == "DELETE":
            return web.json_response({"cleared": await self.backend.fault_clear(path.rsplit("/", 1)[1])})
        raise ApiError(404, "NotFound", f"no lab endpoint {request.method} {path}")


def _read_file(path: Path, offset: int = 0) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            return fh.read()
    except FileNotFoundError:
        return b""


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
