"""`draftsmith doctor kubernetes`: is the configured cluster ready for `runner: kubernetes`; if not, what is missing."""

from __future__ import annotations

from dataclasses import dataclass

from app.engines.kubernetes.cluster import REQUIRED_PERMISSIONS, api_client, describe


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    fix: str = ""


def run_checks(settings, client=None) -> list[Check]:
    """Each check once, in the order a operator would fix them; an unreachable cluster stops the rest."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    namespace = settings.kubernetes_namespace
    checks = [Check(bool(settings.kubernetes_image), "the runner image is set (DRAFTSMITH_KUBERNETES_IMAGE)",
                    "set DRAFTSMITH_KUBERNETES_IMAGE to an image the cluster can pull: this project's, with the "
                    "agents"),
              Check(bool(settings.public_url), "pods can call back (DRAFTSMITH_PUBLIC_URL)",
                    "set DRAFTSMITH_PUBLIC_URL to an address the cluster's pods reach this app at")]
    try:
        api = client or api_client(settings)
    except Exception as exc:
        return [*checks, Check(False, "a cluster is configured",
                               f"set DRAFTSMITH_KUBERNETES_KUBECONFIG ({describe(exc)})")]
    try:
        version = k8s.VersionApi(api).get_code()
        checks.append(Check(True, f"the cluster answers ({api.configuration.host}, Kubernetes {version.git_version})"))
    except Exception as exc:
        return [*checks, Check(False, f"the cluster answers ({api.configuration.host})", describe(exc))]
    authz = k8s.AuthorizationV1Api(api)
    for group, resource, verbs in REQUIRED_PERMISSIONS:
        plural, _, sub = resource.partition("/")
        for verb in verbs:
            review = authz.create_self_subject_access_review(k8s.V1SelfSubjectAccessReview(
                spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=k8s.V1ResourceAttributes(
                    group=group, resource=plural, subresource=sub or None, verb=verb, namespace=namespace))))
            checks.append(Check(bool(review.status.allowed), f"may {verb} {resource} in {namespace}",
                                "bind the account to the Role in the README's Kubernetes section"))
    checks.append(_namespace_exists(k8s, ApiException, api, namespace))
    checks.append(Check(bool(settings.kubernetes_egress_proxy), "runs go out through an egress proxy "
                        "(DRAFTSMITH_KUBERNETES_EGRESS_PROXY)",
                        "without it a run's NetworkPolicy lets named hosts out to any public address on their ports"))
    return checks


def _namespace_exists(k8s, ApiException, api, namespace: str) -> Check:
    what = f"the namespace {namespace} exists"
    try:
        k8s.CoreV1Api(api).read_namespace(namespace)
        return Check(True, what)
    except ApiException as exc:
        if exc.status == 404:
            return Check(False, what, f"kubectl create namespace {namespace}")
        if exc.status != 403:
            return Check(False, what, describe(exc))
    # The Role is namespaced, so reading the namespace itself may be refused: a dry-run create answers
    # 404 in a namespace that does not exist, and stores nothing.
    try:
        k8s.CoreV1Api(api).create_namespaced_secret(namespace, {"metadata": {"generateName": "draftsmith-doctor-"}},
                                                    dry_run="All")
        return Check(True, what)
    except ApiException as exc:
        if exc.status == 404:
            return Check(False, what, f"kubectl create namespace {namespace}")
        return Check(False, what, describe(exc))
