"""``newsletter serve``: the public web app (one-click unsubscribe, webhooks, archive)."""

from __future__ import annotations

import click
import uvicorn

from ..web import create_app
from . import cli
from .context import AppContext, pass_app


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep the default behind a reverse proxy on this host.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 lets the system pick a free one.")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-For/-Proto headers are believed (comma-separated).")
@pass_app
def serve(app: AppContext, host: str, port: int, forwarded_allow_ips: str) -> None:
    """Serve unsubscribe links, provider webhooks and the archive over HTTP."""
    config = uvicorn.Config(
        create_app(app.settings, app.store),
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_config=None,  # keep the CLI's logging set-up
        log_level=app.settings.log_level,
        server_header=False,
        ws="none",
        lifespan="off",
    )
    # Bound and listening before uvicorn starts, so the real port (with --port 0) can be
    # announced whatever the log level, and connections made from then on wait in the backlog.
    sock = config.bind_socket()
    sock.listen(config.backlog)
    address, bound_port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    click.echo(f"Serving on http://{shown}:{bound_port} (Ctrl-C to stop)", err=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully and re-raises Ctrl-C for its caller: a normal stop.
        click.echo("Stopped.", err=True)
    finally:
        sock.close()
