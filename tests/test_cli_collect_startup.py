"""What ``newsletter collect`` loads: what collecting needs and nothing of the scheduler,
the web app, the desk or the send path, so that a pass where every feed answers 304 costs
little more than its requests (bench/collect.py measures it beside rss2email)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers.feedserver import FeedServer

#: Runs the command as the ``newsletter`` script does, then writes down every module loaded.
PROBE = """
import json, sys
home, written = sys.argv[1], sys.argv[2]
from newsletter.__main__ import main
sys.argv = ["newsletter", "--home", home, "collect"]
try:
    main()
finally:
    with open(written, "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)
"""

#: Never loaded by a collect, whatever the publication.
NOT_FOR_COLLECTING = (
    "apscheduler.schedulers",
    "uvicorn",
    "starlette",
    "jinja2",
    "rich",
    "newsletter.web",
    "newsletter.schedule",
    "newsletter.runners",
    "newsletter.editor",
    "newsletter.readers",
    "newsletter.publisher",
    "newsletter.issues",
    "newsletter.delivery",
)
#: Not loaded either by a second pass over feeds alone, whose lists have no schedule: every
#: feed answers 304 (nothing to parse), and the database is at the newest migration.
NOT_FOR_A_304_PASS = (*NOT_FOR_COLLECTING, "apscheduler", "feedparser", "alembic", "yaml")

FEEDS_ONLY = """\
[publication]
name = "Harbour Notes"
base_url = "https://notes.example.org"
from_email = "editor@notes.example.org"
postal_address = "1 Quay Street, Kellmouth"

[sources.harbour]
type = "feed"
url = "{url}"
allow_private_network = true

[lists.notes]
title = "Harbour Notes"
members = ["notes.csv"]
sources = ["harbour"]
"""

RSS = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour</title>'
    "<item><title>Tide tables</title><link>https://notes.example.org/tides</link></item>"
    "</channel></rss>"
)


def loaded_by_collect(home: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``newsletter collect`` in a fresh interpreter, and the modules it had loaded."""
    written = home / "modules.json"
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": f"sqlite:///{home / 'collect.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(home), str(written)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    return done, json.loads(written.read_text(encoding="utf-8"))


def among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(f"{p}.") for p in packages)]


def test_a_304_pass_over_feeds_loads_no_parser_scheduler_web_app_or_migrations(
    tmp_path: Path,
) -> None:
    home = tmp_path / "publication"
    (home / "subscribers").mkdir(parents=True)
    (home / "subscribers" / "notes.csv").write_text("email\nreader@example.org\n")
    with FeedServer() as server:
        server.route("/harbour.xml", RSS, etag='"tides-1"')
        toml = FEEDS_ONLY.format(url=server.url("/harbour.xml"))
        (home / "subscribers" / "publication.toml").write_text(toml, encoding="utf-8")
        first, _ = loaded_by_collect(home)
        second, modules = loaded_by_collect(home)
        answered = [record.status for record in server.requests_for("/harbour.xml")]

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert answered == [200, 304]
    assert "harbour: not modified since last time" in second.stdout
    assert among(modules, NOT_FOR_A_304_PASS) == []
    assert "requests" in modules  # the probe did run the command


def test_collecting_the_example_publication_loads_no_scheduler_web_app_or_send_path(
    home: Path,
) -> None:
    done, modules = loaded_by_collect(home)

    assert done.returncode == 0, done.stderr
    assert "Collected" in done.stdout
    assert among(modules, NOT_FOR_COLLECTING) == []
