"""``stylegan crd`` and ``stylegan render``: the resource and what it becomes, without a cluster.

``stylegan crd`` prints the CustomResourceDefinition generated from the models in
``spec.py`` (manifests/crd/stylegan.dev_styleganruns.yaml is that output, committed).
``stylegan render -f run.yaml`` prints the Service, ConfigMap and Job that one attempt of a
run becomes, exactly as the operator would create them (with a stand-in uid when the
manifest has none). A bad spec exits 64 with one line naming the field.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from stylegan_operator.api.crd import crd_yaml
from stylegan_operator.reconcile.manifest import render_run, to_yaml_stream

EXIT_BAD_INPUT = 64


@click.command("crd")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
def crd_cmd(output: Path | None) -> None:
    """Print the StyleGANRun CustomResourceDefinition (generated from the models)."""
    text = crd_yaml()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


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
    sys.exit(EXIT_BAD_INPUT)


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
def render_cmd(
    path: str, attempt: int, resume_uri: str | None, nodes: int | None, image: str | None
) -> None:
    """Print the objects one attempt of a StyleGANRun becomes (a YAML stream)."""
    resource = _load_manifest(path)
    try:
        objects = render_run(resource, attempt, resume_uri, nodes=nodes, image=image)
    except ValueError as exc:  # SpecError included: it names the field
        _fail(f"{path}: {exc}")
    click.echo(to_yaml_stream(objects), nl=False)
