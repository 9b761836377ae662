"""The lab API's object store: typed-less Kubernetes objects, one resourceVersion counter, watch fan-out.

Everything runs on the API server's event loop thread; no locking is needed. Objects are plain JSON
dicts and every read hands out a deep copy, so callers can never mutate stored state by accident.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from netconform.lab.api.jsoncopy import clone

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

HISTORY_LEN = 5000


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the API answers with a Kubernetes `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404, "NotFound", f'{qualified} "{name}" not found', {"name": name, "group": group, "kind": resource}
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        {"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
    """422 as the real API server words it: the kind is qualified by its group outside the core group,
    e.g. `NetworkPolicy.networking.k8s.io "bad" is invalid: spec...: Unsupported value: ...`."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {text}',
        {
            "name": name,
            **({"group": group} if group else {}),
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# ---------------------------------------------------------------- selectors

_LABEL_VALUE = r"[A-Za-z0-9_.\-/]*"
_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_.\-/]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(rf"^\s*([A-Za-z0-9_.\-/]+)\s*(==|=|!=)\s*({_LABEL_VALUE})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses (`a in (x,y),b`)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in (p.strip() for p in parts) if p]


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        eq = _EQ_RE.match(part)
        if eq:
            op = "!=" if eq.group(2) == "!=" else "="
            reqs.append(Requirement(eq.group(1), op, (eq.group(3),)))
            continue
        st = _SET_RE.match(part)
        if not st:
            raise bad_request(f"unable to parse requirement: {part!r}")
        neg, key, op, values = st.groups()
        if op:
            if neg:
                raise bad_request(f"unable to parse requirement: {part!r}")
            vals = tuple(v.strip() for v in values.split(",") if v.strip())
            reqs.append(Requirement(key, op, vals))
        else:
            reqs.append(Requirement(key, "!exists" if neg else "exists"))
    return reqs


def selector_from_match_labels(match_labels: dict[str, str] | None) -> list[Requirement]:
    return [Requirement(k, "=", (v,)) for k, v in (match_labels or {}).items()]


def labels_match(reqs: Iterable[Requirement], labels: dict[str, str] | None) -> bool:
    lab = labels or {}
    return all(r.matches(lab) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    if not text:
        return []
    out: list[FieldRequirement] = []
    for part in _split_top_level(text):
        if "!=" in part:
            path, value = part.split("!=", 1)
            out.append(FieldRequirement(path.strip(), True, value.strip()))
        elif "==" in part:
            path, value = part.split("==", 1)
            out.append(FieldRequirement(path.strip(), False, value.strip()))
        elif "=" in part:
            path, value = part.split("=", 1)
            out.append(FieldRequirement(path.strip(), False, value.strip()))
        else:
            raise bad_request(f"invalid field selector: {part!r}")
    return out


def field_value(obj: Obj, path: str) -> str:
    node: Any = obj
    for seg in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(seg)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def fields_match(reqs: Iterable[FieldRequirement], obj: Obj) -> bool:
    for r in reqs:
        equal = field_value(obj, r.path) == r.value
        if equal == r.negate:
            return False
    return True


# ---------------------------------------------------------------- store


@dataclass
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED | ERROR
    resource: str
    obj: Obj
    rv: int
    old: Obj | None = None


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldRequirement]
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)

    def _matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        return labels_match(self.labels, meta.get("labels")) and fields_match(self.fields, obj)

    def offer(self, ev: WatchEvent) -> None:
        """Queue the event as this watcher sees it (objects leaving its selector appear DELETED)."""
        if ev.resource != self.resource:
            return
        now_match = self._matches(ev.obj)
        if ev.type == "MODIFIED":
            old_match = self._matches(ev.old)
            if now_match and not old_match:
                self.queue.put_nowait(WatchEvent("ADDED", ev.resource, ev.obj, ev.rv))
            elif old_match and not now_match:
                self.queue.put_nowait(WatchEvent("DELETED", ev.resource, ev.obj, ev.rv))
            elif now_match:
                self.queue.put_nowait(ev)
        elif now_match:
            self.queue.put_nowait(ev)


Listener = Callable[[WatchEvent], None]


class Store:
    """All API objects of one lab, keyed by resource then (namespace, name)."""

    def __init__(self) -> None:
        self.rv = 1
        self.objects: dict[str, dict[Key, Obj]] = {}
        self.history: deque[WatchEvent] = deque(maxlen=HISTORY_LEN)
        self.watchers: set[Watcher] = set()
        self.listeners: list[Listener] = []

    # -- internals
    def _bucket(self, resource: str) -> dict[Key, Obj]:
        return self.objects.setdefault(resource, {})

    def _emit(self, ev: WatchEvent) -> None:
        self.history.append(ev)
        for w in list(self.watchers):
            w.offer(ev)
        for listener in list(self.listeners):
            listener(ev)

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    # -- reads
    def get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self._bucket(resource).get((namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return clone(obj)

    def find(self, resource: str, namespace: str, name: str) -> Obj | None:
        obj = self._bucket(resource).get((namespace, name))
        return clone(obj) if obj is not None else None

    def select(
        self,
        resource: str,
        namespace: str | None = None,
        labels: list[Requirement] | None = None,
        fields: list[FieldRequirement] | None = None,
    ) -> list[Obj]:
        out = []
        for (ns, _name), obj in sorted(self._bucket(resource).items()):
            if namespace is not None and ns != namespace:
                continue
            if labels and not labels_match(labels, obj["metadata"].get("labels")):
                continue
            if fields and not fields_match(fields, obj):
                continue
            out.append(clone(obj))
        return out

    # -- writes
    def create(self, resource: str, obj: Obj, namespaced: bool) -> Obj:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise invalid(
                obj.get("kind", resource), "", [("metadata.name", "Required value: name is required")]
            )
        ns = meta.get("namespace", "") if namespaced else ""
        if not namespaced:
            meta.pop("namespace", None)
        key = (ns, name)
        bucket = self._bucket(resource)
        if key in bucket:
            raise already_exists(resource, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(self._next_rv())
        stored = clone(obj)
        bucket[key] = stored
        self._emit(WatchEvent("ADDED", resource, clone(stored), self.rv))
        return clone(stored)

    def update(self, resource: str, obj: Obj, check_rv: bool = True) -> Obj:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        bucket = self._bucket(resource)
        old = bucket.get(key)
        if old is None:
            raise not_found(resource, key[1])
        sent_rv = meta.get("resourceVersion")
        if check_rv and sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource} "{key[1]}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                {"name": key[1], "kind": resource},
            )
        # immutable identity fields survive any update
        for f in ("uid", "creationTimestamp", "namespace", "name"):
            if f in old["metadata"]:
                meta[f] = old["metadata"][f]
        if "deletionTimestamp" in old["metadata"] and "deletionTimestamp" not in meta:
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
        if obj == old:
            return clone(old)
        meta["resourceVersion"] = str(self._next_rv())
        stored = clone(obj)
        bucket[key] = stored
        self._emit(WatchEvent("MODIFIED", resource, clone(stored), self.rv, old=old))
        return clone(stored)

    def mutate(self, resource: str, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj | None:
        """Apply `fn` to a copy of the object and store it if it changed; None if the object is gone."""
        current = self.find(resource, namespace, name)
        if current is None:
            return None
        before = clone(current)
        fn(current)
        if current == before:
            return current
        current["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"]
        return self.update(resource, current, check_rv=False)

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        bucket = self._bucket(resource)
        old = bucket.pop((namespace, name), None)
        if old is None:
            raise not_found(resource, name)
        old = clone(old)
        old["metadata"]["resourceVersion"] = str(self._next_rv())
        self._emit(WatchEvent("DELETED", resource, clone(old), self.rv))
        return old

    # -- watch
    def watch(
        self,
        resource: str,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        since_rv: int | None,
    ) -> Watcher:
        """Register a watcher; replays history after `since_rv`, or current objects as ADDED if None.

        Raises 410 Gone when `since_rv` is older than the kept history.
        """
        w = Watcher(resource, namespace, labels, fields)
        if since_rv is None:
            for obj in self.select(resource, namespace, labels, fields):
                w.queue.put_nowait(WatchEvent("ADDED", resource, obj, self.rv))
        else:
            if self.history and since_rv < self.history[0].rv - 1 and since_rv < self.rv:
                raise ApiError(410, "Expired", f"too old resource version: {since_rv} ({self.history[0].rv})")
            for ev in self.history:
                if ev.rv > since_rv:
                    w.offer(ev)
        self.watchers.add(w)
        return w

    def unwatch(self, w: Watcher) -> None:
        self.watchers.discard(w)
