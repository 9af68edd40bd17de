"""deploy/k8s, rendered and checked offline: schemas (kubernetes-validate), then what the
manifests promise — probes, resources, secrets by reference, HPA/PDB per part, and a
NetworkPolicy graph that lets through exactly the calls Rapport makes."""

from __future__ import annotations

import copy
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.parts import PARTS
from tests.deploy.kustomize import Resource, image_name, pod_containers, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
KUBERNETES_VERSION = "1.33.0"
NAMES = [p.name for p in PARTS]

#: Who calls whom over HTTP, from the settings' *_URL fields: the gateway routes to every
#: service; customer360's privacy export reads the others; interactions and orders resolve
#: people at customer360. Nothing else may pass.
CALLS = {
    ("gateway", "customer360"),
    ("gateway", "interactions"),
    ("gateway", "orders"),
    ("gateway", "segmentation"),
    ("customer360", "interactions"),
    ("customer360", "orders"),
    ("customer360", "segmentation"),
    ("interactions", "customer360"),
    ("orders", "customer360"),
}

Rendered = list[Resource]


@pytest.fixture(scope="module", params=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render(BASE if request.param == "base" else OVERLAY)


def find(resources: Rendered, kind: str, name: str) -> Resource:
    matches = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def test_every_document_is_valid_against_the_kubernetes_schemas(rendered: Rendered) -> None:
    for resource in rendered:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_what_it_should() -> None:
    deployment = copy.deepcopy(find(render(BASE), "Deployment", "orders"))
    deployment["spec"]["replicaCount"] = 2  # not a field: strict mode must refuse it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    probe = copy.deepcopy(find(render(BASE), "Deployment", "orders"))
    probe["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(probe, KUBERNETES_VERSION, strict=True)


def test_the_python_renderer_refuses_kustomize_features_it_does_not_implement(
    tmp_path: Path,
) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\nconfigMapGenerator:\n  - name: x\n    literals: [A=1]\n"
    )
    with pytest.raises(ValueError, match="configMapGenerator"):
        render(tmp_path)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("directory", [BASE, OVERLAY], ids=["base", "overlay"])
def test_the_python_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    theirs = [doc for doc in yaml.safe_load_all(out) if doc]

    def key(r: Resource) -> tuple[str, str, str]:
        return (r["kind"], r["metadata"].get("namespace", ""), r["metadata"]["name"])

    assert sorted(render(directory), key=key) == sorted(theirs, key=key)


def test_each_part_has_deployment_service_hpa_and_pdb(rendered: Rendered) -> None:
    for name in NAMES:
        deployment = find(rendered, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        service = find(rendered, "Service", name)
        assert service["spec"]["selector"] == selector
        assert [p["port"] for p in service["spec"]["ports"]] == [8000]
        hpa = find(rendered, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pdb = find(rendered, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"] == selector
        # The PDB must leave room to drain a node at the HPA's minimum.
        assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_containers_run_their_part_with_probes_and_resources(rendered: Rendered) -> None:
    for name in NAMES:
        deployment = find(rendered, "Deployment", name)
        spec = pod_spec(deployment)
        assert spec is not None
        (container,) = spec["containers"]
        assert container["args"] == ["serve", name]
        assert image_name(container["image"]).endswith("rapport")
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port_names == {"http": 8000}
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        # uvicorn's graceful shutdown (20 s) fits in the grace period.
        assert spec["terminationGracePeriodSeconds"] > 20


def test_the_migration_job_migrates_with_the_same_image(rendered: Rendered) -> None:
    job = find(rendered, "Job", "rapport-migrate")
    (container,) = pod_containers(job)
    assert container["args"] == ["migrate"]
    images = {c["image"] for r in rendered if r["kind"] == "Deployment" for c in pod_containers(r)}
    assert images == {container["image"]}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_no_secret_value_is_committed(rendered: Rendered) -> None:
    assert not [r for r in rendered if r["kind"] == "Secret"]
    secretish = ("SECRET", "PASSWORD", "DATABASE_URL", "KEY")
    config = find(rendered, "ConfigMap", "rapport-config")["data"]
    for variable, value in config.items():
        if any(word in variable for word in secretish):
            # The only secret-like name allowed in the ConfigMap is the one that must be empty.
            assert (variable, value) == ("GATEWAY_DEV_JWT_SECRET", "")
    for resource in rendered:
        for container in pod_containers(resource):
            for env in container.get("env", []):
                if any(word in env["name"] for word in secretish):
                    assert "value" not in env, env["name"]
                    assert env["valueFrom"]["secretKeyRef"]["name"] == "rapport-secrets"


def test_production_settings_are_complete_with_the_secrets(rendered: Rendered) -> None:
    """The ConfigMap + the three secret keys give every part a configuration it accepts in
    production (so a fresh cluster does not crash-loop on a forgotten variable)."""
    from shared.parts import load
    from shared.settings import load_settings

    config = find(rendered, "ConfigMap", "rapport-config")["data"]
    secrets = {
        "database-url": "postgresql+asyncpg://rapport:pw@postgres:5432/rapport",
        "internal-token-secret": "x" * 40,
        "gateway-outbound-secret-key": "A" * 43 + "=",
    }
    for p in PARTS:
        deployment = find(rendered, "Deployment", p.name)
        (container,) = pod_containers(deployment)
        env = dict(config)
        for item in container["env"]:
            env[item["name"]] = secrets[item["valueFrom"]["secretKeyRef"]["key"]]
        with pytest.MonkeyPatch.context() as mp:
            for variable, value in env.items():
                mp.setenv(variable, value)
            settings = load_settings(load(p.settings))
        assert settings.environment == "production"
        assert settings.database_url == secrets["database-url"]


def test_only_the_gateway_is_exposed_by_the_ingress(rendered: Rendered) -> None:
    (ingress,) = [r for r in rendered if r["kind"] == "Ingress"]
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"gateway"}
    assert ingress["spec"]["tls"]
    # only public paths: metrics and readiness are for the cluster, not the internet
    exposed = {path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert exposed == {"/api", "/webhooks", "/docs", "/openapi.json", "/asyncapi.json", "/health"}
    for service in (r for r in rendered if r["kind"] == "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


# --- NetworkPolicy semantics ----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels) or an address outside the cluster (ip)."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    namespace_labels: dict[str, str] = field(default_factory=dict, hash=False)
    ip: str | None = None


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is modelled"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False  # in-cluster pods are reached by selectors here, not by addresses
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or _matches(peer["podSelector"], other.labels)


def _rule_allows(
    rule: dict[str, Any], key: str, policy_namespace: str, other: Endpoint, port: int
) -> bool:
    ports = rule.get("ports")
    if ports and not any(
        p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports
    ):
        return False
    peers = rule.get(key)
    return not peers or any(_peer_matches(peer, policy_namespace, other) for peer in peers)


def _direction_allows(
    policies: list[Resource], kind: str, pod: Endpoint, other: Endpoint, port: int
) -> bool:
    if pod.namespace is None:
        return True  # outside the cluster: no policy of ours applies
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and _matches(p["spec"]["podSelector"], pod.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    key, rules = ("from", "ingress") if kind == "Ingress" else ("to", "egress")
    return any(
        _rule_allows(rule, key, p["metadata"]["namespace"], other, port)
        for p in selecting
        for rule in p["spec"].get(rules, [])
    )


def allowed(policies: list[Resource], source: Endpoint, target: Endpoint, port: int) -> bool:
    return _direction_allows(policies, "Egress", source, target, port) and _direction_allows(
        policies, "Ingress", target, source, port
    )


def _world(rendered: Rendered) -> tuple[list[Resource], dict[str, Endpoint]]:
    policies = copy.deepcopy([r for r in rendered if r["kind"] == "NetworkPolicy"])
    namespace = next(
        (r["metadata"]["namespace"] for r in rendered if "namespace" in r["metadata"]), "default"
    )
    for policy in policies:
        policy["metadata"].setdefault("namespace", namespace)

    def ns(name: str) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": name}

    endpoints = {
        name: Endpoint(
            name,
            namespace,
            find(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"],
            ns(namespace),
        )
        for name in NAMES
    }
    endpoints |= {
        "ingress-controller": Endpoint(
            "ingress-controller", "ingress-nginx", {"app": "ingress-nginx"}, ns("ingress-nginx")
        ),
        "prometheus": Endpoint("prometheus", "monitoring", {"app": "prometheus"}, ns("monitoring")),
        "intruder": Endpoint("intruder", "default", {"app": "intruder"}, ns("default")),
        "neighbour": Endpoint("neighbour", namespace, {"app": "other"}, ns(namespace)),
        "dns": Endpoint("dns", "kube-system", {"k8s-app": "kube-dns"}, ns("kube-system")),
        "internet": Endpoint("internet", ip="93.184.215.14"),
        "private-host": Endpoint("private-host", ip="10.1.2.3"),
        "metadata-service": Endpoint("metadata-service", ip="169.254.169.254"),
    }
    return policies, endpoints


def test_network_policies_allow_exactly_rapports_calls(rendered: Rendered) -> None:
    policies, at = _world(rendered)
    sources = [*NAMES, "ingress-controller", "intruder", "neighbour"]
    reachable = {
        (source, target)
        for source in sources
        for target in NAMES
        if source != target and allowed(policies, at[source], at[target], 8000)
    }
    assert reachable == CALLS | {("ingress-controller", "gateway")}
    for name in NAMES:
        assert allowed(policies, at["prometheus"], at[name], 8000), f"{name} /metrics"
        assert allowed(policies, at[name], at["dns"], 53)
        assert not allowed(policies, at[name], at["intruder"], 8000)
    # Only the gateway leaves the cluster (outbound webhooks, the IdP), to public addresses.
    for name in NAMES:
        assert allowed(policies, at[name], at["internet"], 443) is (name == "gateway")
        assert not allowed(policies, at[name], at["private-host"], 443)
        assert not allowed(policies, at[name], at["metadata-service"], 80)


def test_every_part_reaches_postgresql_and_kafka(rendered: Rendered) -> None:
    policies, at = _world(rendered)
    overlay = "namespace" in find(rendered, "Deployment", "gateway")["metadata"]
    if overlay:  # the example overlay narrows both to its addresses
        postgres = Endpoint("postgres", ip="10.20.0.7")
        kafka = Endpoint(
            "kafka",
            "data",
            {"app.kubernetes.io/name": "kafka"},
            {"kubernetes.io/metadata.name": "data"},
        )
        elsewhere = Endpoint("elsewhere", ip="10.99.0.1")
    else:
        postgres = Endpoint("postgres", ip="10.20.0.7")
        kafka = Endpoint("kafka", ip="10.30.0.7")
        elsewhere = None
    for name in [*NAMES, "rapport-migrate"]:
        source = at.get(name) or Endpoint(
            name,
            at["gateway"].namespace,
            find(rendered, "Job", name)["spec"]["template"]["metadata"]["labels"],
            at["gateway"].namespace_labels,
        )
        assert allowed(policies, source, postgres, 5432), name
        assert allowed(policies, source, kafka, 9092), name
        assert not allowed(policies, source, kafka, 8000), name
        if elsewhere is not None:
            assert not allowed(policies, source, kafka, 5432), name
            assert not allowed(policies, source, elsewhere, 5432), name
