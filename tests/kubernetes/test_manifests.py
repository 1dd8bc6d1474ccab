"""A run's Job, Secret and NetworkPolicy: valid for current Kubernetes, locked down, no secret in the Job."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from app.egress.policy import EgressPolicy, Endpoint
from app.engines.kubernetes import manifests

# The oldest Kubernetes release still common in managed clusters, and the newest schema the package has.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
POD = manifests.PodSettings(namespace="agents", image="ghcr.io/acme/draftsmith:1.2", service_account="draftsmith-run",
                            runtime_class="gvisor", node_selector={"pool": "agents"})
SECRET_VALUES = {manifests.PAYLOAD_KEY: '{"callback": {"token": "dsr_secret"}}',
                 manifests.CLONE_TOKEN_KEY: "ghs_clonetoken", "ANTHROPIC_API_KEY": "sk-ant-secret"}


def _job(**overrides):
    options = {"time_limit_seconds": 1800, "secret_keys": SECRET_VALUES.keys(),
               "env": {"DRAFTSMITH_CLONE_URL": "https://github.com/octo/demo.git"}, **overrides}
    return manifests.job(7, 3, POD, **options)


def _policy(**overrides) -> EgressPolicy:
    options = {"model_endpoints": (Endpoint("api.anthropic.com", 443),),
               "repository_entries": ("pypi.org",), "operator_entries": ("10.20.0.0/16", "127.0.0.1:3141"),
               **overrides}
    return EgressPolicy(**options)


OWNER = manifests.owner_reference("draftsmith-run-7", "0b6e6f3c-5d1f-4a51-9a3e-9d1c2f0e8a11")
ALL_OBJECTS = {
    "job": lambda: _job(),
    "secret": lambda: manifests.secret(7, 3, "agents", SECRET_VALUES, owner=OWNER),
    "network policy": lambda: manifests.network_policy(7, 3, "agents", manifests.egress_rules(_policy()), owner=OWNER),
    "network policy behind a proxy": lambda: manifests.network_policy(
        7, 3, "agents", manifests.egress_rules(_policy(), proxy=Endpoint("10.0.0.9", 3128)), owner=OWNER),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", sorted(ALL_OBJECTS))
def test_every_object_is_valid_for_current_kubernetes_with_no_unknown_field(kind, version):
    kubernetes_validate.validate(ALL_OBJECTS[kind](), version, strict=True)


def test_a_misspelt_field_would_be_caught():
    job = _job()
    job["spec"]["backofLimit"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSIONS[-1], strict=True)


def test_the_job_runs_once_within_the_time_limit_and_cleans_up_after_itself():
    spec = _job(time_limit_seconds=600)["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600 + manifests.DEADLINE_MARGIN_SECONDS
    assert spec["ttlSecondsAfterFinished"] == POD.ttl_seconds
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def _containers(job) -> dict[str, dict]:
    return {c["name"]: c for c in job["spec"]["template"]["spec"]["containers"]}


def test_both_containers_are_non_root_read_only_unprivileged_and_limited():
    pod = _job()["spec"]["template"]["spec"]
    containers = _containers(_job())
    assert sorted(containers) == ["agent", "runner"]
    for container in containers.values():
        context = container["securityContext"]
        assert context["runAsNonRoot"] and context["runAsUser"] != 0 and pod["securityContext"]["runAsNonRoot"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False and context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        # The only writable places are the run's emptyDirs: HOME and TMPDIR point into them
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["HOME"].startswith(("/workspace/", "/runner/")) and env["TMPDIR"].startswith(("/workspace/", "/runner/"))
    # The operator's resources are the agent's; the runner only clones, waits and diffs
    assert containers["agent"]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "4Gi"}
    assert containers["runner"]["resources"]["limits"]["memory"] == "512Mi"
    assert all("emptyDir" in volume for volume in pod["volumes"])
    assert pod["automountServiceAccountToken"] is False
    assert (pod["runtimeClassName"], pod["nodeSelector"]) == ("gvisor", {"pool": "agents"})


def test_the_agent_runs_as_another_user_and_shares_only_the_workspace_with_the_runner():
    pod = _job()["spec"]["template"]["spec"]
    containers = _containers(_job())
    runner, agent = containers["runner"], containers["agent"]
    assert agent["securityContext"]["runAsUser"] != runner["securityContext"]["runAsUser"]
    assert pod["shareProcessNamespace"] is False
    mounts = {name: {m["name"]: m["mountPath"] for m in c["volumeMounts"]} for name, c in containers.items()}
    assert mounts["runner"] == {"workspace": "/workspace", "runner": "/runner", "runner-tmp": "/tmp"}
    assert mounts["agent"] == {"workspace": "/workspace", "agent-tmp": "/tmp"}
    assert (runner["command"], agent["command"]) == (["draftsmith", "kubernetes-run"], ["draftsmith", "kubernetes-agent"])


def test_runtime_class_and_node_selector_are_left_out_unless_set():
    pod = manifests.job(7, 3, manifests.PodSettings(namespace="n", image="i"), time_limit_seconds=60,
                        secret_keys=[])["spec"]["template"]["spec"]
    assert "runtimeClassName" not in pod and "nodeSelector" not in pod and "serviceAccountName" not in pod


def test_no_secret_value_is_in_the_job_and_each_arrives_by_secret_key_ref():
    job = _job()
    text = json.dumps(job)
    for value in SECRET_VALUES.values():
        assert value not in text
    refs = {name: {v["name"]: v["valueFrom"]["secretKeyRef"] for v in c["env"] if "valueFrom" in v}
            for name, c in _containers(job).items()}
    assert all("args" not in c for c in _containers(job).values())
    # The runner gets every key; the agent the provider keys only, never the payload (the callback
    # credential) or the clone token, and none of the runner's plain settings
    assert refs["runner"] == {key: {"name": "draftsmith-run-7", "key": key} for key in SECRET_VALUES}
    assert refs["agent"] == {"ANTHROPIC_API_KEY": {"name": "draftsmith-run-7", "key": "ANTHROPIC_API_KEY"}}
    assert "DRAFTSMITH_CLONE_URL" not in {v["name"] for v in _containers(job)["agent"]["env"]}


def test_secret_and_network_policy_go_with_the_job():
    for obj in (ALL_OBJECTS["secret"](), ALL_OBJECTS["network policy"]()):
        [owner] = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["blockOwnerDeletion"]) == ("Job", "draftsmith-run-7", True)


def _ports(rule):
    return sorted(p["port"] for p in rule.get("ports", []))


def test_egress_allows_dns_addresses_on_their_ports_and_names_only_to_public_addresses():
    policy = manifests.network_policy(7, 3, "agents", manifests.egress_rules(
        _policy(), always=[Endpoint("127.0.0.1", 3000), Endpoint("github.com", 443)]))
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {manifests.RUN_LABEL: "7"}}
    assert spec["ingress"] == [] and spec["policyTypes"] == ["Ingress", "Egress"]
    dns, *rules = spec["egress"]
    assert _ports(dns) == [53, 53] and dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    by_cidr: dict[str, list[int]] = {}
    for rule in rules:
        for peer in rule["to"]:
            by_cidr.setdefault(peer["ipBlock"]["cidr"], []).extend(_ports(rule))
    # The app's callback address and the operator's loopback mirror on their ports only; a CIDR on any port
    assert sorted(by_cidr["127.0.0.1/32"]) == [3000, 3141]
    [cidr_rule] = [r for r in rules if r["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]]
    assert "ports" not in cidr_rule
    # Names (the model API, pypi.org, GitHub) reach public addresses on 443/80, never private or metadata ones
    [named] = [r for r in rules if r["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"]
    assert _ports(named) == [80, 443]
    refused = named["to"][0]["ipBlock"]["except"]
    assert {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8", "192.168.0.0/16"} <= set(refused)


def test_behind_the_egress_proxy_names_reach_only_the_proxy():
    rules = manifests.egress_rules(_policy(), always=[Endpoint("github.com", 443)], proxy=Endpoint("10.0.0.9", 3128))
    cidrs = {peer["ipBlock"]["cidr"] for rule in rules[1:] for peer in rule["to"]}
    assert "0.0.0.0/0" not in cidrs and "10.0.0.9/32" in cidrs


def test_network_off_drops_the_repository_and_operator_entries_but_keeps_the_model_api():
    rules = manifests.egress_rules(_policy(network_off=True))
    cidrs = {peer["ipBlock"]["cidr"] for rule in rules[1:] for peer in rule["to"]}
    assert "10.20.0.0/16" not in cidrs
    [named] = rules[1:]
    assert _ports(named) == [443]
