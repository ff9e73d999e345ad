"""The archive bench still runs end to end (figures are not checked: speed is not a test)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_archive_bench_measures_the_issue_page_list_and_feed() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "archive.py"), "--issues", "5", "--duration",
         "0.3", "--json"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["issues"] == 6
    probes = {probe["label"]: probe for probe in result["probes"]}
    assert set(probes) == {"issue page", "list page", "Atom feed", "issue page, If-None-Match"}
    for label, probe in probes.items():
        status = "304" if "If-None-Match" in label else "200"
        assert probe["statuses"] == {status: probe["requests"]}, probe
        assert probe["requests"] > 0 and probe["p50_ms"] <= probe["p99_ms"]
