"""The few Kubernetes API calls the engine makes, with the official client, in the one configured namespace.

Every call here is one the README's Role allows (jobs, pods, pods/log, secrets, networkpolicies in one
namespace); nothing reads or writes anything cluster-wide.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.engines.kubernetes import manifests


# The client picks JSON Patch for every patch unless told otherwise; ours are merge patches (RFC 7386).
MERGE_PATCH = "application/merge-patch+json"


def api_client(settings):
    """A client for the configured cluster: the kubeconfig setting, the pod's own account inside a cluster,
    else ~/.kube/config."""
    from kubernetes import client, config

    if settings.kubernetes_kubeconfig:
        return config.new_client_from_config(config_file=str(settings.kubernetes_kubeconfig))
    try:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except config.ConfigException:
        return config.new_client_from_config()


def describe(exc: Exception) -> str:
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    if status is not None:
        body = getattr(exc, "body", None) or ""
        message = body
        try:
            import json

            message = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            pass
        return f"{status} {reason}: {str(message)[:500]}"
    return f"{type(exc).__name__}: {exc}"[:500]


@dataclass
class PodState:
    name: str
    phase: str
    started: bool  # its container started (running or finished)
    exit_code: int | None
    reason: str | None  # why it waits or why it ended, as the cluster says it


class Cluster:
    """One namespace of one cluster, as the app's ServiceAccount sees it."""

    def __init__(self, settings, client=None) -> None:
        from kubernetes import client as k8s

        self.namespace = settings.kubernetes_namespace
        self.client = client or api_client(settings)
        self.core = k8s.CoreV1Api(self.client)
        self.batch = k8s.BatchV1Api(self.client)
        self.networking = k8s.NetworkingV1Api(self.client)

    def close(self) -> None:
        self.client.close()

    # creating a run
    def create_run(self, secret: dict, policy: dict, job: dict) -> str:
        """Secret and NetworkPolicy first (so the pod never runs unselected or without its keys), then the Job;
        then both are given to the Job as their owner. Returns the Job's uid."""
        name = job["metadata"]["name"]
        self.core.create_namespaced_secret(self.namespace, secret)
        self.networking.create_namespaced_network_policy(self.namespace, policy)
        created = self.batch.create_namespaced_job(self.namespace, job)
        owner = {"metadata": {"ownerReferences": [manifests.owner_reference(name, created.metadata.uid)]}}
        self.core.patch_namespaced_secret(name, self.namespace, owner, _content_type=MERGE_PATCH)
        self.networking.patch_namespaced_network_policy(name, self.namespace, owner, _content_type=MERGE_PATCH)
        return created.metadata.uid

    def delete_run(self, name: str) -> bool:
        """Delete the Job in the foreground: its pod, Secret and NetworkPolicy go first. False if it was gone;
        the Secret and NetworkPolicy are deleted by name too, in case the Job never became their owner."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        options = k8s.V1DeleteOptions(propagation_policy="Foreground")
        found = True
        for delete in (self.batch.delete_namespaced_job, self.core.delete_namespaced_secret,
                       self.networking.delete_namespaced_network_policy):
            try:
                delete(name, self.namespace, body=options)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                if delete == self.batch.delete_namespaced_job:
                    found = False
        return found

    # following a run
    def job(self, name: str):
        from kubernetes.client.exceptions import ApiException

        try:
            return self.batch.read_namespaced_job(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pod(self, run_id: int) -> PodState | None:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{manifests.RUN_LABEL}={run_id}").items
        if not pods:
            return None
        pod = max(pods, key=lambda p: p.metadata.creation_timestamp)
        status = pod.status
        phase = status.phase or "Pending"
        started, exit_code, reason = False, None, None
        for container in status.container_statuses or []:
            state = container.state
            if state and state.running:
                started = True
            if state and state.waiting:
                reason = f"{state.waiting.reason}: {state.waiting.message or ''}".strip(": ")
            if state and state.terminated:
                started = True
                if container.name == manifests.CONTAINER:
                    # The runner's end is the run's: an agent container still waiting does not keep it going.
                    exit_code, reason = state.terminated.exit_code, state.terminated.reason
                    if phase not in ("Succeeded", "Failed"):
                        phase = "Succeeded" if exit_code == 0 else "Failed"
        for condition in status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                reason = f"{condition.reason}: {condition.message or ''}".strip(": ")
        return PodState(pod.metadata.name, phase, started, exit_code, reason)

    def follow_log(self, pod: str, rest: list[str]) -> Iterator[str]:
        """The pod's log, line by line, until the container ends or the stream breaks (`follow=true`, through
        the apiserver). A last line without its newline goes to `rest`: it may be cut off by a broken stream."""
        response = self.core.read_namespaced_pod_log(pod, self.namespace, container=manifests.CONTAINER,
                                                     follow=True, _preload_content=False)
        pending = b""
        try:
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
        finally:
            if pending:
                rest.append(pending.decode(errors="replace"))
            response.release_conn()

    def log_tail(self, pod: str, lines: int = 20) -> list[str]:
        text = self.core.read_namespaced_pod_log(pod, self.namespace, container=manifests.CONTAINER,
                                                 tail_lines=lines)
        return text.splitlines()

    # cleaning up
    def finished_or_orphaned(self, is_over) -> list[str]:
        """Names of our Jobs whose run is over (`is_over(run_id)`), and of Secrets and NetworkPolicies left
        without their Job (the app stopped between creating them and the Job) for more than ten minutes."""
        selector = f"app.kubernetes.io/managed-by={manifests.MANAGED_BY}"
        names = set()
        jobs = self.batch.list_namespaced_job(self.namespace, label_selector=selector).items
        for job in jobs:
            run_id = (job.metadata.labels or {}).get(manifests.RUN_LABEL)
            if run_id and run_id.isdigit() and is_over(int(run_id)):
                names.add(job.metadata.name)
        job_names = {job.metadata.name for job in jobs}
        now = time.time()
        for listing in (self.core.list_namespaced_secret, self.networking.list_namespaced_network_policy):
            for item in listing(self.namespace, label_selector=selector).items:
                age = now - item.metadata.creation_timestamp.timestamp()
                if item.metadata.name not in job_names and not item.metadata.owner_references and age > 600:
                    names.add(item.metadata.name)
        return sorted(names)


def job_outcome(job: Any) -> str | None:
    """'succeeded' or 'failed' once the Job has ended, else None (it waits or runs)."""
    if job is None or job.status is None:
        return None
    for condition in job.status.conditions or []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return "succeeded" if condition.type == "Complete" else "failed"
    if job.status.failed:
        return "failed"
    if job.status.succeeded:
        return "succeeded"
    return None


# (API group, resource, verbs): every call above, and what the README's Role grants, no more.
REQUIRED_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("batch", "jobs", ("create", "get", "list", "delete")),
    ("", "pods", ("get", "list")),
    ("", "pods/log", ("get",)),
    ("", "secrets", ("create", "patch", "list", "delete")),
    ("networking.k8s.io", "networkpolicies", ("create", "patch", "list", "delete")),
)
