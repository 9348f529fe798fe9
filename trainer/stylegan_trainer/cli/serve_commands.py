"""``stylegan serve``: a checkpoint's faces over HTTP, locally or as a run's ``spec.serve``.

The flags are the contract the operator renders into the server's Deployment
(``stylegan_operator.reconcile.serve_render``); keep them in step.
"""

from __future__ import annotations

import logging
import sys

import click

from stylegan_common.cli import run_command
from stylegan_common.errors import EXIT_CONFIG, EXIT_RETRYABLE, ConfigError, StorageError


@click.command("serve")
@click.option("--checkpoint", required=True,
              help="A checkpoint .pt, or a run's checkpoint folder / gs:// prefix with "
                   "latest.json (followed as training moves on).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--psi", type=click.FloatRange(0, 2), default=0.7, show_default=True,
              help="Truncation psi when a request gives none.")
@click.option("--max-batch", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Most faces a forward pass may batch (accepted; requests are still "
                   "generated one at a time).")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=5.0,
              show_default=True, help="How long a pass may wait for more requests (accepted, "
              "as --max-batch).")
@click.option("--reload-seconds", type=click.FloatRange(1, 86400), default=30.0,
              show_default=True, help="How often latest.json is read for a newer checkpoint.")
@click.option("--max-size", type=click.IntRange(4, 4096), default=1024, show_default=True,
              help="Largest image size a request may ask for.")
def serve_cmd(checkpoint: str, host: str, port: int, device: str, psi: float, max_batch: int,
              batch_wait_ms: float, reload_seconds: float, max_size: int) -> None:
    """Serve a checkpoint's faces: /face?seed=N&psi=0.7, a page at /, /metrics."""
    from stylegan_trainer.sampling.generate import resolve_device
    from stylegan_trainer.serve.server import FaceServer, make_http_server
    from stylegan_trainer.serve.source import GeneratorSource

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        torch_device = resolve_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    source = GeneratorSource(checkpoint, torch_device, reload_seconds)
    try:
        served = source.load()
    except ConfigError as exc:
        if not source.follows_pointer:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        click.echo(f"waiting for a checkpoint: {exc}", err=True)  # /readyz says 503 meanwhile
        served = None
    except StorageError as exc:
        click.echo(f"error: --checkpoint: {exc}", err=True)
        sys.exit(EXIT_RETRYABLE)
    server = FaceServer(source, psi=psi, max_size=max_size)
    httpd = make_http_server(server, host, port)
    source.start_watching()
    shown = f"kimg {served.kimg:.1f} of {served.name}" if served else "no checkpoint yet"
    click.echo(f"serving faces ({shown}) at http://{host}:{httpd.server_address[1]}/", err=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        source.stop()
        httpd.server_close()


def main() -> None:
    run_command(serve_cmd)
