"""``stylegan render``: a StyleGANRun manifest as the objects of one attempt, in YAML.

Outside a cluster there is no operator and no run object: the manifest is validated, given
the metadata a cluster would (a stand-in uid), and rendered the way the operator would
render its first attempt (Service, ConfigMap, Job), plus the server's Deployment and Service
when ``spec.serve.enabled`` (the operator makes those once the run has a checkpoint), then
written as one YAML stream.
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from stylegan_operator.api.names import KIND
from stylegan_operator.api.validation import SpecError, validate_spec
from stylegan_operator.reconcile.jobs import build_job
from stylegan_operator.reconcile.render import build_config_map, build_service
from stylegan_operator.reconcile.serve_render import build_serve_deployment, build_serve_service


def run_meta_from(resource: dict[str, Any]) -> dict[str, Any]:
    """The run metadata render needs, from a StyleGANRun manifest.

    Outside a cluster a manifest has no uid; a stable stand-in derived from the namespace
    and name keeps ``stylegan render`` output deterministic.
    """
    meta = resource.get("metadata") or {}
    name = meta.get("name")
    if not name or not isinstance(name, str):
        raise ValueError("metadata.name is required in the StyleGANRun manifest")
    namespace = meta.get("namespace") or "default"
    uid = meta.get("uid") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"stylegan.dev/{namespace}/{name}"))
    return {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": meta.get("generation", 1),
    }


def render_run(
    resource: dict[str, Any],
    attempt: int = 1,
    resume_uri: str | None = None,
    *,
    nodes: int | None = None,
    image: str | None = None,
) -> list[dict[str, Any]]:
    """Every object of one attempt of a StyleGANRun manifest: Service, ConfigMap, Job, and
    the server's Deployment and Service with ``spec.serve.enabled``.

    ``resume_uri`` is what the operator would record as known (the Job's
    ``stylegan.dev/resume-from`` annotation); the ConfigMap says ``resume: latest`` all the
    same, as the operator's does (``render.trainer_options``).

    Raises:
        SpecError: the spec is invalid (names the field).
        ValueError: the manifest or the arguments are (names what).
    """
    if resource.get("kind") not in (None, KIND):
        raise ValueError(f"kind must be {KIND}, got {resource.get('kind')!r}")
    raw_spec = resource.get("spec")
    if not isinstance(raw_spec, dict):
        raise SpecError("spec", "is required: the StyleGANRun's desired state (an object)")
    spec = validate_spec(raw_spec)
    meta = run_meta_from(resource)
    objects = [
        build_service(meta, spec),
        build_config_map(meta, spec, attempt),
        build_job(meta, spec, attempt, resume_uri, nodes=nodes, image=image),
    ]
    if spec.serve.enabled:
        objects += [build_serve_deployment(meta, spec, image=image), build_serve_service(meta)]
    return objects


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the trainer config) as readable ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def to_yaml_stream(objects: list[dict[str, Any]]) -> str:
    """A ``---`` separated YAML stream, keys in the order the builders wrote them."""
    return yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, explicit_start=True)
