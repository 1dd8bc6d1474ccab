"""Benchmark runner: kubernetes against a real API server: assignment to Job, and 50 assignments at once.

Run from the repository root:  uv run python bench/kubernetes.py [--tasks 5] [--burst 50]

It starts the test cluster of tests/support/kube_cluster.py (etcd, kube-apiserver and kube-controller-manager
on loopback, RBAC on, the app's ServiceAccount bound to the README's Role, and the fake kubelet, which runs
each pod's `draftsmith kubernetes-run` as a local process with the pod's environment), the fake GitHub in
this process, and `draftsmith serve` with `DRAFTSMITH_RUNNER=kubernetes` on the repository of bench/e2e.py
(the built-in `command` agent, a one-line `sed`). A watch on the runs' namespace notes when each Job
appears in the API server.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Python puts this file's directory first on the path, where this file would hide the `kubernetes` client.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench._harness import wait  # noqa: E402
from bench.e2e import Bench, RssSampler, burst, one_at_a_time, percentile  # noqa: E402
from app.engines.kubernetes.manifests import MANAGED_BY, object_name  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.support.kube_cluster import NAMESPACE, KubeCluster, binaries_missing, running_cluster  # noqa: E402

IMAGE = "draftsmith-runner:bench"  # never pulled: the fake kubelet runs the pod's command on this host
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"


class JobWatch:
    """When each Job first appeared in the runs' namespace (time.monotonic()), and how many existed at once,
    from a watch on the API server."""

    def __init__(self, cluster: KubeCluster) -> None:
        self.batch = cluster.batch()
        self.seen: dict[str, float] = {}
        self.live: set[str] = set()
        self.most = 0  # Jobs in the namespace at once, at most
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="job-watch")

    def _loop(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            # A short server-side timeout, so stop() is honoured; a new watch lists existing Jobs as ADDED again.
            try:
                for event in watch.Watch().stream(self.batch.list_namespaced_job, NAMESPACE, timeout_seconds=2):
                    name = event["object"].metadata.name
                    if event["type"] == "ADDED":
                        self.seen.setdefault(name, time.monotonic())
                        self.live.add(name)
                        self.most = max(self.most, len(self.live))
                    elif event["type"] == "DELETED":
                        self.live.discard(name)
            except Exception:
                time.sleep(0.1)

    def start(self) -> JobWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class ClusterSampler(RssSampler):
    """Peak RSS of what stands in for the cluster, among this process's children: the pods' processes
    (`draftsmith kubernetes-run`, the runner side) and the control plane."""

    def __init__(self) -> None:
        super().__init__(os.getpid())
        self.peak = {"pods": 0, "apiserver": 0, "etcd": 0, "controller-manager": 0}

    def _kind(self, cmdline: str) -> str | None:
        if "kubernetes-run" in cmdline:
            return "pods"
        for kind, binary in (("apiserver", "kube-apiserver"), ("controller-manager", "kube-controller-manager"),
                             ("etcd", "etcd ")):
            if binary in cmdline:
                return kind
        return None


class KubeBench(Bench):
    """bench/e2e.py's set-up, with serve sending every run to the cluster as the README's ServiceAccount."""

    def __init__(self, directory: Path, cluster: KubeCluster, settings: dict[str, str]) -> None:
        super().__init__(directory)
        self.cluster = cluster
        self.core, self.batch, self.networking = cluster.core(), cluster.batch(), cluster.networking()
        self.sent: dict[int, float] = {}  # issue number -> when its assignment was sent (time.monotonic())
        self.serve.settings.update({"DRAFTSMITH_RUNNER": "kubernetes", "DRAFTSMITH_KUBERNETES_IMAGE": IMAGE,
                                    "DRAFTSMITH_KUBERNETES_KUBECONFIG": str(cluster.app_kubeconfig), **settings})

    def assign(self, number: int) -> None:
        self.sent[number] = time.monotonic()
        super().assign(number)

    def to_job(self, jobs: JobWatch, numbers: list[int]) -> list[float]:
        """Seconds from each assignment sent to its Job seen in the API server."""
        return [jobs.seen[self.job_name(n)] - self.sent[n] for n in numbers]

    def job_name(self, number: int) -> str:
        """The Job of the last run for issue `number`."""
        from sqlmodel import Session, select

        from app.models import Run, Task

        with Session(self.engine) as session:
            run = session.exec(select(Run).join(Task, Run.task_id == Task.id).where(Task.issue_number == number)
                               .order_by(Run.id.desc())).first()
        return object_name(run.id)

    def leftovers(self) -> dict[str, int]:
        """How many of the runs' Jobs, pods, Secrets and NetworkPolicies the cluster still holds."""
        core, batch, networking = self.core, self.batch, self.networking
        return {"jobs": len(batch.list_namespaced_job(NAMESPACE, label_selector=SELECTOR).items),
                "pods": len(core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items),
                "secrets": len(core.list_namespaced_secret(NAMESPACE, label_selector=SELECTOR).items),
                "networkpolicies": len(networking.list_namespaced_network_policy(NAMESPACE, label_selector=SELECTOR)
                                       .items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5, help="assignments one at a time")
    parser.add_argument("--burst", type=int, default=50, help="issues assigned at once")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a line for serve's .env, e.g. DRAFTSMITH_WORKER_THREADS=16")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    if reason := binaries_missing():
        sys.exit(reason)
    # A SIGTERM unwinds like Ctrl-C, so serve, the pods and the control plane are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    with running_cluster() as cluster, tempfile.TemporaryDirectory(prefix="draftsmith-bench-") as tmp:
        print(f"cluster ready in {time.monotonic() - started:.1f} s (etcd, kube-apiserver, "
              f"kube-controller-manager, fake kubelet; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
        bench = KubeBench(Path(tmp), cluster, settings)
        jobs = JobWatch(cluster).start()
        try:
            started = time.monotonic()
            bench.start_serve()
            threads = settings.get("DRAFTSMITH_WORKER_THREADS", Settings.model_fields["worker_threads"].default)
            print(f"draftsmith serve ready in {time.monotonic() - started:.1f} s (embedded Redis, SQLite, "
                  f"{threads} worker threads, each run holding one)")
            app_memory, cluster_memory = RssSampler(bench.serve.pid).start(), ClusterSampler().start()

            bench.assign(bench.open_issue("Warm-up"))  # first-use costs (imports, App identity, token, cluster)
            wait(lambda: bench.completed_checks(), 120, "warm-up task")

            earlier = set(bench.sent)
            to_check = [total for total, _agent in one_at_a_time(bench, args.tasks)]
            to_job = bench.to_job(jobs, [n for n in bench.sent if n not in earlier])
            print(f"\none assignment at a time ({args.tasks} tasks), from the assignment request:")
            print(f"  to the Job in the API server   p50 {percentile(to_job, 0.5):.2f} s   "
                  f"p99 {percentile(to_job, 0.99):.2f} s")
            print(f"  to the check run completed     p50 {percentile(to_check, 0.5):.2f} s   "
                  f"p99 {percentile(to_check, 0.99):.2f} s")

            earlier, jobs.most = set(bench.sent), len(jobs.live)
            result = burst(bench, args.burst)
            burst_to_job = bench.to_job(jobs, [n for n in bench.sent if n not in earlier])
            print(f"\n{args.burst} issues assigned at once (assignments sent in {result['assigned']:.1f} s):")
            print(f"  all check runs completed after {result['elapsed']:.1f} s "
                  f"({args.burst / result['elapsed']:.2f} tasks/s)")
            print(f"  succeeded {result['succeeded']}/{args.burst}, pull requests {result['prs']}/{args.burst}"
                  + (f", other: {result['other']}" if result["other"] else ""))
            print(f"  assignment to its Job in the API server   p50 {percentile(burst_to_job, 0.5):.1f} s   "
                  f"max {max(burst_to_job):.1f} s; at most {jobs.most} Jobs at once")
            ended = time.monotonic()
            try:
                wait(lambda: not any(bench.leftovers().values()), 60, "the runs' objects to be deleted", every=0.2)
                print(f"  Jobs, pods, Secrets and NetworkPolicies all gone {time.monotonic() - ended:.1f} s later")
            except TimeoutError:
                print(f"  LEFT in the cluster 60 s later: {bench.leftovers()}")

            for sampler in (app_memory, cluster_memory):
                sampler.stop()
                sampler.sample()
            app, kube = ({k: v / 1e6 for k, v in s.peak.items()} for s in (app_memory, cluster_memory))
            print(f"\npeak RSS: web {app['web']:.0f} MB, worker {app['worker']:.0f} MB, "
                  f"embedded Redis {app['redis']:.0f} MB")
            print(f"  pods (runner side, all at once) {kube['pods']:.0f} MB; bench process (fake GitHub, fake "
                  f"kubelet) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB; control plane: "
                  f"apiserver {kube['apiserver']:.0f} MB, etcd {kube['etcd']:.0f} MB, "
                  f"controller-manager {kube['controller-manager']:.0f} MB")
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
        finally:
            jobs.stop()
            # An interrupted bench's pods end first (Failed), so serve's worker threads following them are free.
            cluster.kubelet.stop()
            bench.stop()


if __name__ == "__main__":
    main()
