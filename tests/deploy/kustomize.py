"""Just enough kustomize, in Python, to render deploy/k8s without the kustomize binary.

Supported, because deploy/k8s uses them: ``resources`` (files and directories with their own
kustomization), ``namespace``, ``images`` and ``patches`` whose ``path`` is a strategic-merge
patch naming its target by kind and name. Anything else in a kustomization is refused, so
the renderer cannot silently ignore a feature someone starts using. Where ``kubectl`` is
installed, tests/deploy/test_kubernetes.py also checks this renderer against ``kubectl
kustomize``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
#: Kinds whose objects live outside namespaces (the namespace transformer leaves them).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render(directory: Path) -> list[Resource]:
    """The resources a kustomization directory produces, in kustomize's order of inclusion."""
    kustomization = load_documents(directory / "kustomization.yaml")[0]
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(f"{directory}: unsupported kustomization fields {sorted(unsupported)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_documents(path)
    seen: set[tuple[str, str]] = set()
    for resource in resources:
        key = (resource["kind"], resource["metadata"]["name"])
        if key in seen:
            raise ValueError(f"{directory}: {key} defined twice")
        seen.add(key)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise ValueError(f"{directory}: only file patches are supported, got {patch_entry}")
        for patch in load_documents(directory / patch_entry["path"]):
            target = _find(resources, patch["kind"], patch["metadata"]["name"])
            merged = strategic_merge(target, patch)
            target.clear()
            target.update(merged)
    namespace = kustomization.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for resource in resources:
            for container in pod_containers(resource):
                if image_name(container["image"]) == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}" + (
                        f":{image['newTag']}" if "newTag" in image else ""
                    )
    return resources


def _find(resources: list[Resource], kind: str, name: str) -> Resource:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise ValueError(f"patch target {kind}/{name} not found")


def strategic_merge(original: Any, patch: Any) -> Any:
    """Maps merge key by key; lists of named objects (containers, env…) merge by ``name``;
    any other list is replaced, as Kubernetes does for lists without a merge key."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(original)
        for key, value in patch.items():
            merged[key] = strategic_merge(original[key], value) if key in original else value
        return merged
    if (
        isinstance(original, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in original + patch)
    ):
        merged_list = copy.deepcopy(original)
        for item in patch:
            for index, existing in enumerate(merged_list):
                if existing["name"] == item["name"]:
                    merged_list[index] = strategic_merge(existing, item)
                    break
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def pod_spec(resource: Resource) -> dict[str, Any] | None:
    if resource["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        spec: dict[str, Any] = resource["spec"]["template"]["spec"]
        return spec
    return None


def pod_containers(resource: Resource) -> list[dict[str, Any]]:
    spec = pod_spec(resource)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def image_name(image: str) -> str:
    """``registry:5000/rapport:1.0@sha256:…`` → ``registry:5000/rapport``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name
