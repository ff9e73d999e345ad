"""The ``newsletter`` command line. Each command group lives in its own module."""

from __future__ import annotations

import getpass
import importlib
import logging
from pathlib import Path
from typing import Any

import click

from ..config import load_settings
from ..errors import NewsletterError
from ..store.db import database_failure
from ..store.issues import acting_as
from .context import AppContext

#: How every process logs (``newsletter serve --workers`` sets it up in each worker too).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The module that defines each command. A command's module is imported when it is used, so
#: ``newsletter worker`` does not load the web app and ``--help`` is the only thing that
#: loads them all.
COMMAND_MODULES = {
    "articles": "articles",
    "collect": "collect",
    "dev": "dev",
    "issue": "issue",
    "lists": "lists",
    "run": "daemon",
    "send": "send",
    "serve": "serve",
    "status": "status",
    "subscribers": "subscribers",
    "suppressions": "suppressions",
    "tokens": "tokens",
    "users": "users",
    "worker": "worker",
}


class NewsletterGroup(click.Group):
    """Loads each command on first use; turns the package's own errors into click's
    ``Error: …`` and exit status 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"{__name__}.{module}")  # its decorators attach it
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            failure = database_failure(exc)
            if failure is None:
                raise  # a bug: its traceback is what a report needs
            raise click.ClickException(failure) from exc


@click.group(cls=NewsletterGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="NEWSLETTER_HOME",
    help="Publication folder (subscribers/, templates/, .env). Default: current folder.",
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), help="Read this .env.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.version_option(package_name="newsletter")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, env_file: Path | None, verbose: bool) -> None:
    """Publish a newsletter: collect articles, draft issues, render and send them."""
    try:
        settings = load_settings(home, env_file)
    except NewsletterError as exc:
        raise click.ClickException(str(exc)) from exc
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper())
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # Migrations announce themselves at INFO on every start; only their problems matter here.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    ctx.with_resource(acting_as(f"cli:{_os_user()}"))  # the issue history says who ran it
    app = AppContext(settings)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a bare container)
        return "unknown"


def main() -> None:
    cli()


__all__ = ["cli", "main"]
