"""A real Kubernetes control plane on loopback, with simulated GPU nodes, for tests and demos.

Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the
binaries that ``hack/build-tools.sh`` built from Go modules, then registers KWOK nodes that
advertise ``nvidia.com/gpu`` capacity. Used two ways:

* ``python hack/localcluster.py up`` (what ``make cluster`` runs): starts everything detached,
  writes ``<dir>/kubeconfig`` and ``<dir>/pids.json`` and prints the kubeconfig path;
  ``python hack/localcluster.py down`` stops what ``up`` started, by pid.
* ``LocalCluster(...)`` from the pytest fixtures in ``tests/conftest.py``, which stop every
  process they started even after a failed test and keep the component logs.

Decisions, so the next engineer need not rediscover them:

* Authentication is a static token for the admin user (``system:masters``), written to a
  token file. Simple for a harness; production clusters use certificates or OIDC. The
  serving certificate is signed by a throw-away CA, so clients verify TLS for real.
* Pod Security admission is on (the default in the API server); namespaces opt in with the
  usual ``pod-security.kubernetes.io/enforce`` label. RBAC is on (``Node,RBAC``), so a
  ServiceAccount's token sees only what its Roles grant. ``OwnerReferencesPermissionEnforcement``
  is on too, as in OpenShift: an owner reference with ``blockOwnerDeletion`` needs ``update`` on
  the owner's ``finalizers``, so a Role that forgets it fails the tests as it would there.
* Node labels: ``cloud.google.com/gke-accelerator`` carries the GPU type (GKE's label, since
  the product targets GKE and GCS), ``nvidia.com/gpu.present=true`` marks GPU nodes, and GPU
  nodes carry the ``nvidia.com/gpu=present:NoSchedule`` taint that GPU node pools usually have.
* Pod lifecycle: see ``hack/kwok/stages.yaml``: pods run until annotated with
  ``kwok.stylegan.dev/exit-code``.

Only the standard library is used, so the launcher runs before the project's venv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HACK = Path(__file__).resolve().parent
DEFAULT_CACHE = Path(os.environ.get("STYLEGAN_CACHE", Path.home() / ".cache" / "stylegan-operator"))
ADMIN_TOKEN = "stylegan-local-admin-token"
GPU_TYPE_LABEL = "cloud.google.com/gke-accelerator"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class NodePool:
    """A group of identical simulated nodes."""

    name: str  # node name prefix, e.g. "v100"
    count: int
    gpu_type: str | None  # label value, e.g. "nvidia-tesla-v100"; None for CPU-only nodes
    gpus: int = 8
    cpu: str = "96"
    memory: str = "768Gi"


# 12 V100 nodes so the FFHQ 1024 example (8 nodes x 8 V100) runs as shipped even while other
# tests' pods are still draining; simulated nodes cost nothing.
DEFAULT_POOLS: tuple[NodePool, ...] = (
    NodePool("v100", 12, "nvidia-tesla-v100", gpus=8),
    NodePool("a100", 4, "nvidia-tesla-a100", gpus=8),
    NodePool("cpu", 2, None, gpus=0, cpu="16", memory="64Gi"),
)


class ClusterError(RuntimeError):
    """A component failed to start or to become ready; the message names it and its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_bin_dir() -> Path:
    """The folder with the Go-built binaries, building them first when missing."""
    bin_dir = Path(os.environ.get("STYLEGAN_BIN", DEFAULT_CACHE / "bin"))
    needed = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
    if not all((bin_dir / b).exists() for b in needed):
        subprocess.run([str(HACK / "build-tools.sh")], check=True)
    missing = [b for b in needed if not (bin_dir / b).exists()]
    if missing:
        raise ClusterError(f"binaries missing from {bin_dir}: {', '.join(missing)}")
    return bin_dir


def node_manifest(pool: NodePool, index: int) -> dict:
    name = f"{pool.name}-{index}"
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": f"sim-{pool.name}",
    }
    capacity = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110"}
    taints = []
    if pool.gpu_type:
        labels[GPU_TYPE_LABEL] = pool.gpu_type
        labels[GPU_PRESENT_LABEL] = "true"
        capacity["nvidia.com/gpu"] = str(pool.gpus)
        taints.append(GPU_TAINT)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": dict(KWOK_ANNOTATION)},
        "spec": {"taints": taints},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


@dataclass
class LocalCluster:
    """One control plane in ``workdir``; ``start()`` then ``stop()`` (or use as a context)."""

    workdir: Path
    pools: tuple[NodePool, ...] = DEFAULT_POOLS
    bin_dir: Path | None = None
    detach: bool = False  # survive this Python process (make cluster)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)

    # -- paths ---------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> LocalCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        bin_dir = self.bin_dir or find_bin_dir()
        self.ports = {
            k: free_port() for k in ("etcd", "etcd_peer", "apiserver", "kcm", "sched", "kwok")
        }
        pki = self._make_pki()
        self._write_kubeconfig(pki["ca.crt"])
        try:
            self._start_etcd(bin_dir)
            self._wait("etcd", self._etcd_healthy, timeout)
            self._start_apiserver(bin_dir, pki)
            self._wait("kube-apiserver", lambda: self._get("/readyz") == 200, timeout)
            self._start_controllers(bin_dir, pki)
            self._start_kwok(bin_dir)
            self._register_nodes()
            self._wait("kube-controller-manager", self._default_sa_exists, timeout)
            self._wait("kwok", self._nodes_ready, timeout)
            self._wait("kube-scheduler", lambda: self._lease_held("kube-scheduler"), timeout,
                       optional=True)
        except BaseException:
            self.stop()
            raise
        (self.workdir / "pids.json").write_text(json.dumps(
            {"pids": self.pids, "ports": self.ports, "kubeconfig": str(self.kubeconfig)}, indent=2))
        return self

    def stop(self) -> None:
        """Stop every process this cluster started, newest first; SIGKILL after 10 s."""
        for name in reversed(list(self.pids)):
            _terminate(self.pids[name], self.procs.get(name))
        self.pids.clear()
        self.procs.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.workdir / "pids.json").unlink()

    def restart(self, name: str, *, kill: bool = True, timeout: float = 90.0) -> None:
        """Stop one component (SIGKILL when ``kill``, as a crash; else SIGTERM) and start it
        again on the same ports with the same flags and, for etcd, the same data: the
        fault tests' way of losing the API server or etcd under a running operator."""
        if name not in self.argv:
            raise ClusterError(f"{name}: not a component of this cluster ({sorted(self.argv)})")
        pid, proc = self.pids[name], self.procs.get(name)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if proc is not None:
                proc.wait(timeout=10)
        else:
            _terminate(pid, proc)
        self._spawn(name, self.argv[name])
        probes = {"etcd": self._etcd_healthy,
                  "kube-apiserver": lambda: self._get("/readyz") == 200}
        if name in probes:
            self._wait(name, probes[name], timeout)
        if name == "etcd":  # the API server answers again once its etcd client reconnects
            self._wait("kube-apiserver", lambda: self._get("/readyz") == 200, timeout)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- components ----------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.workdir, start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        self.pids[name] = proc.pid
        self.argv[name] = argv

    def _start_etcd(self, bin_dir: Path) -> None:
        p = self.ports
        data = self.workdir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)
        self._spawn("etcd", [
            str(bin_dir / "etcd"), "--name=local", f"--data-dir={data}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=local=http://127.0.0.1:{p['etcd_peer']}",
            "--unsafe-no-fsync=true",  # a throw-away cluster: speed over durability
            "--quota-backend-bytes=2147483648", "--log-level=warn",
        ])

    def _start_apiserver(self, bin_dir: Path, pki: dict[str, Path]) -> None:
        p = self.ports
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{ADMIN_TOKEN},admin,admin-uid,system:masters\n")
        self._spawn("kube-apiserver", [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            "--bind-address=127.0.0.1", f"--secure-port={p['apiserver']}",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki['apiserver.crt']}",
            f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",
            # As OpenShift: setting blockOwnerDeletion needs update on the owner's finalizers,
            # which the operator's RBAC must then grant (manifests/rbac).
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki['sa.pub']}",
            f"--service-account-signing-key-file={pki['sa.key']}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",  # loopback cannot back the kubernetes Service
            "--profiling=false",
            f"--cert-dir={self.workdir / 'pki'}",
        ])

    def _start_controllers(self, bin_dir: Path, pki: dict[str, Path]) -> None:
        p = self.ports
        self._spawn("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki['sa.key']}",
            f"--root-ca-file={pki['ca.crt']}",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1", f"--secure-port={p['kcm']}",
            "--controllers=*,-nodeipam,-service,-route,-cloud-node-lifecycle",
            "--node-monitor-grace-period=40s",
            "--terminated-pod-gc-threshold=500",
            "--concurrent-gc-syncs=5",
        ])
        self._spawn("kube-scheduler", [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=true",  # a Lease we can wait on to know it is up
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['sched']}",
        ])

    def _start_kwok(self, bin_dir: Path) -> None:
        self._spawn("kwok", [
            str(bin_dir / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--config={HACK / 'kwok' / 'stages.yaml'}",
            "--cidr=10.244.0.0/16", "--node-ip=10.0.0.2",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{self.ports['kwok']}",
        ])

    # -- set-up helpers ------------------------------------------------------------------
    def _make_pki(self) -> dict[str, Path]:
        d = self.workdir / "pki"
        d.mkdir(exist_ok=True)

        def ssl_(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

        if not (d / "apiserver.crt").exists():
            ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.crt", "-days", "3650", "-subj", "/CN=stylegan-local-ca")
            ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key",
                 "-out", "apiserver.csr", "-subj", "/CN=kube-apiserver")
            (d / "san.ext").write_text(
                "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
                "DNS:kubernetes.default,DNS:kubernetes.default.svc\n")
            ssl_("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "apiserver.crt", "-days", "3650",
                 "-extfile", "san.ext")
            ssl_("genrsa", "-out", "sa.key", "2048")
            ssl_("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        return {n: d / n for n in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key",
                                   "sa.key", "sa.pub")}

    def _write_kubeconfig(self, ca: Path) -> None:
        # JSON is valid YAML, so kubectl, kopf and the Python client all read this.
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "stylegan-local",
            "clusters": [{"name": "stylegan-local", "cluster": {
                "server": f"https://127.0.0.1:{self.ports['apiserver']}",
                "certificate-authority": str(ca)}}],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": "stylegan-local", "context": {
                "cluster": "stylegan-local", "user": "admin", "namespace": "default"}}],
        }
        self.kubeconfig.write_text(json.dumps(cfg, indent=2))
        self.kubeconfig.chmod(0o600)

    def _register_nodes(self) -> None:
        for pool in self.pools:
            for i in range(pool.count):
                self._register_node(pool, i)

    def _register_node(self, pool: NodePool, index: int) -> None:
        node = node_manifest(pool, index)
        status = node.pop("status")
        code, _ = self.request("POST", "/api/v1/nodes", node)
        if code not in (201, 409):
            raise ClusterError(f"creating node {node['metadata']['name']}: HTTP {code}")
        self._patch_node_status(node["metadata"]["name"], status)

    def restore_node(self, name: str) -> None:
        """Register a node of the pools again (after a test deleted it), as at start-up."""
        for pool in self.pools:
            for i in range(pool.count):
                if f"{pool.name}-{i}" == name:
                    self._register_node(pool, i)
                    return
        raise ClusterError(f"{name}: no node of that name in the pools")

    def _patch_node_status(self, name: str, status: dict) -> None:
        # kwok's node-ready stage copies the capacity it finds into the Ready status.
        self.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": status},
                     content_type="application/merge-patch+json")

    # -- readiness probes ----------------------------------------------------------------
    def _wait(self, name: str, probe, timeout: float, optional: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ClusterError(
                    f"{name} exited with {proc.returncode}; log: {self.log_dir / (name + '.log')}\n"
                    + self.tail_log(name))
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError, KeyError):
                if probe():
                    return
            time.sleep(0.2)
        if not optional:
            raise ClusterError(f"{name} not ready after {timeout:.0f}s; log: "
                               f"{self.log_dir / (name + '.log')}\n" + self.tail_log(name))

    def _etcd_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['etcd']}/health"
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")

    def _default_sa_exists(self) -> bool:
        return self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200

    def _nodes_ready(self) -> bool:
        code, body = self.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
        if code != 200:
            return False
        items = body.get("items", [])
        want = sum(p.count for p in self.pools)
        ready = [n for n in items if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", []))]
        # The stage can fire between the node's creation and its capacity patch and then
        # write the Ready status without capacity (the scheduler then sees 0 CPUs: seen once
        # on the CPU nodes). Once Ready the stage no longer fires, so patching again sticks.
        empty = [n["metadata"]["name"] for n in ready if not n["status"].get("allocatable")]
        for name in empty:
            pool_name, index = name.rsplit("-", 1)
            pool = next(p for p in self.pools if p.name == pool_name)
            self._patch_node_status(name, node_manifest(pool, int(index))["status"])
        return len(ready) == want and not empty

    def _lease_held(self, name: str) -> bool:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}"
        return self._get(path) == 200

    # -- a tiny API client (stdlib only) -------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.workdir / "pki" / "ca.crt"))

    def request(self, method: str, path: str, body: dict | None = None,
                content_type: str = "application/json") -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": content_type,
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=10) as r:
                return r.status, _json_or_empty(r.read())
        except urllib.error.HTTPError as e:
            return e.code, _json_or_empty(e.read())

    def _get(self, path: str) -> int:
        return self.request("GET", path)[0]

    # -- diagnostics ---------------------------------------------------------------------
    def tail_log(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _json_or_empty(raw: bytes) -> dict:
    """Health endpoints answer plain text ("ok"); everything else answers JSON."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _terminate(pid: int, proc: subprocess.Popen | None = None, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    return True


@contextlib.contextmanager
def running_cluster(workdir: Path, **kwargs) -> Iterator[LocalCluster]:
    cluster = LocalCluster(workdir=workdir, **kwargs)
    with cluster:
        yield cluster


def _parse_pools(spec: str | None) -> tuple[NodePool, ...]:
    """``--nodes v100=4,a100=4,cpu=2``: node counts per pool (GPU types as in DEFAULT_POOLS)."""
    if not spec:
        return DEFAULT_POOLS
    by_name = {p.name: p for p in DEFAULT_POOLS}
    pools = []
    for part in spec.split(","):
        name, _, count = part.partition("=")
        if name not in by_name or not count.isdigit():
            raise SystemExit(f"--nodes: expected NAME=COUNT with NAME in {sorted(by_name)}, "
                             f"got {part!r}")
        base = by_name[name]
        pools.append(NodePool(base.name, int(count), base.gpu_type, base.gpus, base.cpu,
                              base.memory))
    return tuple(pools)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["up", "down", "status"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_CACHE / "cluster",
                    help="state folder: kubeconfig, logs/, pids.json")
    ap.add_argument("--nodes", help="node counts per pool, e.g. v100=4,a100=4,cpu=2")
    args = ap.parse_args(argv)
    pids_file = args.dir / "pids.json"
    if args.action in ("down", "up") and pids_file.exists():
        state = json.loads(pids_file.read_text())
        for name in reversed(COMPONENTS):
            if name in state["pids"]:
                _terminate(state["pids"][name])
        pids_file.unlink()
        if args.action == "down":
            print(f"stopped the cluster in {args.dir}")
            return 0
    if args.action == "down":
        print(f"no cluster running in {args.dir}")
        return 0
    if args.action == "status":
        if not pids_file.exists():
            print("down")
            return 1
        state = json.loads(pids_file.read_text())
        alive = {n: _alive(p) for n, p in state["pids"].items()}
        print(json.dumps({"kubeconfig": state["kubeconfig"], "alive": alive}, indent=2))
        return 0 if all(alive.values()) else 1
    t0 = time.monotonic()
    cluster = LocalCluster(workdir=args.dir, pools=_parse_pools(args.nodes), detach=True)
    try:
        cluster.start()
    except ClusterError as exc:
        print(f"cluster failed to start: {exc}", file=sys.stderr)
        return 1
    print(f"# cluster up in {time.monotonic() - t0:.1f}s; logs in {cluster.log_dir}",
          file=sys.stderr)
    print("# stop it with: make cluster-down", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
