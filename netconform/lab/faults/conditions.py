"""Control-plane conditions for the suite's bad-input tests: named and reversible like the faults, but kept
apart from them (the fault names are a contract: docs/lab.md) and listed separately by `lab fault list`.

- `deny-host-network`: a validating policy webhook (`policy.lab.netconform.io`) refuses every new pod
  with hostNetwork=true, in every namespace whatever its labels (HTTP 403, the webhook's message).
- `ephemeral-containers-disabled`: the `pods/ephemeralcontainers` subresource answers 404 NotFound without
  details, as an API server whose EphemeralContainers feature is off (or too old) does; `kubectl debug`
  then says "ephemeral containers are disabled for this cluster".
- `namespace-stuck`: a deleted namespace keeps its `kubernetes` finalizer and stays `Terminating`, with
  the status conditions the namespace controller sets when deleting content fails; clearing the
  condition lets the deletion finish.

They live in the supervisor's memory (the API, admission and controllers read them); `lab down` ends them
with the lab. They apply cluster-wide, so `--node` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DENY_HOST_NETWORK = "deny-host-network"
NAMESPACE_STUCK = "namespace-stuck"
EPHEMERAL_DISABLED = "ephemeral-containers-disabled"
WEBHOOK_NAME = "policy.lab.netconform.io"
DESCRIPTIONS = {
    DENY_HOST_NETWORK: f'admission webhook "{WEBHOOK_NAME}" refuses hostNetwork pods in every namespace',
    NAMESPACE_STUCK: "deleted namespaces stay Terminating (content deletion fails, finalizer kept)",
    EPHEMERAL_DISABLED: "the API serves no pods/ephemeralcontainers (an old cluster, feature gate off): 404",
}


class ConditionError(ValueError):
    """A condition cannot be added or cleared; the message is one line for the user."""


def names() -> list[str]:
    return list(DESCRIPTIONS)


def describe(name: str) -> str:
    if name not in DESCRIPTIONS:
        raise ConditionError(f"unknown condition {name!r}; known: {', '.join(DESCRIPTIONS)}")
    return f"{name}: {DESCRIPTIONS[name]}"


def webhook_denial() -> str:
    """The API server's message when the policy webhook refuses a hostNetwork pod."""
    return f'admission webhook "{WEBHOOK_NAME}" denied the request: hostNetwork is not allowed'


@dataclass
class LabConditions:
    """Which conditions are on; `on_change` callbacks run after every add/clear (the controllers' kick)."""

    active: dict[str, str] = field(default_factory=dict)
    on_change: list[Callable[[], None]] = field(default_factory=list)

    def is_active(self, name: str) -> bool:
        return name in self.active

    def add(self, name: str, node: str | None = None) -> str:
        describe(name)
        if node is not None:
            raise ConditionError(f"{name} applies to the whole cluster, not to a node")
        if name in self.active:
            return f"{name}: already active on {self.active[name]}"
        self.active[name] = "all namespaces"
        self._changed()
        return f"{name} (bad-input condition) active on all namespaces"

    def clear(self, name: str) -> str:
        describe(name)
        if self.active.pop(name, None) is None:
            return f"{name}: not active"
        self._changed()
        return f"{name}: cleared"

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()
