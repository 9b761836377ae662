"""The real Kubernetes control plane of a lab (`lab up --control-plane real`).

etcd, kube-apiserver, kube-controller-manager and kube-scheduler from the cache that `make control-plane`
fills (`~/.cache/netconform/control-plane/<version>/bin`, also the node agent), run as child processes
of the supervisor on 127.0.0.1 with throwaway ports. Each carries `NETCONFORM_LAB=<lab>` in its
environment, so `lab down` finds and stops them even after the supervisor died (`lab/control/procs.py`), and
logs to `<state>/logs/<component>.log`. Every start waits for the component's health endpoint with a
deadline.

The PKI is one CA per lab (`<state>/pki/ca.crt`): the API server's serving certificate, client
certificates for the admin (`system:masters`), the controller-manager, the scheduler, the API server's
kubelet client and each node (`system:node:NAME` in `system:nodes`), and each node agent's serving
certificate (for `localhost`, the address the API server dials: `--kubelet-preferred-address-types=Hostname`
with the Hostname address `localhost` and the node's own port in `daemonEndpoints`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from netconform.lab.control.ports import allocate
from netconform.lab.control.procs import MARKER
from netconform.lab.control.realaudit import POLICY as AUDIT_POLICY
from netconform.lab.control.realaudit import SUPERVISOR_USER
from netconform.lab.net.addressing import SERVICE_CIDR, node_ip, pod_cidr

log = logging.getLogger("netconform.lab.control.realcp")

K8S_VERSION = os.environ.get("NETCONFORM_K8S_VERSION", "v1.34.4")
GATEWAY_API_VERSION = os.environ.get("NETCONFORM_GATEWAY_API_VERSION", "v1.6.3")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "nodeagent")
START_TIMEOUT = 60.0
STOP_GRACE = 8.0
VALIDITY = datetime.timedelta(days=30)


def cache_bin_dir(version: str = K8S_VERSION) -> Path:
    root = os.environ.get("NETCONFORM_CONTROL_PLANE_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "netconform" / "control-plane" / version
    return base / "bin"


def gateway_api_dir(version: str = K8S_VERSION, gateway: str = GATEWAY_API_VERSION) -> Path:
    """The Gateway API's standard-channel CRDs that `make control-plane` caches next to the binaries."""
    return cache_bin_dir(version).parent / "gateway-api" / gateway


def missing_binaries(version: str = K8S_VERSION) -> list[str]:
    """The binaries `--control-plane real` needs that are not in the cache (empty: ready to run)."""
    bin_dir = cache_bin_dir(version)
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def missing_cache(version: str = K8S_VERSION) -> str | None:
    """One line saying what of the cache `make control-plane` fills is missing, or None."""
    if missing := missing_binaries(version):
        return f"{', '.join(missing)} in {cache_bin_dir(version)}"
    crds = gateway_api_dir(version)
    if not (crds / ".done").exists():
        return f"the Gateway API {GATEWAY_API_VERSION} CRDs in {crds}"
    return None


# ---------------------------------------------------------------------- PKI
class LabCA:
    """One EC P-256 CA per lab that signs every server and client certificate of the control plane."""

    def __init__(self, directory: Path, lab: str) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"netconform-lab-{lab}-ca"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netconform lab"),
            ]
        )
        self.name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now)
            .not_valid_after(self.now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.ca_path = directory / "ca.crt"
        self.ca_path.write_bytes(self.ca_pem)
        _write_secret(directory / "ca.key", _key_pem(self.key))

    def issue(
        self,
        stem: str,
        cn: str,
        *,
        orgs: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        """Writes `<stem>.crt` and `<stem>.key` (0600); returns their paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now)
            .not_valid_after(self.now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        crt, keyp = self.dir / f"{stem}.crt", self.dir / f"{stem}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_secret(keyp, _key_pem(key))
        return crt, keyp


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def client_kubeconfig(server: str, ca_pem: bytes, user: str, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "lab",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": user}}],
        "current-context": "lab",
    }


# ---------------------------------------------------------------------- processes
@dataclass
class Component:
    name: str
    argv: list[str]
    health: str  # https/http URL polled until it answers 200 "ok"-ish
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0
    ready_s: float = 0.0


@dataclass
class ControlPlane:
    """The processes of one lab's real control plane; `start()` blocks until all four are healthy."""

    lab: str
    state_dir: Path
    nodes: list[str]
    version: str = K8S_VERSION
    components: list[Component] = field(default_factory=list)
    agents: dict[str, Component] = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: secrets.token_hex(24))
    viewer_token: str = field(default_factory=lambda: secrets.token_hex(24))

    def __post_init__(self) -> None:
        self.bin = cache_bin_dir(self.version)
        self.pki = self.state_dir / "pki"
        self.logs = self.state_dir / "logs"
        self.audit_log = self.logs / "audit.log"
        # the API server, one per node agent, then etcd (client, peer), controller-manager, scheduler
        ports = allocate(self.state_dir, 1 + len(self.nodes) + 4)
        self.api_port = ports[0]
        self.url = f"https://127.0.0.1:{self.api_port}"
        self.agent_ports = dict(zip(self.nodes, ports[1 : 1 + len(self.nodes)], strict=True))
        self.etcd_port, self.etcd_peer_port, self.kcm_port, self.sched_port = ports[1 + len(self.nodes) :]
        self.timings: dict[str, float] = {}

    # -- setup
    def prepare(self) -> None:
        missing = missing_cache(self.version)
        if missing:
            raise RuntimeError(f"the real control plane needs {missing}: run `make control-plane`")
        self.logs.mkdir(parents=True, exist_ok=True)
        ca = LabCA(self.pki, self.lab)
        self.ca = ca
        ca.issue("apiserver", "kube-apiserver", server=True, dns=("localhost", "kubernetes",
                 "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
                 ips=("127.0.0.1", "10.96.0.1"))  # fmt: skip
        self.admin_cert = ca.issue("admin", "lab-admin", orgs=("system:masters",), client=True)
        # the supervisor's own identity: its mirror, status and event requests stay out of the audit log
        self.supervisor_cert = ca.issue("supervisor", SUPERVISOR_USER, orgs=("system:masters",), client=True)
        (self.pki / "audit-policy.yaml").write_text(json.dumps(AUDIT_POLICY))  # JSON is YAML
        ca.issue("kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",), client=True)
        sa_key = ec.generate_private_key(ec.SECP256R1())
        _write_secret(self.pki / "sa.key", _key_pem(sa_key))
        (self.pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        tokens = self.pki / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},lab-admin,lab-admin-uid,"system:masters"\n'
            f'{self.viewer_token},viewer,viewer-uid,"lab:viewers"\n'
        )
        os.chmod(tokens, 0o600)
        for stem, user in (
            ("controller-manager", "system:kube-controller-manager"),
            ("scheduler", "system:kube-scheduler"),
        ):
            crt, key = ca.issue(stem, user, client=True)
            self._write_kubeconfig(stem, user, crt, key)
        self._write_kubeconfig("admin", "lab-admin", *self.admin_cert)
        for node in self.nodes:
            crt, key = ca.issue(f"node-{node}", f"system:node:{node}", orgs=("system:nodes",), client=True)
            self._write_kubeconfig(f"node-{node}", f"system:node:{node}", crt, key)
            ca.issue(f"kubelet-{node}", node, server=True, dns=("localhost", node), ips=("127.0.0.1",))
        self._define()

    def _write_kubeconfig(self, stem: str, user: str, crt: Path, key: Path) -> None:
        path = self.pki / f"{stem}.kubeconfig"
        path.write_text(yaml.safe_dump(client_kubeconfig(self.url, self.ca.ca_pem, user, crt, key)))
        os.chmod(path, 0o600)

    def kubeconfig_path(self, stem: str) -> Path:
        return self.pki / f"{stem}.kubeconfig"

    def _define(self) -> None:
        b, p = self.bin, self.pki
        etcd_port, etcd_peer = self.etcd_port, self.etcd_peer_port
        kcm_port, sched_port = self.kcm_port, self.sched_port
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        data = self.state_dir / "etcd"
        self.components = [
            Component(
                "etcd",
                [
                    str(b / "etcd"),
                    f"--name=lab-{self.lab}",
                    f"--data-dir={data}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-cluster=lab-{self.lab}=http://127.0.0.1:{etcd_peer}",
                    "--unsafe-no-fsync",  # a throwaway lab: durability is not wanted, speed is
                    "--log-level=warn",
                ],
                f"{etcd_url}/health",
            ),
            Component(
                "kube-apiserver",
                [
                    str(b / "kube-apiserver"),
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.api_port}",
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={p}",
                    f"--tls-cert-file={p / 'apiserver.crt'}",
                    f"--tls-private-key-file={p / 'apiserver.key'}",
                    f"--client-ca-file={p / 'ca.crt'}",
                    f"--token-auth-file={p / 'tokens.csv'}",
                    f"--service-account-key-file={p / 'sa.pub'}",
                    f"--service-account-signing-key-file={p / 'sa.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--authorization-mode=Node,RBAC",
                    "--enable-admission-plugins=NodeRestriction,PodSecurity",
                    "--allow-privileged=true",
                    f"--kubelet-client-certificate={p / 'kubelet-client.crt'}",
                    f"--kubelet-client-key={p / 'kubelet-client.key'}",
                    f"--kubelet-certificate-authority={p / 'ca.crt'}",
                    "--kubelet-preferred-address-types=Hostname",
                    "--profiling=false",
                    f"--audit-policy-file={p / 'audit-policy.yaml'}",
                    f"--audit-log-path={self.audit_log}",
                    "--audit-log-format=json",
                    "--audit-log-mode=blocking",
                    "--v=1",
                ],
                f"{self.url}/readyz",
            ),
            Component(
                "kube-controller-manager",
                [
                    str(b / "kube-controller-manager"),
                    f"--kubeconfig={p / 'controller-manager.kubeconfig'}",
                    f"--authentication-kubeconfig={p / 'controller-manager.kubeconfig'}",
                    f"--authorization-kubeconfig={p / 'controller-manager.kubeconfig'}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={kcm_port}",
                    f"--cert-dir={p / 'kcm'}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={p / 'sa.key'}",
                    f"--root-ca-file={p / 'ca.crt'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                    "--concurrent-service-endpoint-syncs=5",
                    "--v=1",
                ],
                f"https://127.0.0.1:{kcm_port}/healthz",
            ),
            Component(
                "kube-scheduler",
                [
                    str(b / "kube-scheduler"),
                    f"--kubeconfig={p / 'scheduler.kubeconfig'}",
                    f"--authentication-kubeconfig={p / 'scheduler.kubeconfig'}",
                    f"--authorization-kubeconfig={p / 'scheduler.kubeconfig'}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={sched_port}",
                    f"--cert-dir={p / 'scheduler'}",
                    "--leader-elect=false",
                    "--v=1",
                ],
                f"https://127.0.0.1:{sched_port}/healthz",
            ),
        ]

    def agent_component(self, node: str, bridge_socket: Path, taints: str) -> Component:
        p = self.pki
        port = self.agent_ports[node]
        return Component(
            f"nodeagent-{node}",
            [
                str(self.bin / "nodeagent"),
                f"-node={node}",
                f"-kubeconfig={p / f'node-{node}.kubeconfig'}",
                f"-listen=127.0.0.1:{port}",
                f"-tls-cert={p / f'kubelet-{node}.crt'}",
                f"-tls-key={p / f'kubelet-{node}.key'}",
                f"-client-ca={p / 'ca.crt'}",
                f"-bridge={bridge_socket}",
                f"-internal-ip={node_ip(node)}",
                f"-pod-cidr={pod_cidr(node)}",
                "-hostname-address=localhost",
                f"-taints={taints}",
                f"-kubelet-version={self.version}",
            ],
            f"https://127.0.0.1:{port}/healthz",  # not polled: readiness is the Node's Ready condition
        )

    # -- lifecycle
    def _spawn(self, comp: Component) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.state_dir),
            MARKER: self.lab,  # lab/control/procs.py finds these after a crash
        }
        logf = (self.logs / f"{comp.name}.log").open("ab")
        comp.started_s = time.monotonic()
        comp.proc = subprocess.Popen(
            comp.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env, cwd=str(self.state_dir)
        )
        logf.close()

    def _wait_healthy(self, comp: Component, deadline: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if comp.name == "kube-apiserver":
            ctx.load_cert_chain(*self.supervisor_cert)
        elif comp.health.startswith("https") and comp.name != "kube-apiserver":
            ctx = ssl._create_unverified_context()  # self-signed cert of its own cert-dir, on loopback
        last = "no answer"
        while time.monotonic() < deadline:
            assert comp.proc is not None
            if comp.proc.poll() is not None:
                raise RuntimeError(
                    f"{comp.name} exited with {comp.proc.returncode}: {self.log_tail(comp.name)}"
                )
            try:
                kwargs: dict[str, Any] = {"timeout": 2}
                if comp.health.startswith("https"):
                    kwargs["context"] = ctx
                with urllib.request.urlopen(comp.health, **kwargs) as resp:
                    if resp.status == 200:
                        comp.ready_s = time.monotonic() - comp.started_s
                        self.timings[comp.name] = round(comp.ready_s, 2)
                        return
            except (urllib.error.URLError, OSError, ValueError) as err:
                last = str(err)
            time.sleep(0.1)  # polling the component's health endpoint, bounded by the deadline
        raise RuntimeError(f"{comp.name} not healthy within {START_TIMEOUT:.0f} s ({last})")

    def log_tail(self, name: str, lines: int = 3) -> str:
        try:
            text = (self.logs / f"{name}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:]) or "empty log"

    def start(self) -> None:
        """etcd, then the API server; the controller-manager and scheduler after `/readyz`."""
        deadline = time.monotonic() + START_TIMEOUT
        etcd, api, kcm, sched = self.components
        for comp in (etcd, api):
            self._spawn(comp)
            self._wait_healthy(comp, deadline)
        self._spawn(kcm)
        self._spawn(sched)
        for comp in (kcm, sched):
            self._wait_healthy(comp, deadline)
        log.info("control plane ready: %s", json.dumps(self.timings))

    def start_agent(self, comp: Component) -> None:
        self.agents[comp.name] = comp
        self._spawn(comp)

    def pids(self) -> list[int]:
        procs = [c.proc for c in [*self.components, *self.agents.values()] if c.proc is not None]
        return [p.pid for p in procs if p.poll() is None]

    def stop(self) -> None:
        """Node agents first, then scheduler, controller-manager, API server, etcd (SIGTERM, then SIGKILL)."""
        order = [*self.agents.values(), *reversed(self.components)]
        for comp in order:
            if comp.proc is not None and comp.proc.poll() is None:
                comp.proc.terminate()
        for comp in order:
            if comp.proc is None:
                continue
            try:
                comp.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                comp.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    comp.proc.wait(timeout=2)
