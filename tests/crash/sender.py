"""Sender processes: the crash harness, and the real command line that picks up after it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .publication import REPO

HARNESS = REPO / "tests" / "crash_harness.py"
#: Far above a normal run (a few seconds); only a hung sender gets near it.
PROCESS_TIMEOUT = 60.0
MAX_RESUMES = 4


@dataclass
class Sender:
    """Runs sender processes for one publication; every run's output is kept in ``logs``."""

    home: Path
    environment: Mapping[str, str]
    logs: Path
    runs: list[str] = field(default_factory=list)

    # -- the harness ------------------------------------------------------------------------
    def harness_command(self, point: str | None = None, nth: int = 1) -> list[str]:
        command = [sys.executable, str(HARNESS), "--home", str(self.home)]
        return command + (["--point", point, "--nth", str(nth)] if point else [])

    def crash_at(self, point: str, nth: int) -> None:
        """Run the harness and check it died by SIGKILL at the point, not by finishing."""
        done = self._run(self.harness_command(point, nth), f"crash-{point}-{nth}")
        assert done.returncode == -signal.SIGKILL, (
            f"the sender was to be killed at {point} #{nth} but exited {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )

    @contextmanager
    def running(self) -> Iterator[subprocess.Popen[bytes]]:
        """The harness without a kill point, in the background; killed on the way out."""
        name = f"{len(self.runs):02d}-background"
        self.runs.append(name)
        with (self.logs / f"{name}.out").open("wb") as out, \
                (self.logs / f"{name}.err").open("wb") as err:
            process = subprocess.Popen(self.harness_command(), env=dict(self.environment),
                                       cwd=self.home, stdout=out, stderr=err)
            try:
                yield process
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait(PROCESS_TIMEOUT)

    # -- the real command line --------------------------------------------------------------
    def cli(self, *args: str) -> str:
        """``newsletter --home HOME ARGS…`` in a new process; its stdout, after exit status 0."""
        command = [sys.executable, "-m", "newsletter", "--home", str(self.home), *args]
        done = self._run(command, "-".join(args[:2]))
        assert done.returncode == 0, f"`newsletter {' '.join(args)}` failed:\n{done.stderr}"
        return done.stdout

    def send(self) -> list[dict[str, Any]]:
        reports: list[dict[str, Any]] = json.loads(self.cli("send", "--json"))
        return reports

    def resume(self, issue_id: int) -> dict[str, Any]:
        """``newsletter send`` until the issue is no longer ``sending``; its last report."""
        for _ in range(MAX_RESUMES):
            report = {r["issue"]: r for r in self.send()}.get(issue_id)
            assert report is not None, f"`newsletter send` did not pick up issue {issue_id}"
            if report["state"] != "sending":
                return report
        raise AssertionError(f"issue {issue_id} still sending after {MAX_RESUMES} resumes")

    def show(self, issue_id: int) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self.cli("issue", "show", str(issue_id), "--json"))
        return shown

    def retry_unknown(self, issue_id: int) -> str:
        return self.cli("issue", "retry", str(issue_id), "--unknown").strip()

    # -- plumbing ---------------------------------------------------------------------------
    def _run(self, command: list[str], name: str) -> subprocess.CompletedProcess[str]:
        name = f"{len(self.runs):02d}-{name}"
        self.runs.append(name)
        done = subprocess.run(command, env=dict(self.environment), cwd=self.home,
                              capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=False)
        (self.logs / f"{name}.out").write_text(done.stdout)
        (self.logs / f"{name}.err").write_text(done.stderr)
        return done
