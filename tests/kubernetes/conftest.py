"""A scene whose app sends runs to the session's real API server, as the README's ServiceAccount."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Scene
from tests.support.kube_cluster import kube_cluster, kubelet  # noqa: F401 (fixtures)

IMAGE = "draftsmith-runner:test"


@pytest.fixture
def kube_scene(fakehub, make_draftsmith, kube_cluster):  # noqa: F811
    """make_scene for runner: kubernetes: the app's kubeconfig holds the ServiceAccount's token, nothing more."""

    def make(**overrides) -> Scene:
        settings = {"DRAFTSMITH_KUBERNETES_KUBECONFIG": str(kube_cluster.app_kubeconfig),
                    "DRAFTSMITH_KUBERNETES_IMAGE": IMAGE, **overrides}
        server = make_draftsmith(fakehub.env(), **settings)
        fakehub.webhook_url = server.webhook_url
        return Scene(fakehub, server)

    return make
