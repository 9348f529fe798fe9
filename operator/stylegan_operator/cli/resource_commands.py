"""``stylegan crd`` and ``stylegan render``: the resource and what it becomes, without a cluster.

``stylegan crd`` prints the CustomResourceDefinition generated from the models in
``spec.py`` (manifests/crd/stylegan.dev_styleganruns.yaml is that output, committed, written
by ``stylegan crd -f FILE``); ``-o json`` prints the same object as JSON.
``stylegan render -f run.yaml`` prints the Service, ConfigMap and Job that one attempt of a
run becomes, exactly as the operator would create them (with a stand-in uid when the
manifest has none): a YAML stream, or with ``-o json`` one ``v1 List`` as ``kubectl get -o
json`` prints several objects. Its ``-f`` is the manifest read, as in kubectl, so the file to
write is ``--output-file`` alone. A bad spec exits 64 with one line naming the field.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from stylegan_common.cli import output_file_option, output_option
from stylegan_common.errors import EXIT_CONFIG
from stylegan_operator.api.crd import build_crd, crd_yaml
from stylegan_operator.reconcile.manifest import render_run, to_yaml_stream


def _write(text: str, output_file: Path | None, option: str) -> None:
    """``text`` to stdout, or to ``output_file`` (exit 64 naming ``option`` if it cannot be)."""
    if output_file is None:
        click.echo(text, nl=False)
        return
    try:
        output_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{option} {output_file}: cannot write: {exc}")


@click.command("crd")
@output_option("yaml", "json", help="YAML (what manifests/ commits) or JSON.")
@output_file_option("Write to this file instead of stdout.")
def crd_cmd(output: str, output_file: Path | None) -> None:
    """Print the StyleGANRun CustomResourceDefinition (generated from the models)."""
    text = crd_yaml() if output == "yaml" else json.dumps(build_crd(), indent=2) + "\n"
    _write(text, output_file, "--output-file")


def _load_manifest(path: str) -> dict[str, Any]:
    """The one StyleGANRun in ``path`` ('-' for stdin); exits 64 naming the file otherwise."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"{path}: cannot read a YAML manifest: {exc}")
    runs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "StyleGANRun"]
    if len(runs) != 1:
        _fail(f"{path}: expected exactly one StyleGANRun document, found {len(runs)}")
    return runs[0]


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_CONFIG)


@click.command("render")
@click.option(
    "-f",
    "--filename",
    "path",
    required=True,
    help="StyleGANRun manifest (YAML); '-' reads stdin.",
)
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Attempt number: the Job is <run>-a<N>.",
)
@click.option(
    "--resume",
    "resume_uri",
    default=None,
    help="Checkpoint the operator knew of, for the Job's stylegan.dev/resume-from annotation "
    "(the trainer resumes from latest.json at start-up regardless).",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=None,
    help="Node count of an elastic attempt (default: the most the spec allows).",
)
@click.option("--image", default=None, help="Trainer image when the spec names none.")
@output_option("yaml", "json", help="A YAML stream, or one JSON v1 List (as kubectl prints).")
@output_file_option("Write to this file instead of stdout.", short=False)
def render_cmd(
    path: str, attempt: int, resume_uri: str | None, nodes: int | None, image: str | None,
    output: str, output_file: Path | None,
) -> None:
    """Print the objects one attempt of a StyleGANRun becomes (a YAML stream)."""
    resource = _load_manifest(path)
    try:
        objects = render_run(resource, attempt, resume_uri, nodes=nodes, image=image)
    except ValueError as exc:  # SpecError included: it names the field
        _fail(f"{path}: {exc}")
    if output == "yaml":
        text = to_yaml_stream(objects)
    else:
        items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        text = json.dumps(items, indent=2) + "\n"
    _write(text, output_file, "--output-file")
