"""deploy/kubernetes is valid Kubernetes and says what the server reads.

Every document of the kustomization is validated with kubernetes-validate (bundled schemas,
offline, strict, fixed Kubernetes versions); a deliberately broken manifest shows the check
fails. Then the scale-out wiring: the server runs as at least two replicas with PostgreSQL,
Redis and the gateway, probes on /health, every MCP_ variable is a setting, every ``$(VAR)``
is defined before use, every Secret key is one the documented command creates, and every
Service and NetworkPolicy selects the pods it is meant for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from python_mcp_server.docs_gen.settings_ref import env_names
from python_mcp_server.settings import Settings
from tests.deploy.kustomize_render import KUBERNETES_VERSIONS, RenderError, problems, render

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

Document = dict[str, Any]


@pytest.fixture(scope="module")
def documents() -> list[tuple[str, Document]]:
    return render(KUBERNETES)


def _find(documents: list[tuple[str, Document]], kind: str, name: str) -> Document:
    for _, document in documents:
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document
    raise AssertionError(f"no {kind}/{name} in deploy/kubernetes")


def _container(documents: list[tuple[str, Document]], kind: str, name: str) -> Document:
    containers = _find(documents, kind, name)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def _env(container: Document) -> dict[str, Document]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def _workloads(documents: list[tuple[str, Document]]) -> list[Document]:
    kinds = {"Deployment", "StatefulSet", "DaemonSet"}
    return [document for _, document in documents if document["kind"] in kinds]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid(documents: list[tuple[str, Document]], version: str) -> None:
    assert documents
    assert problems(documents, version) == []


def test_every_manifest_file_is_a_resource_of_the_kustomization(
    documents: list[tuple[str, Document]],
) -> None:
    listed = {name for name, _ in documents}
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed


BROKEN = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: misspelt-field
spec:
  replica: 2
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - {name: broken, image: example/broken:1}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: wrong-type
spec:
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - name: broken
          image: example/broken:1
          ports:
            - {containerPort: "http"}
---
apiVersion: example.com/v1
kind: NoSuchKind
metadata:
  name: unknown
"""


def test_a_broken_manifest_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: python-mcp\nresources:\n  - broken.yaml\n"
    )
    (tmp_path / "broken.yaml").write_text(BROKEN)
    rendered = render(tmp_path)
    assert [d["metadata"]["namespace"] for _, d in rendered] == ["python-mcp"] * 3
    for version in KUBERNETES_VERSIONS:
        found = problems(rendered, version)
        assert len(found) == 3, found
        assert "Deployment/misspelt-field" in found[0], found
        assert "'replica' was unexpected" in found[0], found
        assert "Deployment/wrong-type" in found[1], found
        assert "containers.0.ports.0.containerPort" in found[1], found
        assert "NoSuchKind/unknown" in found[2], found
    # The same documents made right pass: the failures above are the planted faults.
    fixed = BROKEN.replace("replica: 2", "replicas: 2").replace('"http"', "8000")
    (tmp_path / "broken.yaml").write_text(fixed.split("---")[0] + "---" + fixed.split("---")[1])
    assert problems(render(tmp_path), KUBERNETES_VERSIONS[0]) == []


def test_a_kustomization_this_renderer_cannot_apply_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: []\npatches:\n  - path: p.yaml\n"
    )
    with pytest.raises(RenderError, match="patches"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - missing.yaml\n"
    )
    with pytest.raises(RenderError, match=r"missing\.yaml"):
        render(tmp_path)


def test_the_server_scales_out_on_postgresql_redis_and_the_gateway(
    documents: list[tuple[str, Document]],
) -> None:
    deployment = _find(documents, "Deployment", "python-mcp-server")
    assert deployment["spec"]["replicas"] >= 2
    container = _container(documents, "Deployment", "python-mcp-server")
    env = _env(container)
    urls = {
        "MCP_DATABASE_URL": ("postgresql", "postgres"),
        "MCP_REDIS_URL": ("redis", "redis"),
        "MCP_GATEWAY_URL": ("http", "enterprise-gateway"),
    }
    for variable, (scheme, service_name) in urls.items():
        url = urlsplit(re.sub(r"\$\(\w+\)", "secret", env[variable]["value"]))
        assert url.scheme == scheme, variable
        assert url.hostname == service_name, variable
        service = _find(documents, "Service", service_name)
        assert url.port in {port["port"] for port in service["spec"]["ports"]}, variable
    # Passwords and tokens only through the Secret.
    for variable in ("MCP_AUTH_TOKEN", "MCP_GATEWAY_TOKEN", "DATABASE_PASSWORD", "REDIS_PASSWORD"):
        assert "secretKeyRef" in env[variable]["valueFrom"], variable
    # Kernel pods (user code) are bounded: Enterprise Gateway renders these as the pod's
    # resources.
    for variable in ("KERNEL_MEMORY", "KERNEL_MEMORY_LIMIT", "KERNEL_CPUS_LIMIT"):
        assert env[variable]["value"], variable
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health"
        assert check["port"] in {port["containerPort"] for port in container["ports"]}


def test_every_mcp_variable_is_a_setting(documents: list[tuple[str, Document]]) -> None:
    known = {env for name, field in Settings.model_fields.items() for env in env_names(name, field)}
    for workload in _workloads(documents):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for variable in _env(container):
                if variable.startswith("MCP_"):
                    assert variable in known, f"{variable} is no setting of the server"


def test_every_variable_reference_is_defined_before_use(
    documents: list[tuple[str, Document]],
) -> None:
    # Kubernetes leaves an undefined $(NAME) in the value as it is, silently.
    for workload in _workloads(documents):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            defined: set[str] = set()
            for entry in container.get("env", []):
                for reference in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                    assert reference in defined, f"{entry['name']} uses $({reference})"
                defined.add(entry["name"])
            for text in container.get("args", []) + container.get("command", []):
                for reference in re.findall(r"\$\((\w+)\)", text):
                    assert reference in defined, f"{container['name']} uses $({reference})"


def _secret_keys(documents: list[tuple[str, Document]]) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for workload in _workloads(documents):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    return refs


def test_every_secret_key_is_created_by_the_documented_command(
    documents: list[tuple[str, Document]],
) -> None:
    refs = _secret_keys(documents)
    assert {name for name, _ in refs} == {"python-mcp-tokens"}
    for source in (KUBERNETES / "kustomization.yaml", DEPLOYMENT_DOC):
        # The command runs from "create secret generic python-mcp-tokens" over the lines
        # its backslashes continue.
        command = re.search(
            r"create secret generic python-mcp-tokens((?:.*\\\n)*.*)", source.read_text()
        )
        assert command, f"{source.name} shows no command creating the Secret"
        created = set(re.findall(r"--from-literal=([\w-]+)=", command.group(1)))
        assert {key for _, key in refs} == created, source.name


def test_services_and_network_policies_select_their_pods(
    documents: list[tuple[str, Document]],
) -> None:
    pods = {
        workload["metadata"]["name"]: workload["spec"]["template"]["metadata"]["labels"]
        for workload in _workloads(documents)
    }
    for _, document in documents:
        if document["kind"] == "Service":
            selector = document["spec"]["selector"]
            assert any(_matches(selector, labels) for labels in pods.values()), document
        if document["kind"] in {"StatefulSet", "Deployment"}:
            assert _matches(
                document["spec"]["selector"]["matchLabels"], pods[document["metadata"]["name"]]
            )
    for name in ("postgres", "redis"):
        policy = _find(documents, "NetworkPolicy", name)["spec"]
        assert _matches(policy["podSelector"]["matchLabels"], pods[name])
        sources = [
            peer["podSelector"]["matchLabels"]
            for rule in policy["ingress"]
            for peer in rule["from"]
        ]
        # The server replicas, and nothing else (kernel pods run user code).
        assert sources == [{"app": "python-mcp-server"}]
        assert _matches(sources[0], pods["python-mcp-server"])
        assert not _matches(sources[0], pods["enterprise-gateway"])
