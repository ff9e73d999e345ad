"""``newsletter users add|list|remove|passwd``: the accounts that sign in to the desk."""

from __future__ import annotations

import sys

import click

from ..web.desk import accounts
from ..wording import counted
from . import cli
from .context import AppContext, echo_json, json_option, pass_app

password_stdin_option = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)


def read_password(from_stdin: bool) -> str:
    """The new password, prompted twice (hidden), or the first line of standard input; its
    length is checked before it is hashed, naming the rule."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return accounts.check_password(password)


@cli.group(name="users")
def users_group() -> None:
    """Accounts of the desk (newsletter serve, /desk/): editors and admins."""


@users_group.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(accounts.ROLES), default="editor", show_default=True,
              help="editor: issues and articles; admin: also suppressions and users.")
@password_stdin_option
@pass_app
def add_user(app: AppContext, name: str, role: str, password_stdin: bool) -> None:
    """Add an account NAME that signs in to the desk."""
    accounts.check_name(name)  # before the prompt: a bad name is told at once
    accounts.add(app.store, name, role, read_password(password_stdin))
    click.echo(f"Added {role} {name}.")


@users_group.command(name="list")
@json_option
@pass_app
def list_users(app: AppContext, as_json: bool) -> None:
    """Show the accounts and their roles."""
    users = accounts.listing(app.store)
    if as_json:
        echo_json([
            {"name": u.name, "role": u.role, "created_at": u.created_at.isoformat()}
            for u in users
        ])
        return
    if not users:
        click.echo("No users. `newsletter users add NAME --role admin` makes the first.")
    for u in users:
        click.echo(f"{u.name:<24} {u.role:<8} since {u.created_at:%Y-%m-%d}")


@users_group.command(name="remove")
@click.argument("name")
@pass_app
def remove_user(app: AppContext, name: str) -> None:
    """Remove account NAME; its sessions end at once."""
    accounts.remove(app.store, name)
    click.echo(f"Removed {name}; their sessions have ended.")


@users_group.command(name="passwd")
@click.argument("name")
@password_stdin_option
@pass_app
def change_password(app: AppContext, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; their sessions end at once."""
    ended = accounts.change_password(app.store, name, read_password(password_stdin))
    click.echo(f"Password of {name} changed; {counted(ended, 'session')} ended.")
