"""The command that runs the fake provider in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from .server import FakeProviderServer


def _latency_range(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[float, float] | None:
    """``150-400`` (or a single ``200``) milliseconds, as seconds."""
    if not value:
        return None
    low, _, high = value.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not LOW-HIGH in milliseconds, e.g. 150-400"
        ) from None
    if not 0 <= bounds[0] <= bounds[1] <= 60_000:
        raise click.BadParameter(f"{value!r}: need 0 <= LOW <= HIGH <= 60000 milliseconds")
    return bounds[0] / 1000, bounds[1] / 1000


@click.command("fake-provider")
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; keep it on the loopback interface.")
@click.option("--counts-only", is_flag=True,
              help="Record only per-recipient counts (for runs of millions of recipients).")
@click.option("--latency-ms", "latency", metavar="LOW-HIGH", callback=_latency_range,
              help="Hold each provider request this many milliseconds (drawn evenly between "
              "LOW and HIGH) before answering, as a provider across a real network does.")
def fake_provider(
    port: int, host: str, counts_only: bool, latency: tuple[float, float] | None
) -> None:
    """Serve fake Mailgun, Postmark, SendGrid, Resend, SES and Brevo APIs on one port."""
    stopping = _stop_on(signal.SIGINT, signal.SIGTERM)  # before anyone is told it is up
    server = FakeProviderServer(host, port, details=not counts_only, latency=latency)
    with server:
        click.echo(f"fake provider listening on {server.url}", nl=True)
        click.echo("point the providers at it with:")
        for name, value in server.environment().items():
            click.echo(f"  {name}={value}")
        stopping.wait()
    click.echo("stopped")


def _stop_on(*signals: signal.Signals) -> threading.Event:
    """Handlers of our own: a process started in the background inherits SIGINT ignored, and
    ``kill`` sends SIGTERM; either way the server closes its sockets and says so. The handler
    only sets an event: an exception raised from it while socketserver handles a request is
    caught by socketserver's ``handle_error``, and the server would go on serving."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for number in signals:
        signal.signal(number, stop)
    return stopping
