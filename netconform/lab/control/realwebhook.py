"""The lab's bad-input conditions on the real control plane: a validating admission webhook that the real
kube-apiserver calls, so the refusals and the stuck namespace are the real server's own behaviour.

- `deny-host-network`: webhook `policy.lab.netconform.io` (pods, CREATE) refuses every pod with
  hostNetwork=true; the API server answers 403 `admission webhook "policy.lab.netconform.io" denied the
  request: hostNetwork is not allowed`, word for word what the emulated lab says.
- `namespace-stuck`: webhook `namespace-content.lab.netconform.io` (configmaps, DELETE) refuses to delete
  the ConfigMaps of a namespace that is being deleted, so the real namespace controller cannot empty it:
  the namespace stays Terminating with its `kubernetes` finalizer and `NamespaceDeletionContentFailure`.
  Clearing the condition removes the webhook and touches every Terminating namespace (an annotation),
  which makes the namespace controller retry at once instead of after its back-off.
- `ephemeral-containers-disabled` is refused: a v1.34 API server always serves pods/ephemeralcontainers
  (the feature is GA and cannot be switched off), so it stays a condition of the emulated control plane.

The webhook listens on 127.0.0.1 (a throwaway port, TLS from the lab's CA) beside the API server, and is
registered only while a condition needs it. `sync()` returns once the API server applies the new set:
it dry-runs the creation of a labelled probe ConfigMap, which a third webhook entry refuses with the
names of the active conditions, until the answer names exactly the wanted set.

    hook = ConditionWebhook(real_api, lab_ca, conditions); await hook.start(); await hook.sync()
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

from aiohttp import web

from netconform.lab.control.realcp import LabCA
from netconform.lab.control.realmirror import RealApi, RealApiError
from netconform.lab.faults.conditions import (
    DENY_HOST_NETWORK,
    EPHEMERAL_DISABLED,
    NAMESPACE_STUCK,
    WEBHOOK_NAME,
    ConditionError,
    LabConditions,
)

log = logging.getLogger("netconform.lab.control.realwebhook")

Obj = dict[str, Any]
CONFIG_NAME = "lab.netconform.io"
CONFIG_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CONTENT_WEBHOOK = "namespace-content.lab.netconform.io"
PROBE_WEBHOOK = "probe.lab.netconform.io"
PROBE_LABEL = "lab.netconform.io/webhook-probe"
PROBE_PREFIX = "lab conditions in force: "
MANAGED_BY = "app.kubernetes.io/managed-by"
KICK_ANNOTATION = "lab.netconform.io/retry-deletion"
SYNC_TIMEOUT_S = 15.0
HOST_NETWORK_DENIAL = "hostNetwork is not allowed"
NOT_ON_REAL = {
    EPHEMERAL_DISABLED: (
        "ephemeral-containers-disabled needs `lab up --control-plane emulated`: a v1.34 API server always "
        "serves pods/ephemeralcontainers (the feature is GA and cannot be turned off)"
    )
}


class ConditionWebhook:
    def __init__(self, real: RealApi, ca: LabCA, conditions: LabConditions) -> None:
        self.real = real
        self.ca = ca
        self.conditions = conditions
        self.url = ""
        self.runner: web.AppRunner | None = None
        self.reviews = 0

    @staticmethod
    def refusal(name: str) -> str | None:
        """Why condition `name` cannot be had on the real control plane (None: it can)."""
        return NOT_ON_REAL.get(name)

    async def start(self) -> None:
        import ssl

        crt, key = self.ca.issue("webhook", "lab-webhook", server=True, ips=("127.0.0.1",))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(crt), str(key))
        app = web.Application()
        app.router.add_post("/{kind}", self._review)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # -- the webhook
    async def _review(self, request: web.Request) -> web.Response:
        self.reviews += 1
        review = await request.json()
        req = review.get("request") or {}
        denial = await self._denial(request.match_info["kind"], req)
        response: Obj = {"uid": req.get("uid", ""), "allowed": denial is None}
        if denial is not None:
            response["status"] = {"code": 403, "reason": "Forbidden", "message": denial}
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def _denial(self, kind: str, req: Obj) -> str | None:
        if kind == "probe":
            return PROBE_PREFIX + ",".join(sorted(self._wanted()))
        if kind == "pods" and self.conditions.is_active(DENY_HOST_NETWORK):
            spec = (req.get("object") or {}).get("spec") or {}
            return HOST_NETWORK_DENIAL if spec.get("hostNetwork") else None
        if kind == "content" and self.conditions.is_active(NAMESPACE_STUCK):
            namespace = req.get("namespace") or ""
            try:
                ns = await self.real.request("GET", f"/api/v1/namespaces/{namespace}")
            except RealApiError:
                return None
            if ns.get("metadata", {}).get("deletionTimestamp"):
                return f"the lab's condition {NAMESPACE_STUCK}: the content of a deleted namespace stays"
        return None

    # -- registration
    def _wanted(self) -> set[str]:
        return {n for n in (DENY_HOST_NETWORK, NAMESPACE_STUCK) if self.conditions.is_active(n)}

    def _entry(self, name: str, path: str, resource: str, operation: str, **extra: Any) -> Obj:
        return {
            "name": name,
            "clientConfig": {
                "url": f"{self.url}/{path}",
                "caBundle": base64.b64encode(self.ca.ca_pem).decode(),
            },
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": [operation],
                    "resources": [resource],
                    "scope": "Namespaced",
                }
            ],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
            **extra,
        }

    def _configuration(self, wanted: set[str]) -> Obj:
        hooks = [
            self._entry(
                PROBE_WEBHOOK,
                "probe",
                "configmaps",
                "CREATE",
                objectSelector={"matchLabels": {PROBE_LABEL: "true"}},
            )
        ]
        if DENY_HOST_NETWORK in wanted:
            hooks.append(self._entry(WEBHOOK_NAME, "pods", "pods", "CREATE"))
        if NAMESPACE_STUCK in wanted:
            hooks.append(self._entry(CONTENT_WEBHOOK, "content", "configmaps", "DELETE"))
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": CONFIG_NAME, "labels": {MANAGED_BY: "lab.netconform.io"}},
            "webhooks": hooks,
        }

    async def sync(self) -> None:
        """Register the webhooks the active conditions need and wait until the API server uses them."""
        wanted = self._wanted()
        if wanted:
            body = self._configuration(wanted)
            try:
                current = await self.real.request("GET", f"{CONFIG_PATH}/{CONFIG_NAME}")
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.real.request("PUT", f"{CONFIG_PATH}/{CONFIG_NAME}", body)
            except RealApiError as err:
                if err.status != 404:
                    raise
                await self.real.request("POST", CONFIG_PATH, body)
        else:
            try:
                await self.real.request("DELETE", f"{CONFIG_PATH}/{CONFIG_NAME}")
            except RealApiError as err:
                if err.status != 404:
                    raise
        await self._wait_applied(wanted)
        if NAMESPACE_STUCK not in wanted:
            await self._kick_terminating()

    async def _probe(self) -> str | None:
        """The API server's answer to a dry-run probe ConfigMap: the webhook's words, or None if allowed."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"generateName": "lab-webhook-probe-", "labels": {PROBE_LABEL: "true"}},
        }
        try:
            await self.real.request("POST", "/api/v1/namespaces/kube-system/configmaps?dryRun=All", body)
        except RealApiError as err:
            message = err.body.get("message", "") if isinstance(err.body, dict) else str(err.body)
            return message if PROBE_PREFIX in message else f"unexpected: {message}"
        return None

    async def _wait_applied(self, wanted: set[str]) -> None:
        expect = None if not wanted else PROBE_PREFIX + ",".join(sorted(wanted))
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        answer: str | None = "no answer yet"
        while time.monotonic() < deadline:
            answer = await self._probe()
            if (answer is None and expect is None) or (
                answer is not None and expect is not None and answer.endswith(expect)
            ):
                return
            await asyncio.sleep(0.1)  # polling the API server's webhook configuration, bounded above
        raise ConditionError(
            f"the API server did not apply the lab's webhooks within {SYNC_TIMEOUT_S:.0f} s "
            f"(wanted {sorted(wanted) or 'none'}, its last answer: {answer})"
        )

    async def _kick_terminating(self) -> None:
        """A namespace controller that failed backs off; an update of the namespace makes it retry now."""
        listing = await self.real.request("GET", "/api/v1/namespaces")
        for ns in listing.get("items", []):
            meta = ns["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            patch = {"metadata": {"annotations": {KICK_ANNOTATION: str(time.time())}}}
            try:
                await self.real.request(
                    "PATCH", f"/api/v1/namespaces/{meta['name']}", patch, "application/merge-patch+json"
                )
            except RealApiError as err:
                log.info("namespace %s not touched: %s", meta["name"], err)
