"""``newsletter tokens create|list|revoke``: the tokens scripts use for the HTTP API."""

from __future__ import annotations

import click

from ..web.api import tokens
from ..web.desk.accounts import ROLES
from . import cli
from .context import AppContext, echo_json, json_option, pass_app


@cli.group(name="tokens")
def tokens_group() -> None:
    """Tokens for the HTTP API (newsletter serve, /api/v1/): editors and admins."""


@tokens_group.command(name="create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="editor", show_default=True,
              help="editor: issues and articles; admin: also the publication's status.")
@pass_app
def create_token(app: AppContext, name: str, role: str) -> None:
    """Make a token NAME and print it: the only time it is shown."""
    token = tokens.create(app.store, name, role)
    click.echo(token)
    click.echo(
        f"That is {role} token {name}. Keep it now: only its hash is stored, so it cannot "
        f"be shown again. Scripts send it as 'Authorization: Bearer <token>'.", err=True,
    )


@tokens_group.command(name="list")
@json_option
@pass_app
def list_tokens(app: AppContext, as_json: bool) -> None:
    """Show the tokens: name, role, when made and last used (never the token)."""
    found = tokens.listing(app.store)
    if as_json:
        echo_json([
            {"name": t.name, "role": t.role, "created_at": t.created_at.isoformat(),
             "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
             "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}
            for t in found
        ])
        return
    if not found:
        click.echo("No tokens. `newsletter tokens create NAME --role editor` makes one.")
    for t in found:
        used = f"used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
        revoked = f", revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else ""
        click.echo(f"{t.name:<24} {t.role:<8} made {t.created_at:%Y-%m-%d}, {used}{revoked}")


@tokens_group.command(name="revoke")
@click.argument("name")
@pass_app
def revoke_token(app: AppContext, name: str) -> None:
    """Revoke token NAME: the API refuses it from the next request on."""
    tokens.revoke(app.store, name)
    click.echo(f"Revoked {name}; it is refused from now on. Its name stays taken.")
