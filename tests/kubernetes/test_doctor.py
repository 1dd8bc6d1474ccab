"""`draftsmith doctor kubernetes` against the real API server: all green for the README's Role, and each gap named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.engines.kubernetes.cluster import REQUIRED_PERMISSIONS
from tests.support.kube_cluster import NAMESPACE, readme_rbac

DRAFTSMITH = Path(sys.executable).parent / "draftsmith"


def _doctor(tmp_path, **env) -> subprocess.CompletedProcess:
    settings = {"DRAFTSMITH_PUBLIC_URL": "http://127.0.0.1:3000", **env}
    return subprocess.run([str(DRAFTSMITH), "doctor", "kubernetes"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **settings}, timeout=60)


def test_the_readme_role_grants_exactly_what_the_engine_needs():
    [role] = [doc for doc in readme_rbac() if doc["kind"] == "Role"]
    granted = {(rule["apiGroups"][0], rule["resources"][0], tuple(rule["verbs"])) for rule in role["rules"]}
    assert granted == set(REQUIRED_PERMISSIONS)


def test_doctor_is_happy_with_the_documented_service_account(kube_cluster, tmp_path):
    done = _doctor(tmp_path, DRAFTSMITH_KUBERNETES_KUBECONFIG=str(kube_cluster.app_kubeconfig),
                   DRAFTSMITH_KUBERNETES_IMAGE="draftsmith:1",
                   DRAFTSMITH_KUBERNETES_EGRESS_PROXY="http://10.0.0.9:3128")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MISSING" not in done.stdout
    assert f"may create jobs in {NAMESPACE}" in done.stdout and "ready for runner: kubernetes" in done.stdout


def test_doctor_names_what_is_missing(kube_cluster, tmp_path):
    # The Role is bound in its namespace only: in another one, every permission is missing, and so is it
    done = _doctor(tmp_path, DRAFTSMITH_KUBERNETES_KUBECONFIG=str(kube_cluster.app_kubeconfig),
                   DRAFTSMITH_KUBERNETES_NAMESPACE="elsewhere")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "MISSING the runner image is set (DRAFTSMITH_KUBERNETES_IMAGE)" in lines
    assert "MISSING may create jobs in elsewhere" in lines and "MISSING may get pods/log in elsewhere" in lines
    assert "MISSING the namespace elsewhere exists" in lines
