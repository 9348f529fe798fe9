"""``stylegan operator``: run the kopf operator with typed settings.

The flags become ``STYLEGAN_OPERATOR_*`` environment variables (``handlers.OperatorConfig``)
before the handlers module is imported, because kopf fixes a timer's interval when the
handler is registered; ``kopf run -m stylegan_operator.controller.handlers`` with the same variables
behaves the same.

Peering: the operator runs **standalone** by default, as **one replica** with the
Deployment strategy ``Recreate`` (manifests/operator/deployment.yaml). kopf has no leader
election; its peering only pauses lower-priority peers and freezes peers of equal priority
(kopf #734, #1266), and it needs a cluster-wide peering CRD. One replica that is replaced,
never doubled, is simpler and enough: a restarted operator loses nothing, since every
decision is recomputed from the cluster (level-triggered) and the spend lives in the run's
status. ``--peering NAME`` turns kopf's peering on for those who want a standby.

Liveness: kopf serves ``/healthz`` on ``--liveness-port`` (its probes include how many
reconciles ran and how long ago the last one); ``/metrics`` is served on
``--metrics-port`` from ``metrics.REGISTRY``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

ENV_PREFIX = "STYLEGAN_OPERATOR_"  # settings.ENV_PREFIX; not imported: see the docstring


def operator_env(
    *,
    interval: float,
    metrics_port: int,
    trainer_image: str | None,
    prices: Path | None,
    image_pull_grace: float,
    report_status: bool,
    gpu_type_label: str | None = None,
) -> dict[str, str]:
    """The environment ``handlers.OperatorConfig.from_env`` reads, from the flags."""
    env = {
        "INTERVAL": f"{interval:g}",
        "METRICS_PORT": str(metrics_port),
        "IMAGE_PULL_GRACE": f"{image_pull_grace:g}",
        "REPORT_STATUS": "true" if report_status else "false",
    }
    if trainer_image:
        env["TRAINER_IMAGE"] = trainer_image
    if prices is not None:
        env["PRICES_FILE"] = str(prices)
    if gpu_type_label is not None:
        env["GPU_TYPE_LABEL"] = gpu_type_label
    return {ENV_PREFIX + k: v for k, v in env.items()}


@click.command("operator")
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
              help="Namespace to serve (repeatable; globs allowed). Default: all namespaces.")
@click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True,
              help="Serve every namespace (the default when no --namespace is given).")
@click.option("--standalone/--no-standalone", default=True, show_default=True,
              help="Run without kopf peering (one replica, Deployment strategy Recreate).")
@click.option("--peering", "peering_name", default=None, metavar="NAME",
              help="Use kopf peering under this name (implies --no-standalone).")
@click.option("--priority", type=int, default=0, show_default=True,
              help="kopf peering priority (with --peering).")
@click.option("--liveness-port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port of kopf's /healthz endpoint; 0 turns it off.")
@click.option("--liveness-address", default="0.0.0.0", show_default=True)
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="Port of the Prometheus /metrics endpoint; 0 turns it off.")
@click.option("--interval", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="Seconds between periodic reconciles (cost, deadline, TTL) of a run.")
@click.option("--trainer-image", default=None, envvar="STYLEGAN_TRAINER_IMAGE",
              help="Trainer image for runs that name none.")
@click.option("--prices", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="YAML price catalog (prices per GPU type, exchange rates).")
@click.option("--image-pull-grace", type=click.FloatRange(min=0), default=1800.0,
              show_default=True, help="Seconds a pod may fail to pull its image (the kubelet "
              "retrying) before the run fails; the run goes on if the image arrives sooner.")
@click.option("--gpu-type-label", default=None, metavar="KEY",
              help="The cluster's own node label whose value is a spec.resources.gpuType, "
              "selected besides GKE's and nvidia.com/gpu.product (default "
              "stylegan.dev/gpu-type; '-' for none).")
@click.option("--report-status/--no-report-status", default=True, show_default=True,
              help="Give trainer pods a token that may patch their own run's status.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator_cmd(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    standalone: bool,
    peering_name: str | None,
    priority: int,
    liveness_port: int,
    liveness_address: str,
    metrics_port: int,
    interval: float,
    trainer_image: str | None,
    prices: Path | None,
    image_pull_grace: float,
    gpu_type_label: str | None,
    report_status: bool,
    verbose: bool,
) -> None:
    """Run the StyleGANRun operator (kopf) until interrupted."""
    if namespaces and all_namespaces:
        raise click.UsageError("use --namespace or --all-namespaces, not both")
    os.environ.update(operator_env(
        interval=interval, metrics_port=metrics_port, trainer_image=trainer_image,
        prices=prices, image_pull_grace=image_pull_grace, report_status=report_status,
        gpu_type_label=gpu_type_label,
    ))  # fmt: skip
    import kopf

    if "stylegan_operator.controller.handlers" in sys.modules:
        # Imported early (tests): refresh what is read at call time.
        from stylegan_operator.controller import handlers

        handlers.CONFIG = handlers.OperatorConfig.from_env()
        handlers.STATE.decisions = None
    import stylegan_operator.controller.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=verbose, debug=verbose)
    liveness = (
        f"http://{liveness_address}:{liveness_port}/healthz" if liveness_port else None
    )
    use_peering = peering_name is not None or not standalone
    kopf.run(
        standalone=not use_peering,
        peering_name=peering_name if use_peering else None,
        priority=priority,
        namespaces=namespaces,
        clusterwide=not namespaces,
        liveness_endpoint=liveness,
    )
