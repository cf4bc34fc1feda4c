"""Plain-file rendering of a kustomization and schema validation of what it yields.

Enough of kustomize for ``deploy/kubernetes`` (``resources`` that are files, and
``namespace``), no kubectl needed; a kustomization that uses anything else is refused, so
the test cannot pass on a render that silently ignores part of it. Each document is then
validated with ``kubernetes-validate``'s bundled schemas (strict: unknown fields are errors)
against fixed Kubernetes versions, offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes_validate import utils as kv

#: Kubernetes versions the manifests must be valid for. Fixed here, never "the newest
#: bundled" (kubernetes-validate's own default, which moves with each release of it).
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")

SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "resources"}

#: Kinds that live outside namespaces (kustomize leaves their namespace unset).
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
}


class RenderError(Exception):
    """The kustomization uses something this renderer does not do, or a file is unreadable."""


def render(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every document of the kustomization in ``folder``, as ``(file name, document)``."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    if not isinstance(kustomization, dict):
        raise RenderError("kustomization.yaml is not a mapping")
    unsupported = set(kustomization) - SUPPORTED_KEYS
    if unsupported:
        raise RenderError(f"kustomization keys this renderer does not apply: {unsupported}")
    if kustomization.get("kind") != "Kustomization":
        raise RenderError("kustomization.yaml is not of kind Kustomization")
    namespace = kustomization.get("namespace")
    documents: list[tuple[str, dict[str, Any]]] = []
    for name in kustomization.get("resources", []):
        path = folder / name
        if not path.is_file():
            raise RenderError(f"resource {name} is not a file of {folder}")
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise RenderError(f"{name}: a document that is not a mapping")
            if namespace and document.get("kind") not in CLUSTER_SCOPED:
                document.setdefault("metadata", {})["namespace"] = namespace
            documents.append((name, document))
    return documents


def problems(documents: list[tuple[str, dict[str, Any]]], version: str) -> list[str]:
    """Every schema error of the documents against one Kubernetes version; none is a pass.

    A kind with no bundled schema is an error too (kubernetes-validate's command line only
    warns about it)."""
    found: list[str] = []
    for name, document in documents:
        label = f"{name}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
        try:
            kv.validate(document, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            found.append(f"{label} at {where or '<root>'}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            found.append(f"{label}: {exc.message}")
        except (KeyError, TypeError) as exc:
            found.append(f"{label}: not a Kubernetes object ({exc!r})")
    return found
