"""``newsletter users …`` through click's runner, on a real database: accounts, their
passwords (argon2id), and the sessions a removal or a new password ends."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.publisher import Publisher
from newsletter.store import Store
from newsletter.store import desk as desk_store
from newsletter.store import issues as issue_store
from newsletter.web.desk.accounts import verify
from newsletter.web.desk.sessions import digest

Run = Callable[..., Result]
PASSWORD = "a long enough password"


@pytest.fixture
def run(home: Path, database_url: str) -> Run:
    (home / ".env").write_text(f"NEWSLETTER_DATABASE_URL={database_url}\n")

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home), "users", *args], input=input)

    return invoke


@pytest.fixture
def store(database_url: str, run: Run) -> Iterator[Store]:
    """The database the commands open (``run`` first: it points them at it)."""
    opened = Store.open(database_url)
    yield opened
    opened.close()


def user(store: Store, name: str) -> desk_store.User | None:
    with store.engine.connect() as conn:
        return desk_store.find_user(conn, name)


def test_add_prompts_twice_and_stores_an_argon2id_hash(run: Run, store: Store) -> None:
    result = run("add", "ada", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert "Added admin ada." in result.output
    found = user(store, "ada")
    assert found is not None and found.role == "admin"
    assert found.password_hash.startswith("$argon2id$")
    assert PASSWORD not in found.password_hash
    assert verify(found, PASSWORD) is not None
    assert verify(found, PASSWORD + "!") is None


def test_add_refuses_a_mismatched_confirmation(run: Run, store: Store) -> None:
    typed = f"{PASSWORD}\nsomething else entirely\n{PASSWORD}\n{PASSWORD}\n"
    result = run("add", "ada", input=typed)

    assert "do not match" in result.output
    assert result.exit_code == 0
    found = user(store, "ada")
    assert found is not None and verify(found, PASSWORD) is not None


def test_password_from_standard_input(run: Run, store: Store) -> None:
    result = run("add", "eddie", "--password-stdin", input=f"{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    found = user(store, "eddie")
    assert found is not None and found.role == "editor"
    assert verify(found, PASSWORD) is not None


def test_a_short_password_is_refused_with_the_rule(run: Run, store: Store) -> None:
    result = run("add", "eddie", "--password-stdin", input="short\n")

    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: password: too short (5 characters); use at least 12"
    )
    assert user(store, "eddie") is None


def test_bad_names_roles_and_duplicates_get_one_line(run: Run) -> None:
    assert run("add", "ada", "--password-stdin", input=f"{PASSWORD}\n").exit_code == 0

    duplicate = run("add", "ada", "--password-stdin", input=f"{PASSWORD}\n")
    bad_name = run("add", "Not A Name", "--password-stdin", input=f"{PASSWORD}\n")
    bad_role = run("add", "bob", "--role", "owner", "--password-stdin", input=f"{PASSWORD}\n")

    assert (duplicate.exit_code, duplicate.output.strip()) == (
        1, "Error: NAME: there is already a user named ada"
    )
    assert bad_name.exit_code == 1 and bad_name.output.startswith("Error: NAME 'Not A Name'")
    assert bad_role.exit_code == 2 and "--role" in bad_role.output
    for result in (duplicate, bad_name, bad_role):
        assert "Traceback" not in result.output and PASSWORD not in result.output


def test_list_as_text_and_json(run: Run) -> None:
    assert "No users." in run("list").output
    run("add", "ada", "--role", "admin", "--password-stdin", input=f"{PASSWORD}\n")
    run("add", "eddie", "--password-stdin", input=f"{PASSWORD}\n")

    text = run("list").output.splitlines()
    data = json.loads(run("list", "--json").output)

    assert [line.split()[:2] for line in text] == [["ada", "admin"], ["eddie", "editor"]]
    assert [(u["name"], u["role"]) for u in data] == [("ada", "admin"), ("eddie", "editor")]
    assert set(data[0]) == {"name", "role", "created_at"}  # never the hash


def _session_for(store: Store, name: str) -> str:
    found = user(store, name)
    assert found is not None
    with store.engine.begin() as conn:
        desk_store.add_session(conn, digest("a-session"), found.id, "token", store.now())
    return digest("a-session")


def _has_session(store: Store, id_hash: str) -> bool:
    with store.engine.connect() as conn:
        return desk_store.find_session(conn, id_hash) is not None


def test_remove_ends_the_users_sessions(run: Run, store: Store) -> None:
    run("add", "eddie", "--password-stdin", input=f"{PASSWORD}\n")
    id_hash = _session_for(store, "eddie")

    result = run("remove", "eddie")

    assert result.exit_code == 0, result.output
    assert user(store, "eddie") is None
    assert not _has_session(store, id_hash)
    missing = run("remove", "eddie")
    assert (missing.exit_code, missing.output.strip()) == (1, "Error: no user named eddie")


def test_passwd_changes_the_hash_and_ends_sessions(run: Run, store: Store) -> None:
    run("add", "eddie", "--password-stdin", input=f"{PASSWORD}\n")
    id_hash = _session_for(store, "eddie")
    new = "another long password"

    result = run("passwd", "eddie", "--password-stdin", input=f"{new}\n")

    assert result.exit_code == 0, result.output
    assert "1 session ended" in result.output
    found = user(store, "eddie")
    assert found is not None
    assert verify(found, new) is not None and verify(found, PASSWORD) is None
    assert not _has_session(store, id_hash)
    short = run("passwd", "eddie", "--password-stdin", input="tiny\n")
    assert short.exit_code == 1 and "at least 12" in short.output


def test_the_cli_is_named_in_the_issue_history(home: Path, run: Run, store: Store) -> None:
    """Who moved an issue: a command records ``cli:<os user>``."""
    publisher = Publisher(load_settings(home), store)
    publisher.collect()
    issue_id = publisher.draft("weekly")[0]

    result = CliRunner().invoke(cli, ["--home", str(home), "issue", "cancel", str(issue_id)])
    shown = CliRunner().invoke(cli, ["--home", str(home), "issue", "show", str(issue_id)])

    assert result.exit_code == 0, result.output
    with store.engine.connect() as conn:
        history = issue_store.events(conn, issue_id)
    assert history[-1]["to"] == "cancelled"
    assert history[-1]["by"] == f"cli:{getpass.getuser()}"
    assert f"(cli:{getpass.getuser()})" in shown.output
