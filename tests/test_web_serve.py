"""``newsletter serve`` in a real subprocess: it starts, answers, and stops on Ctrl-C; with
``--workers``, in several processes that all stop with it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import requests

from tests.servers.webapp import write_publication

RUNNING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")


def first_port(stream: IO[str] | None) -> int:
    """Read the server's log until it says where it listens (or the process ends)."""
    assert stream is not None
    for line in iter(stream.readline, ""):
        match = RUNNING.search(line)
        if match:
            return int(match.group(1))
    raise AssertionError("newsletter serve ended without listening")


def test_serve_answers_until_interrupted(tmp_path: Path) -> None:
    write_publication(tmp_path)
    (tmp_path / ".env").write_text(f"NEWSLETTER_DATABASE_URL=sqlite:///{tmp_path / 'web.db'}\n")
    command = [sys.executable, "-m", "newsletter", "--home", str(tmp_path), "serve", "--port", "0"]

    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            port = first_port(process.stderr)
            with requests.Session() as session:
                session.trust_env = False
                health = session.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                home = session.get(f"http://127.0.0.1:{port}/", timeout=10)
        finally:
            process.send_signal(signal.SIGINT)
            rest = process.communicate(timeout=20)[1]

    assert health.json() == {"status": "ok"}
    assert "The Example Weekly" in home.text
    assert "server" not in {k.lower() for k in home.headers}  # no version banner
    assert process.returncode == 0, rest
    assert rest.strip().endswith("Stopped.")


def worker_pids(pid: int) -> set[int]:
    """The server's child processes that serve (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children
            if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()}


def test_serve_with_workers_answers_and_stops_them_all(tmp_path: Path) -> None:
    write_publication(tmp_path)
    (tmp_path / ".env").write_text(f"NEWSLETTER_DATABASE_URL=sqlite:///{tmp_path / 'web.db'}\n")
    command = [sys.executable, "-m", "newsletter", "--home", str(tmp_path), "serve", "--port",
               "0", "--workers", "2"]

    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            port = first_port(process.stderr)
            with requests.Session() as session:
                session.trust_env = False
                # Each request on a connection of its own, which either worker may accept.
                session.headers["Connection"] = "close"
                answers = [session.get(f"http://127.0.0.1:{port}/", timeout=30)
                           for _ in range(6)]
            workers = worker_pids(process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            rest = process.communicate(timeout=30)[1]

    assert all(a.status_code == 200 and "The Example Weekly" in a.text for a in answers)
    assert len(workers) == 2
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "a worker outlived it"
    assert process.returncode == 0, rest
    assert rest.strip().endswith("Stopped.")
