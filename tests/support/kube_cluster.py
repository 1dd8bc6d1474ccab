"""Test fixture `kube_cluster`: a real control plane on loopback (etcd, kube-apiserver, kube-controller-manager
built by tests/support/kube_cluster_build.sh) with RBAC, plus a fake kubelet that plays the pods.

One per session: the three processes take ~4 s to become ready and ~500 MB. The tests' namespace holds a
ServiceAccount bound to exactly the Role the README documents, and the app talks to the cluster with that
account's token, so RBAC is real. Nothing runs containers here: the fake kubelet binds each pod to its node,
runs each of the pod's containers at once as a local process, reports the pod Running then Succeeded or
Failed, and serves each container's log over HTTPS for the apiserver's log proxy. As a kubelet would, it
gives each container its own environment (its Secret references resolved) and, through bubblewrap, its own
user (runAsUser), its own process namespace (it sees no other container's processes), a read-only root and
only its own volumeMounts (each emptyDir a temporary directory, shared by the containers that mount it).
The network is the host's. NetworkPolicies are stored and validated but not enforced (no network plugin).
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tests" / "support" / "kube_cluster_build.sh"
BIN_DIR = Path(os.environ.get("KUBE_TEST_BIN_DIR") or Path.home() / ".cache" / "draftsmith-kube" / "v1.20.2")
NAMESPACE = "draftsmith-runs"
NODE = "fake-node"
DRAFTSMITH = Path(sys.executable).parent / "draftsmith"


def binaries_missing() -> str | None:
    """Why the cluster cannot start here, or None."""
    missing = [str(BIN_DIR / b) for b in ("kube-apiserver", "kube-controller-manager") if not (BIN_DIR / b).exists()]
    if shutil.which("etcd") is None:
        missing.append("etcd (Debian's etcd-server)")
    if missing:
        return (f"no Kubernetes test binaries ({', '.join(missing)}); "
                f"build them with `bash {BUILD_SCRIPT.relative_to(ROOT)}`")
    return None


def readme_rbac() -> list[dict]:
    """The ServiceAccount, Role and RoleBinding exactly as the README's Kubernetes section gives them."""
    readme = (ROOT / "README.md").read_text()
    [block] = re.findall(r"<!-- kubernetes-rbac -->\n```yaml\n(.*?)```", readme, re.S)
    return [doc for doc in yaml.safe_load_all(block) if doc]


# -- certificates -----------------------------------------------------------------------------------------
def _certificates(directory: Path) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_key(k, name):
        path = directory / name
        path.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        return path

    def write_cert(c, name):
        path = directory / name
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "draftsmith-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def serving(name: str):
        k = key()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_name).public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("10.96.0.1"))]),
                    critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert, k

    api_cert, api_key = serving("kube-apiserver")
    kubelet_cert, kubelet_key = serving(NODE)
    sa_key = key()
    return {
        "ca": write_cert(ca, "ca.crt"),
        "apiserver_cert": write_cert(api_cert, "apiserver.crt"), "apiserver_key": write_key(api_key, "apiserver.key"),
        "kubelet_cert": write_cert(kubelet_cert, "kubelet.crt"), "kubelet_key": write_key(kubelet_key, "kubelet.key"),
        "sa_key": write_key(sa_key, "sa.key"),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kubeconfig(path: Path, server: str, ca: Path, token: str, namespace: str = "default") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
    }))
    path.chmod(0o600)
    return path


# -- the fake kubelet -------------------------------------------------------------------------------------
Player = Callable[[dict], list[str] | None]


@dataclass
class _Container:
    log: Path
    process: subprocess.Popen | None = None
    done: threading.Event = field(default_factory=threading.Event)
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})


@dataclass
class _Played:
    """A pod being played; `process`, `log` and `done` are its first container's (the runner's)."""

    process: subprocess.Popen | None
    log: Path
    done: threading.Event = field(default_factory=threading.Event)
    containers: dict[str, _Container] = field(default_factory=dict)


class FakeKubelet:
    """One Node that binds pods (honouring nodeSelector), runs each pod's containers as local processes and
    reports its phase, and serves `GET /containerLogs/{ns}/{pod}/{container}` (with `follow`) over HTTPS."""

    def __init__(self, core, certs: dict[str, Path], workdir: Path, labels: dict[str, str] | None = None) -> None:
        self.core = core
        self.workdir = workdir
        self.labels = {"kubernetes.io/hostname": NODE, **(labels or {})}
        # A test may play a pod differently: return an argv to run instead of its first container's command.
        self.players: list[Player] = []
        self.played: dict[tuple[str, str], _Played] = {}
        self.extra_env: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.port = _free_port()
        self._server = self._log_server(certs)
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True, name="kubelet-logs"),
                         threading.Thread(target=self._heartbeat, daemon=True, name="kubelet-heartbeat"),
                         threading.Thread(target=self._loop, daemon=True, name="kubelet-pods")]

    def start(self) -> None:
        from kubernetes import client

        self.core.create_node(client.V1Node(
            metadata=client.V1ObjectMeta(name=NODE, labels=self.labels),
            status=client.V1NodeStatus(
                addresses=[client.V1NodeAddress(type="InternalIP", address="127.0.0.1")],
                daemon_endpoints=client.V1NodeDaemonEndpoints(kubelet_endpoint=client.V1DaemonEndpoint(port=self.port)),
                capacity={"cpu": "64", "memory": "256Gi", "pods": "500", "ephemeral-storage": "1Ti"},
                allocatable={"cpu": "64", "memory": "256Gi", "pods": "500", "ephemeral-storage": "1Ti"})))
        self._report_ready()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        with self._lock:
            for played in self.played.values():
                _kill_pod(played)

    # node status
    def _report_ready(self) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.core.patch_node_status(NODE, {"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet",
             "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}}}},
            _content_type="application/strategic-merge-patch+json")

    def _heartbeat(self) -> None:
        while not self._stop.wait(10):
            try:
                self._report_ready()
            except Exception:  # the apiserver may be restarting; the next beat tries again
                pass

    # pods
    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                pods = self.core.list_pod_for_all_namespaces(_request_timeout=10).items
            except Exception:
                continue
            for pod in pods:
                try:
                    self._handle(pod)
                except Exception:
                    pass

    def _handle(self, pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        if pod.metadata.deletion_timestamp is not None:
            with self._lock:
                played = self.played.get(key)
            if played:
                _kill_pod(played)
            self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
            return
        if not pod.spec.node_name:
            wanted = pod.spec.node_selector or {}
            if all(self.labels.get(k) == v for k, v in wanted.items()):
                from kubernetes import client

                self.core.create_namespaced_binding(pod.metadata.namespace, client.V1Binding(
                    metadata=client.V1ObjectMeta(name=pod.metadata.name),
                    target=client.V1ObjectReference(kind="Node", name=NODE, api_version="v1")), _preload_content=False)
            return
        if pod.spec.node_name != NODE or pod.status.phase not in (None, "Pending"):
            return
        with self._lock:
            if key in self.played:
                return
            self.played[key] = _Played(None, self.workdir / f"{key[0]}-{key[1]}.log")
        threading.Thread(target=self._play, args=(pod,), daemon=True, name=f"pod-{key[1]}").start()

    def _resolve_env(self, pod, container) -> dict[str, str] | None:
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **self.extra_env}
        for var in container.env or []:
            if var.value_from is None:
                env[var.name] = var.value or ""
                continue
            ref = var.value_from.secret_key_ref
            try:
                found = self.core.read_namespaced_secret(ref.name, pod.metadata.namespace)
            except Exception:
                return None  # as a kubelet does: CreateContainerConfigError until the Secret exists
            if not found.data or ref.key not in found.data:
                return None
            env[var.name] = base64.b64decode(found.data[ref.key]).decode()
        return env

    def _play(self, pod) -> None:
        key = (pod.metadata.namespace, pod.metadata.name)
        played = self.played[key]
        volumes = {}
        for volume in pod.spec.volumes or []:
            volumes[volume.name] = self.workdir / f"{key[1]}-{volume.name}"
            volumes[volume.name].mkdir(parents=True, exist_ok=True)
        first, *_rest = pod.spec.containers
        for container in pod.spec.containers:
            log = played.log if container is first else self.workdir / f"{key[0]}-{key[1]}-{container.name}.log"
            played.containers[container.name] = _Container(log)
        argv = next((argv for player in self.players if (argv := player(pod.to_dict()))), None)
        threads = [threading.Thread(target=self._play_container, args=(pod, played, container, volumes,
                                                                      argv if container is first else None),
                                    daemon=True, name=f"pod-{key[1]}-{container.name}")
                   for container in pod.spec.containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = [c.state["terminated"]["exitCode"] for c in played.containers.values()]
        played.done.set()
        self._status(pod, played, "Succeeded" if all(code == 0 for code in codes) else "Failed")

    def _play_container(self, pod, played: _Played, container, volumes: dict[str, Path],
                        argv: list[str] | None) -> None:
        mine = played.containers[container.name]
        for _ in range(100):
            env = self._resolve_env(pod, container)
            if env is not None or self._stop.is_set():
                break
            time.sleep(0.1)
        if argv is None:
            argv = [str(DRAFTSMITH) if container.command[0] == "draftsmith" else container.command[0],
                    *container.command[1:], *(container.args or [])]
        contexts = [container.security_context, pod.spec.security_context]
        uid = next((c.run_as_user for c in contexts if c and c.run_as_user is not None), 0)
        gid = next((c.run_as_group for c in contexts if c and c.run_as_group is not None), 0)
        mounts = {m.mount_path: volumes[m.name] for m in container.volume_mounts or []}
        started = _now()
        with open(mine.log, "wb") as log:
            process = subprocess.Popen(
                _isolated(argv, mounts, container.working_dir or "/", uid, gid, self.workdir),
                env=env or {}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            mine.process = process
            if played.process is None and mine.log == played.log:
                played.process = process
            mine.state = {"running": {"startedAt": started}}
            self._status(pod, played, "Running")
            code = process.wait()
        mine.state = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                     "startedAt": started, "finishedAt": _now()}}
        mine.done.set()
        if not played.done.is_set():
            self._status(pod, played, "Running")

    def _status(self, pod, played: _Played, phase: str) -> None:
        with self._lock:  # both containers' threads report; each report carries every container's state
            images = {c.name: c.image for c in pod.spec.containers}
            statuses = [{"name": name, "image": images[name], "imageID": "", "ready": "running" in c.state,
                         "restartCount": 0, "state": c.state} for name, c in played.containers.items()]
            body = {"status": {"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                               "containerStatuses": statuses}}
            if phase == "Running":
                body["status"]["startTime"] = _now()
            for _ in range(300):  # a minute: the apiserver may be restarting
                try:
                    self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body,
                                                          _content_type="application/merge-patch+json")
                    return
                except Exception as exc:
                    if getattr(exc, "status", None) == 404:
                        return
                    time.sleep(0.2)  # the apiserver may be restarting

    # logs
    def _log_server(self, certs: dict[str, Path]) -> http.server.ThreadingHTTPServer:
        kubelet = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                match = re.match(r"^/containerLogs/([^/]+)/([^/]+)/([^/]+)$", parts.path)
                pod = kubelet.played.get((match.group(1), match.group(2))) if match else None
                played = pod.containers.get(match.group(3)) if pod else None
                if played is None:
                    self.send_error(404)
                    return
                follow = parse_qs(parts.query).get("follow", ["false"])[0] == "true"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                offset = 0
                try:
                    while True:
                        finished = played.done.is_set()
                        data = played.log.read_bytes()[offset:] if played.log.exists() else b""
                        if data:
                            self.wfile.write(data)
                            self.wfile.flush()
                            offset += len(data)
                        if finished or not follow or kubelet._stop.is_set():
                            return
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs["kubelet_cert"], certs["kubelet_key"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
        return server


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _isolated(argv: list[str], mounts: dict[str, Path], cwd: str, uid: int, gid: int, hidden: Path) -> list[str]:
    """`argv` as a container would run it: as `uid`, in a process namespace of its own, on a read-only
    root that is the host's but for /tmp and the kubelet's own directory, with `mounts` its only volumes."""
    command = ["bwrap", "--unshare-user", "--uid", str(uid), "--gid", str(gid), "--unshare-pid", "--unshare-ipc",
               "--proc", "/proc", "--dev", "/dev"]
    for entry in sorted(os.listdir("/")):
        path = f"/{entry}"
        if entry in ("proc", "dev", "tmp") or path in mounts:
            continue
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            command += ["--ro-bind", path, path]
    if "/tmp" not in mounts:
        command += ["--tmpfs", "/tmp"]
    if not str(hidden).startswith("/tmp/"):
        command += ["--tmpfs", str(hidden)]  # the other pods' volumes and logs, the cluster's keys
    for target, source in sorted(mounts.items()):
        command += ["--bind", str(source), target]
    # The checkout and its venv are the image's code: kept even when they live under /tmp (a CI clone).
    for path in sorted({str(Path(__file__).resolve().parents[2]), sys.prefix}):
        if path.startswith("/tmp/"):
            command += ["--ro-bind", path, path]
    return [*command, "--remount-ro", "/", "--chdir", cwd, "--", *argv]


def _kill_pod(played: _Played) -> None:
    for container in played.containers.values():
        if container.process and container.process.poll() is None:
            _kill(container.process)


def _kill(process: subprocess.Popen) -> None:
    """Stop everything the pod started, as a container's end would (the agent runs in a session of its own)."""
    for pid in [process.pid, *_descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- the cluster ------------------------------------------------------------------------------------------
class KubeCluster:
    """etcd + kube-apiserver + kube-controller-manager on loopback, an admin client, the app's kubeconfig."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.certs = _certificates(workdir)
        self.admin_token = secrets.token_urlsafe(24)
        (workdir / "tokens.csv").write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
        self.etcd_port, self.peer_port, self.api_port = _free_port(), _free_port(), _free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.admin_kubeconfig = _kubeconfig(workdir / "admin.kubeconfig", self.server, self.certs["ca"],
                                            self.admin_token)
        self.processes: dict[str, subprocess.Popen] = {}
        self.app_kubeconfig: Path | None = None
        self.kubelet: FakeKubelet | None = None

    # processes
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_etcd(self) -> None:
        self._spawn("etcd", [shutil.which("etcd"), "--name", "test", "--data-dir", str(self.workdir / "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                             "--initial-cluster", f"test=http://127.0.0.1:{self.peer_port}",
                             "--log-level", "error"])

    def start_apiserver(self) -> None:
        c = self.certs
        self._spawn("kube-apiserver", [
            str(BIN_DIR / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
            "--insecure-port=0", "--endpoint-reconciler-type=none", "--service-cluster-ip-range=10.96.0.0/24",
            f"--token-auth-file={self.workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
            f"--tls-cert-file={c['apiserver_cert']}", f"--tls-private-key-file={c['apiserver_key']}",
            f"--client-ca-file={c['ca']}",
            f"--service-account-key-file={c['sa_key']}", f"--service-account-signing-key-file={c['sa_key']}",
            "--service-account-issuer=https://kubernetes.default.svc", "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-https=true", "--v=0"])

    def start_controller_manager(self) -> None:
        self._spawn("kube-controller-manager", [
            str(BIN_DIR / "kube-controller-manager"), f"--kubeconfig={self.admin_kubeconfig}",
            "--leader-elect=false", "--secure-port=0", "--port=0",
            f"--service-account-private-key-file={self.certs['sa_key']}", f"--root-ca-file={self.certs['ca']}",
            "--controllers=*", "--concurrent-gc-syncs=5", "--v=0"])

    def wait_ready(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        verify = ssl.create_default_context(cafile=str(self.certs["ca"]))
        with httpx.Client(verify=verify, headers={"Authorization": f"Bearer {self.admin_token}"}) as http:
            while time.monotonic() < deadline:
                for name, process in self.processes.items():
                    if process.poll() is not None:
                        tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"{name} exited {process.returncode}:\n{tail}")
                try:
                    if http.get(f"{self.server}/readyz", timeout=2).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise TimeoutError("kube-apiserver did not become ready")

    def restart_apiserver(self) -> None:
        """Stop the API server and start it again on the same port (etcd keeps every object)."""
        process = self.processes.pop("kube-apiserver")
        process.kill()  # abruptly, as a crashed or evicted apiserver goes
        process.wait(timeout=30)
        self.start_apiserver()
        self.wait_ready()

    def stop(self) -> None:
        if self.kubelet:
            self.kubelet.stop()
        for process in reversed(list(self.processes.values())):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    # clients
    def api_client(self, kubeconfig: Path | None = None):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.admin_kubeconfig))

    def core(self):
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    def batch(self):
        from kubernetes import client

        return client.BatchV1Api(self.api_client())

    def networking(self):
        from kubernetes import client

        return client.NetworkingV1Api(self.api_client())

    def set_up_namespace(self) -> None:
        """The runs' namespace and the app's ServiceAccount bound to the README's Role; the app's kubeconfig."""
        from kubernetes import client, utils

        admin = self.api_client()
        docs = readme_rbac()
        assert [d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs] == [NAMESPACE] * len(docs)
        for doc in docs:
            utils.create_from_dict(admin, doc)
        [account] = [d for d in readme_rbac() if d["kind"] == "ServiceAccount"]
        core = client.CoreV1Api(admin)
        deadline = time.monotonic() + 30
        token = None
        while token is None:  # 1.20's token controller makes a token Secret for each ServiceAccount
            found = core.read_namespaced_service_account(account["metadata"]["name"], NAMESPACE)
            for ref in found.secrets or []:
                data = core.read_namespaced_secret(ref.name, NAMESPACE).data or {}
                if "token" in data:
                    token = base64.b64decode(data["token"]).decode()
            if token is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("no token for the ServiceAccount")
                time.sleep(0.1)
        self.app_kubeconfig = _kubeconfig(self.workdir / "app.kubeconfig", self.server, self.certs["ca"], token,
                                          NAMESPACE)
        while True:  # the Job controller creates no pod before the namespace's default ServiceAccount exists
            if any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(NAMESPACE).items):
                break
            time.sleep(0.1)

    def objects(self, run_id: int) -> dict[str, bool]:
        """Which of the run's Job, Secret and NetworkPolicy exist now."""
        name = f"draftsmith-run-{run_id}"
        found = {}
        for kind, read in (("job", self.batch().read_namespaced_job), ("secret", self.core().read_namespaced_secret),
                           ("networkpolicy", self.networking().read_namespaced_network_policy)):
            try:
                read(name, NAMESPACE)
                found[kind] = True
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise
                found[kind] = False
        return found


@contextmanager
def running_cluster() -> Iterator[KubeCluster]:
    """A cluster with the runs' namespace set up and the fake kubelet's node registered, in a temporary
    directory; stopped and removed on exit. The fixture's, and bench/kubernetes.py's."""
    workdir = Path(tempfile.mkdtemp(prefix="draftsmith-kube-"))
    cluster = KubeCluster(workdir)
    try:
        cluster.start_etcd()
        cluster.start_apiserver()
        cluster.wait_ready()
        cluster.start_controller_manager()
        cluster.set_up_namespace()
        cluster.kubelet = FakeKubelet(cluster.core(), cluster.certs, workdir)
        cluster.kubelet.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The session's cluster, with the fake kubelet's node registered (see the module docstring)."""
    if reason := binaries_missing():
        pytest.skip(reason)
    # The fake kubelet polls through the restart test's outage; urllib3 would warn at every retry.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def kubelet(kube_cluster) -> Iterator[FakeKubelet]:
    """The fake kubelet, with any per-test way of playing pods removed afterwards."""
    yield kube_cluster.kubelet
    kube_cluster.kubelet.players.clear()
    kube_cluster.kubelet.extra_env.clear()
