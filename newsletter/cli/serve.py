"""``newsletter serve``: the public web app (one-click unsubscribe, webhooks, archive), the
desk and the HTTP API, in one process or in several sharing one socket (``--workers``)."""

from __future__ import annotations

import gc
import logging
from functools import partial

import click
import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from ..config import Settings
from ..store import Store
from ..web import create_app
from . import LOG_FORMAT, cli
from .context import AppContext, pass_app


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep the default behind a reverse proxy on this host.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 lets the system pick a free one.")
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-For/-Proto headers are believed (comma-separated).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes answering requests, sharing the port: one per core for a busy "
                   "desk or API (docs/deploying.md).")
@pass_app
def serve(app: AppContext, host: str, port: int, forwarded_allow_ips: str, workers: int) -> None:
    """Serve unsubscribe links, provider webhooks, the archive, the desk and the API over HTTP."""
    store = app.store  # opened (and migrated) here, once, before any worker starts
    config = uvicorn.Config(
        # Each worker is a new interpreter (spawned, not forked) and builds its own app and
        # database connections from the settings; one process serves the app built here.
        partial(worker_app, app.settings, logging.getLogger().level) if workers > 1
        else settled(create_app(app.settings, store)),
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_config=None,  # keep the CLI's logging set-up
        log_level=app.settings.log_level,
        server_header=False,
        ws="none",
        lifespan="on",  # the readers' message sender runs while the app is served
    )
    # Bound and listening before uvicorn starts, so the real port (with --port 0) can be
    # announced whatever the log level, and connections made from then on wait in the backlog.
    sock = config.bind_socket()
    sock.listen(config.backlog)
    address, bound_port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    every = f" with {workers} workers" if workers > 1 else ""
    click.echo(f"Serving on http://{shown}:{bound_port}{every} (Ctrl-C to stop)", err=True)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()  # until SIGINT or SIGTERM
            click.echo("Stopped.", err=True)
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully and re-raises Ctrl-C for its caller: a normal stop.
        click.echo("Stopped.", err=True)
    finally:
        sock.close()


def worker_app(settings: Settings, log_level: int) -> Starlette:
    """The app of one worker process: its own store (SQLite in WAL mode lets the workers
    read while one writes) and the CLI's log format."""
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    return settled(create_app(settings, Store.open(settings.database_url)))


def settled(app: Starlette) -> Starlette:
    """The app, with everything alive once it is built (modules, templates, tables) set
    aside from the garbage collector: its full passes no longer walk them. Without this, a
    full pass every few seconds under load held the server for 200 ms, every request in
    flight with it."""
    gc.collect()
    gc.freeze()
    return app
