"""runner: kubernetes end to end: a webhook in, a Job in a real API server (RBAC real, the README's Role), the
fake kubelet playing the pod with the real `draftsmith kubernetes-run`, and the same PR and check run out."""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

from app.engines.lifecycle import recover_dead_runs

from tests.e2e.conftest import REPO, command_config
from tests.support.kube_cluster import NAMESPACE

FIX = "sed -i 's/tpyo/typo/' README.md && echo fixed"


def _kube_config(command: str, **extra) -> str:
    return "runner: kubernetes\n" + command_config(command, **extra)


class Seen:
    """What the cluster held when the fake kubelet started the pod: the Job, its Secret and NetworkPolicy."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.objects: dict = {}
        self.started = threading.Event()

    def __call__(self, pod: dict):
        name = pod["metadata"]["labels"]["job-name"]
        client = self.cluster.api_client()
        from kubernetes import client as k8s

        self.objects = {
            "job": client.sanitize_for_serialization(k8s.BatchV1Api(client).read_namespaced_job(name, NAMESPACE)),
            "secret": client.sanitize_for_serialization(k8s.CoreV1Api(client).read_namespaced_secret(name, NAMESPACE)),
            "policy": client.sanitize_for_serialization(
                k8s.NetworkingV1Api(client).read_namespaced_network_policy(name, NAMESPACE)),
            "pod": pod,
        }
        self.started.set()
        return None  # play the pod's own command


def _running(scene, fakehub, cluster, kubelet, command: str, first_line: str | None = None):
    """Assign the bot on an issue whose run executes `command`; return once its pod plays (and, with
    `first_line`, once that line reached the run's log): (seen, issue number, run)."""
    scene.repo(_kube_config(command))
    seen = Seen(cluster)
    kubelet.players.append(seen)
    number = fakehub.open_issue(REPO, "Take your time", "")
    fakehub.assign(REPO, number, scene.bot)
    assert seen.started.wait(60), "the pod never started"
    [task] = scene.tasks()
    [run] = scene.runs(task.id)
    if first_line:
        scene.wait_for(lambda: any(first_line == line.text for line in scene.logs(run.id)), timeout=60,
                       what=f"{first_line!r} in the run's log")
    return seen, number, run


def _gone(scene, cluster, run_id: int) -> None:
    scene.wait_for(lambda: not any(cluster.objects(run_id).values()), timeout=30,
                   what="the run's Job, Secret and NetworkPolicy to be deleted")


def test_an_assigned_issue_runs_as_a_job_and_ends_in_a_ready_pull_request(kube_scene, fakehub, kube_cluster, kubelet):
    # Given a repository whose runs go to the cluster
    scene = kube_scene()
    scene.repo(_kube_config(FIX))
    seen = Seen(kube_cluster)
    kubelet.players.append(seen)
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    # When alice assigns the bot
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=120)

    # Then the run was a Job with its Secret and NetworkPolicy, all owned by it
    assert seen.started.is_set(), "no pod was played"
    job, secret, policy = seen.objects["job"], seen.objects["secret"], seen.objects["policy"]
    [run] = scene.runs(task.id)
    assert job["metadata"]["name"] == f"draftsmith-run-{run.id}"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] > 30 * 60
    runner, agent = job["spec"]["template"]["spec"]["containers"]
    assert all(c["securityContext"]["readOnlyRootFilesystem"] is True for c in (runner, agent))
    assert agent["resources"]["limits"]["memory"] == "2Gi"
    for obj in (secret, policy):
        [owner] = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Job", job["metadata"]["uid"])
    # ...the clone token and callback credential are in the Secret, never in the Job
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    clone_token = values["DRAFTSMITH_CLONE_TOKEN"]
    payload = json.loads(values["DRAFTSMITH_RUN_PAYLOAD"])
    assert clone_token.startswith("ghs_") and payload["callback"]["token"].startswith("dsr_")
    assert clone_token not in json.dumps(job) and payload["callback"]["token"] not in json.dumps(job)
    assert policy["spec"]["podSelector"]["matchLabels"] == {"draftsmith.dev/run-id": str(run.id)}
    # ...whose egress lets the pod reach this app (its callbacks) and GitHub (the clone) on loopback, on
    # their ports only
    loopback = [rule for rule in policy["spec"]["egress"] for peer in rule.get("to", [])
                if peer.get("ipBlock", {}).get("cidr") == "127.0.0.1/32"]
    github_port = int(fakehub.api_url.rsplit(":", 1)[1].strip("/"))
    assert sorted(port["port"] for rule in loopback for port in rule["ports"]) == sorted([scene.app.port, github_port])
    # ...the clone token could read this one repository only, and the pod revoked it after the clone
    token = fakehub.state.tokens[clone_token]
    assert token.repos == {REPO} and token.permissions.get("contents") == "read"
    assert all(level == "read" for level in token.permissions.values())
    assert token.revoked_at is not None
    assert any(r.method == "DELETE" and r.path == "/installation/token" and r.token == clone_token
               for r in fakehub.requests())

    # And GitHub shows what a sandbox run would have produced
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False and f"Closes #{number}" in pr.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "success")
    # The pod's log reached the run's log
    assert any("fixed" in line.text for line in scene.logs(run.id))
    assert clone_token not in " ".join(line.text for line in scene.logs(run.id))
    # And nothing of the run is left in the cluster
    _gone(scene, kube_cluster, run.id)


def test_cancel_mid_run_deletes_the_job(kube_scene, fakehub, kube_cluster, kubelet):
    scene = kube_scene()
    seen, number, run = _running(scene, fakehub, kube_cluster, kubelet, "echo working; sleep 120", "working")

    fakehub.comment(REPO, number, "/agent cancel")
    [task] = scene.wait_settled(timeout=60)

    assert task.status == "cancelled"
    _gone(scene, kube_cluster, run.id)
    played = kubelet.played[(NAMESPACE, seen.objects["pod"]["metadata"]["name"])]
    assert played.process.poll() is not None, "the pod's process was stopped"


def test_a_pod_that_fails_ends_the_task_failed_with_its_last_log_lines(kube_scene, fakehub, kube_cluster, kubelet):
    # The pod's command dies before any runner starts, printing its Secret's payload on the way out
    scene = kube_scene()
    scene.repo(_kube_config(FIX))
    kubelet.players.append(lambda pod: ["sh", "-c", 'echo "payload: $DRAFTSMITH_RUN_PAYLOAD"; '
                                        "echo 'out of memory, giving up' >&2; exit 3"])
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=90)

    assert task.status == "failed"
    assert "exit code 3" in task.status_reason and "out of memory, giving up" in task.status_reason
    assert scene.check_run().conclusion == "failure"
    [run] = scene.runs(task.id)
    # The callback credential it printed is scrubbed from the run's log and from what GitHub shows
    logs = "\n".join(line.text for line in scene.logs(run.id))
    assert "payload: " in logs and '"callback"' in logs
    assert "dsr_" not in logs and "dsr_" not in task.status_reason
    _gone(scene, kube_cluster, run.id)


def test_a_job_the_cluster_never_schedules_fails_as_never_started(kube_scene, fakehub, kube_cluster, kubelet):
    # No node has this label, so the pod waits unscheduled
    scene = kube_scene(DRAFTSMITH_KUBERNETES_NODE_SELECTOR="pool=nowhere", DRAFTSMITH_KUBERNETES_STARTUP_TIMEOUT=3)
    scene.repo(_kube_config(FIX))
    number = fakehub.open_issue(REPO, "Fix typo in README", "")
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=60)

    assert task.status == "failed" and "never started" in task.status_reason
    _gone(scene, kube_cluster, scene.runs(task.id)[0].id)


def test_the_api_server_restarted_mid_run_loses_nothing(kube_scene, fakehub, kube_cluster, kubelet):
    scene = kube_scene()
    _seen, _number, run = _running(scene, fakehub, kube_cluster, kubelet,
                                   "echo before; sleep 8; " + FIX + "; echo after", "before")

    kube_cluster.restart_apiserver()
    [task] = scene.wait_settled(timeout=120)

    texts = [line.text for line in scene.logs(run.id)]
    assert task.status == "succeeded", (task.status_reason, texts)
    assert texts.count("before") == 1 and "after" in texts, texts
    _gone(scene, kube_cluster, run.id)


def test_the_sweeper_asks_the_cluster_before_calling_a_quiet_run_dead(kube_scene, fakehub, kube_cluster, kubelet):
    # Given a run whose pod works quietly (no callback for longer than the heartbeat timeout)
    scene = kube_scene()
    _seen, number, _run = _running(scene, fakehub, kube_cluster, kubelet, "sleep 120")

    # When the sweeper looks at runs quiet for any time at all
    ended = asyncio.run(recover_dead_runs(scene.app.runtime, older_than=timedelta(0)))

    # Then the cluster says the Job still runs, and the run goes on
    assert ended == 0
    assert scene.tasks()[0].status == "running"
    fakehub.comment(REPO, number, "/agent cancel")
    scene.wait_settled(timeout=60)


def test_jobs_of_ended_runs_are_removed_on_clusters_without_ttl(kube_scene, fakehub, kube_cluster, kubelet):
    # Given a Job left behind by a run that is over (this test cluster drops ttlSecondsAfterFinished, as 1.20 does)
    from app.engines.kubernetes import manifests

    stray = manifests.job(4242, 4242, manifests.PodSettings(namespace=NAMESPACE, image="x",
                                                            node_selector={"pool": "nowhere"}),
                          time_limit_seconds=60, secret_keys=[])
    kube_cluster.batch().create_namespaced_job(NAMESPACE, stray)
    scene = kube_scene()
    scene.repo(_kube_config(FIX))
    number = fakehub.open_issue(REPO, "Fix typo in README", "")

    # When the next run starts
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=120)

    # Then the stray Job is gone, and so is this run's own
    assert task.status == "succeeded", task.status_reason
    _gone(scene, kube_cluster, 4242)
    _gone(scene, kube_cluster, scene.runs(task.id)[0].id)


# What an agent would try in order to report for its run itself: read every process's environment, its own,
# every file it can reach (the shared workspace, its /tmp, the runner's volume), then plant a result for the
# runner. It keeps what it read in loot.txt (printable characters only), which becomes part of the PR.
CODE = str(Path(__file__).resolve().parents[2])  # the image's code in a real pod, not the run's
PROBE = (
    "{ echo '## processes'; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo;"
    "  for f in /proc/[0-9]*/environ; do echo \"## $f\"; tr '\\0' '\\n' < $f; done;"
    "  echo '## env'; env;"
    # Every file it can reach but the checkout's own code, which a CI clone under /tmp puts there too.
    f"  for f in $(find /workspace /tmp /runner -path {shlex.quote(CODE)} -prune -o -type f -print 2>/dev/null);"
    "   do echo \"## $f\"; cat $f; done;"
    "} 2>&1 | tr -cd '\\11\\12\\40-\\176' > /tmp/loot; mv /tmp/loot loot.txt; "  # printable: a text file in the PR
    "printf '{\"data\": {\"exit_code\": 0, \"success\": true, \"summary\": \"FORGED\"}}' > ../handoff/agent.json; "
    "printf '{\"data\": {\"exit_code\": 0, \"timed_out\": false}}' > ../handoff/tests-result.json; "
)


def test_the_agent_cannot_reach_the_runs_credentials_or_forge_its_result(kube_scene, fakehub, kube_cluster, kubelet):
    # Given a run whose agent hunts for the run's secrets before it fixes the typo
    scene = kube_scene()
    scene.repo(_kube_config(PROBE + FIX, test="grep -q typo README.md"))
    seen = Seen(kube_cluster)
    kubelet.players.append(seen)
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    # When the bot is assigned
    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=120)

    # Then the run went through: a ready PR, a green check run, the tests run by the agent's container
    assert task.status == "succeeded", task.status_reason
    [pr] = scene.pulls()
    assert pr.pull.draft is False and "FORGED" not in pr.body
    check = scene.check_run()
    assert (check.status, check.conclusion) == ("completed", "success") and "FORGED" not in json.dumps(check.output)
    [run] = scene.runs(task.id)
    logs = [line.text for line in scene.logs(run.id)]
    assert "tests: passed" in logs and "fixed" in logs
    # ...and what the agent could read held its own environment and prompt, but none of the run's secrets
    loot = subprocess.run(["git", "--git-dir", str(fakehub.repo(REPO).git_dir), "show", f"{pr.pull.head_ref}:loot.txt"],
                          capture_output=True, text=True, check=True).stdout
    assert "HOME=/workspace/agent/home" in loot and "Fix typo in README" in loot
    values = {k: base64.b64decode(v).decode() for k, v in seen.objects["secret"]["data"].items()}
    callback_token = json.loads(values["DRAFTSMITH_RUN_PAYLOAD"])["callback"]["token"]
    for secret in (callback_token, values["DRAFTSMITH_CLONE_TOKEN"], "DRAFTSMITH_RUN_PAYLOAD", "dsr_", "ghs_"):
        assert secret not in loot, secret
    assert "## /runner/" not in loot  # the runner's volume is not even there
    _gone(scene, kube_cluster, run.id)


def test_tests_the_agent_says_passed_still_fail(kube_scene, fakehub, kube_cluster, kubelet):
    # Given a repository whose tests fail, and an agent that plants a "tests passed" answer for the runner
    scene = kube_scene()
    scene.repo(_kube_config(PROBE + FIX, test="exit 1"))
    number = fakehub.open_issue(REPO, "Fix typo in README", "The README says tpyo.")

    fakehub.assign(REPO, number, scene.bot)
    [task] = scene.wait_settled(timeout=120)

    # Then the PR stays a draft and the run's log says the tests failed
    [pr] = scene.pulls()
    assert pr.pull.draft is True
    [run] = scene.runs(task.id)
    assert "tests: failed (exit code 1)" in [line.text for line in scene.logs(run.id)]
    _gone(scene, kube_cluster, run.id)
