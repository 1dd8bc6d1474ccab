"""The Kubernetes objects of one run (pure): its Job, the Secret holding its credentials, its NetworkPolicy.

Each run is one `batch/v1` Job whose pod has two containers. The `runner` alone gets the run's payload (with
its single-use callback credential) and the clone token; the `agent`, which runs strangers' code, runs as
another user with only the provider keys, and the two share nothing but the `workspace` emptyDir (no process
namespace, no service account token). The runner keeps its own clone in a volume of its own. Secrets live
in a per-run Secret and reach a container only through `secretKeyRef`, so none is in the Job's spec, the
pod's command line or the logs. The Secret and the NetworkPolicy carry an owner reference to the Job, so
deleting the Job (or its TTL) removes them too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.egress.policy import Endpoint, EgressPolicy, ip_literal

MANAGED_BY = "draftsmith"
RUN_LABEL = "draftsmith.dev/run-id"
TASK_LABEL = "draftsmith.dev/task-id"
CONTAINER = "runner"  # the container whose log is the run's log
AGENT_CONTAINER = "agent"
WORKSPACE = "/workspace"  # shared by both containers: the checkout the agent edits, and the hand-off files
RUNNER_DIR = "/runner"  # the runner's alone: its own clone (whose .git makes the patch), HOME, the payload file
# Image pull and clone happen inside the Job's deadline; the runner itself stops the agent at the time limit.
DEADLINE_MARGIN_SECONDS = 300
# Key of the Secret holding the run's payload (which carries its callback credential).
PAYLOAD_KEY = "DRAFTSMITH_RUN_PAYLOAD"
CLONE_TOKEN_KEY = "DRAFTSMITH_CLONE_TOKEN"
# Secret keys the agent's container never gets; it gets every other key (the provider keys).
RUNNER_ONLY_KEYS = frozenset({PAYLOAD_KEY, CLONE_TOKEN_KEY})
# The runner clones, waits and diffs; the operator's resources are the agent's. Its storage holds a clone.
RUNNER_RESOURCES = {"cpu": "250m", "memory": "512Mi"}
# What a named destination may resolve to once it leaves the cluster without an egress proxy: anything but
# the ranges the sandbox's egress policy refuses to repositories (loopback, private, link-local, metadata).
_NOT_PUBLIC_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "198.18.0.0/15",
                  "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")
_NOT_PUBLIC_V6 = ("fc00::/7", "fe80::/10", "::1/128", "ff00::/8")


@dataclass(frozen=True)
class PodSettings:
    """The operator's choices for every run's pod (from DRAFTSMITH_KUBERNETES_* settings)."""

    namespace: str
    image: str
    service_account: str | None = None
    runtime_class: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    cpu: str = "1"
    memory: str = "2Gi"
    workspace_size: str = "4Gi"
    ttl_seconds: int = 600
    pull_policy: str = "IfNotPresent"
    run_as_user: int = 10001  # the runner's uid: the image's `draftsmith` user (Dockerfile)
    agent_user: int = 10002  # the agent's uid: any other, so it can reach nothing of the runner's


def object_name(run_id: int) -> str:
    """The Job's name, and its Secret's and NetworkPolicy's: one run, one name."""
    return f"draftsmith-run-{run_id}"


def labels(run_id: int, task_id: int) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/name": "draftsmith-run",
            RUN_LABEL: str(run_id), TASK_LABEL: str(task_id)}


def owner_reference(job_name: str, job_uid: str) -> dict[str, Any]:
    """Makes the Job the owner: the garbage collector deletes the object with it (and before it, in a
    foreground deletion, since blockOwnerDeletion is set)."""
    return {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
            "controller": False, "blockOwnerDeletion": True}


def _metadata(run_id: int, task_id: int, namespace: str, owner: Mapping[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": object_name(run_id), "namespace": namespace, "labels": labels(run_id, task_id)}
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def secret(run_id: int, task_id: int, namespace: str, values: Mapping[str, str],
           owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's Secret: its payload, clone token and provider keys, each under its environment name."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(run_id, task_id, namespace, owner), "stringData": dict(values)}


def job(run_id: int, task_id: int, pod: PodSettings, *, time_limit_seconds: int, secret_keys: Iterable[str],
        env: Mapping[str, str] | None = None, agent_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run's Job: one pod, never retried, stopped at the time limit (plus set-up), non-root, read-only.

    `secret_keys` are the keys of the run's Secret, each given as the variable of that name: all to the
    runner, all but RUNNER_ONLY_KEYS to the agent. `env` and `agent_env` hold each container's plain
    settings (URLs, the egress proxy), which are no secret.
    """
    name = object_name(run_id)
    keys = sorted(set(secret_keys))

    def variables(plain: Mapping[str, str] | None, home: str, temp: str, refs: list[str]) -> list[dict[str, Any]]:
        found = [{"name": key, "value": value} for key, value in sorted((plain or {}).items())]
        found += [{"name": "HOME", "value": home}, {"name": "TMPDIR", "value": temp},
                  {"name": "RUNNER_TEMP", "value": temp}]
        return found + [{"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}} for key in refs]

    def container(role: str, uid: int, command: str, env_vars: list[dict[str, Any]], resources: dict[str, str],
                  mounts: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "name": role,
            "image": pod.image,
            "imagePullPolicy": pod.pull_policy,
            "command": ["draftsmith", command],
            "workingDir": WORKSPACE,
            "env": env_vars,
            "resources": {"requests": dict(resources), "limits": dict(resources)},
            "securityContext": {
                "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": pod.run_as_user,
                "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
            },
            # The root filesystem is read-only; programs that write to /tmp regardless of TMPDIR get a scratch
            # directory of their own, counted against the same ephemeral-storage limit.
            "volumeMounts": [{"name": volume, "mountPath": path} for volume, path in mounts],
        }

    storage = {"ephemeral-storage": pod.workspace_size}
    runner = container(CONTAINER, pod.run_as_user, "kubernetes-run",
                       variables(env, f"{RUNNER_DIR}/home", f"{RUNNER_DIR}/tmp", keys),
                       {**RUNNER_RESOURCES, **storage},
                       [("workspace", WORKSPACE), ("runner", RUNNER_DIR), ("runner-tmp", "/tmp")])
    agent = container(AGENT_CONTAINER, pod.agent_user, "kubernetes-agent",
                      variables(agent_env, f"{WORKSPACE}/agent/home", f"{WORKSPACE}/agent/tmp",
                                [key for key in keys if key not in RUNNER_ONLY_KEYS]),
                      {"cpu": pod.cpu, "memory": pod.memory, **storage},
                      [("workspace", WORKSPACE), ("agent-tmp", "/tmp")])
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The pod talks to nothing of Kubernetes: no API token in it, no service variables in its environment.
        # Each container sees its own processes only (shareProcessNamespace stays off).
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "shareProcessNamespace": False,
        # fsGroup: both users share the workspace's group, so the agent may edit the checkout the runner made.
        "securityContext": {"runAsNonRoot": True, "runAsUser": pod.run_as_user, "runAsGroup": pod.run_as_user,
                            "fsGroup": pod.run_as_user, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [runner, agent],
        "volumes": [{"name": volume, "emptyDir": {"sizeLimit": pod.workspace_size}}
                    for volume in ("workspace", "runner", "runner-tmp", "agent-tmp")],
    }
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
    if pod.runtime_class:
        spec["runtimeClassName"] = pod.runtime_class
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(run_id, task_id, pod.namespace, None),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(time_limit_seconds) + DEADLINE_MARGIN_SECONDS,
            "ttlSecondsAfterFinished": pod.ttl_seconds,
            "template": {"metadata": {"labels": labels(run_id, task_id)}, "spec": spec},
        },
    }


def network_policy(run_id: int, task_id: int, namespace: str, egress: list[dict[str, Any]],
                   owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Selects the run's pod: nothing may connect to it, and it may connect only as `egress` says."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(run_id, task_id, namespace, owner),
        "spec": {"podSelector": {"matchLabels": {RUN_LABEL: str(run_id)}},
                 "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": egress},
    }


def egress_rules(policy: EgressPolicy, always: Iterable[Endpoint] = (), proxy: Endpoint | None = None,
                 ) -> list[dict[str, Any]]:
    """The NetworkPolicy egress of a run under `policy`, with `always` (the app's callback URL, GitHub's git
    host) reachable too.

    A NetworkPolicy knows addresses, not names. Addresses (IP and CIDR entries, IP model URLs) become ipBlocks
    on their ports. Names need the cluster's egress proxy, which checks them as the sandbox's proxy does:
    with `proxy` set, the pod reaches only the proxy (and the addresses above). Without it, names can only be
    let out to public addresses on their ports, never loopback, link-local or private ranges.
    """
    rules: list[dict[str, Any]] = [_dns_rule()]
    by_port: dict[int, list[dict[str, Any]]] = {}
    named_ports: set[int] = set()

    def add_address(cidr: str, ports: Iterable[int] | None) -> None:
        peer = {"ipBlock": {"cidr": cidr}}
        if ports is None:
            rules.append({"to": [peer]})
        else:
            for port in ports:
                if peer not in by_port.setdefault(port, []):
                    by_port[port].append(peer)

    endpoints = list(always) + list(policy.model_endpoints)
    entries = [] if policy.network_off else [*policy.repository_entries, *policy.operator_entries]
    if proxy is not None:
        endpoints.append(proxy)
    for endpoint in endpoints:
        address = ip_literal(endpoint.host)
        if address is not None:
            add_address(_host_cidr(address), [endpoint.port])
        elif proxy is None:
            named_ports.add(endpoint.port)
    for entry in entries:
        ports = sorted(entry.ports) if entry.ports is not None else None
        if entry.network is not None:
            add_address(str(entry.network), ports)
        elif proxy is None:
            named_ports.update(ports or ())
    for port in sorted(by_port):
        rules.append({"to": by_port[port], "ports": [{"protocol": "TCP", "port": port}]})
    if named_ports:
        rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(_NOT_PUBLIC_V4)}},
                             {"ipBlock": {"cidr": "::/0", "except": list(_NOT_PUBLIC_V6)}}],
                      "ports": [{"protocol": "TCP", "port": port} for port in sorted(named_ports)]})
    return rules


def _dns_rule() -> dict[str, Any]:
    # The cluster's DNS (CoreDNS and kube-dns both carry this label), in whichever namespace it runs.
    return {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def _host_cidr(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"{address}/{address.max_prefixlen}"
