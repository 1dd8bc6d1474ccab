"""The Kubernetes objects of one run (pure): its Job, the Secret holding its credentials, its NetworkPolicy.

Each run is one `batch/v1` Job. What must stay secret (the run's payload with its single-use callback
credential, the clone token, the provider keys) lives in a per-run Secret and reaches the container only
through `secretKeyRef`, so it is never in the Job's spec, the pod's command line or the logs. The Secret and
the NetworkPolicy carry an owner reference to the Job, so deleting the Job (or its TTL) removes them too.
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
CONTAINER = "runner"
WORKSPACE = "/workspace"
# Image pull and clone happen inside the Job's deadline; the runner itself stops the agent at the time limit.
DEADLINE_MARGIN_SECONDS = 300
# Key of the Secret holding the run's payload (which carries its callback credential).
PAYLOAD_KEY = "DRAFTSMITH_RUN_PAYLOAD"
CLONE_TOKEN_KEY = "DRAFTSMITH_CLONE_TOKEN"
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
    run_as_user: int = 10001  # the image's `draftsmith` user (Dockerfile)


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
        env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run's Job: one pod, never retried, stopped at the time limit (plus set-up), non-root, read-only.

    `secret_keys` are the keys of the run's Secret, each given to the container as the variable of that name;
    `env` holds plain settings (URLs, the egress proxy) that are no secret.
    """
    name = object_name(run_id)
    variables = [{"name": key, "value": value} for key, value in sorted((env or {}).items())]
    variables += [{"name": "HOME", "value": f"{WORKSPACE}/home"}, {"name": "TMPDIR", "value": f"{WORKSPACE}/tmp"},
                  {"name": "RUNNER_TEMP", "value": f"{WORKSPACE}/tmp"}]
    variables += [{"name": key, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
                  for key in sorted(set(secret_keys))]
    resources = {"cpu": pod.cpu, "memory": pod.memory, "ephemeral-storage": pod.workspace_size}
    container = {
        "name": CONTAINER,
        "image": pod.image,
        "imagePullPolicy": pod.pull_policy,
        "command": ["draftsmith", "kubernetes-run"],
        "workingDir": WORKSPACE,
        "env": variables,
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": pod.run_as_user, "runAsGroup": pod.run_as_user,
            "allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The root filesystem is read-only; programs that write to /tmp regardless of TMPDIR get a scratch
        # directory of their own, counted against the same ephemeral-storage limit.
        "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The pod talks to nothing of Kubernetes: no API token in it, no service variables in its environment.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": pod.run_as_user, "runAsGroup": pod.run_as_user,
                            "fsGroup": pod.run_as_user, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "workspace", "emptyDir": {"sizeLimit": pod.workspace_size}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": pod.workspace_size}}],
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
