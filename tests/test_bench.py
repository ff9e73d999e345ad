"""The sending and desk benchmarks still run end to end (figures are not checked: speed is not a
test)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, REPO, require_postgres

POSTGRES_TEMP_SCHEMA = re.compile(r"pg_(toast_)?temp_\d+(\.|$)")


def bench(script: str, *args: str, timeout: float = 120) -> str:
    """``bench/<script>`` run with ``args`` in a process of its own; its output."""
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_bench(*args: str) -> str:
    return bench("send.py", "--recipients", "1500", "--merge-seconds", "0.1", *args)


def assert_sent_once(output: str) -> None:
    assert "ledger                 {'sent': 1500}" in output
    assert "'accepted': {'mailgun': 1500}" in output
    assert "'recipients_with_duplicates': {'mailgun': 0}" in output
    assert re.search(r"send wall time\s+\d+\.\d\d s", output)
    assert re.search(r"cores kept busy\s+\d+% of \d+ \(that CPU and the fake server's", output)


def test_bench_on_sqlite() -> None:
    output = run_bench()
    assert_sent_once(output)
    # The freeze's floor: the same rows written again by SQLite alone, for a third issue.
    floor = r"ledger rows alone\s+\d+\.\d\d s of CPU: SQLite writing the same 1,500 "
    assert re.search(floor, output)


def test_bench_times_the_sends_alone_with_the_audience_frozen_first() -> None:
    output = run_bench("--frozen-first", "--no-extras")
    assert_sent_once(output)
    assert "the audience was frozen before the clock started" in output
    alone = r"that freeze, alone\s+\d+\.\d\d s \(\d+\.\d\d s of this process's CPU"
    assert re.search(alone, output)
    assert "of which freezing" not in output


def test_batch_build_bench_builds_what_a_send_builds_both_ways() -> None:
    stdout = bench("batch_build.py", "--recipients", "2500", "--repeat", "1")
    assert "batches                3 of up to 1,000 recipients (2,500 in all)" in stdout
    assert re.search(r"^today\s+\d+\.\d\d ms", stdout, re.M)
    assert re.search(r"^the least\s+\d+\.\d\d ms", stdout, re.M)


def schemas_and_tables() -> set[str]:
    engine = create_engine(PG_ADMIN_URL)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT nspname FROM pg_namespace UNION ALL "
            "SELECT schemaname || '.' || tablename FROM pg_tables"
        ))
        found = {name for (name,) in rows}
    engine.dispose()
    return found


def test_bench_on_postgresql_runs_again_and_leaves_nothing_behind() -> None:
    require_postgres()
    before = schemas_and_tables()
    for _ in range(2):  # in a database used before, the articles would all be sent already
        assert_sent_once(run_bench("--database", PG_ADMIN_URL))
    assert {name for name in schemas_and_tables() - before if not ours_or_postgres(name)} == set()


def ours_or_postgres(name: str) -> bool:
    """Schemas other tests make (``t_…``), and the per-backend temporary schemas PostgreSQL
    creates the first time any session uses a temporary table and keeps for reuse."""
    return name.startswith("t_") or POSTGRES_TEMP_SCHEMA.match(name) is not None


def test_desk_bench_signs_in_measures_the_pages_and_watches_a_send() -> None:
    stdout = bench("desk.py", "--recipients", "1500", "--issues", "12", "--duration", "0.3",
                   "--send-runs", "1", "--watch-every", "0.1", "--json", timeout=240)
    result = json.loads(stdout)
    measured = {p["path"]: p for p in result["probes"] if "skipped" not in p}
    issue = result["issue"]
    assert {"/desk/issues", f"/desk/issues/{issue}", "/healthz"} <= set(measured)
    for probe in measured.values():  # signed in all along: a 303 would be the sign-in form
        assert probe["statuses"] == {"200": probe["requests"]}, probe
        assert probe["requests"] > 0 and probe["p50_ms"] <= probe["p99_ms"]
    skipped = [p for p in result["probes"] if "skipped" in p]
    assert all("404" in p["skipped"] for p in skipped)
    sends = result["sends"]
    assert [r["watched"] for r in sends["runs"]] == [False, True]
    assert all(r["counts"] == {"sent": 1500} for r in sends["runs"])
    polled = sends["polls"]["/desk/issues/{issue}"]
    assert polled["requests"] >= 1 and polled["statuses"] == {"200": polled["requests"]}


def test_preferences_bench_reads_both_readers_pages_and_confirms() -> None:
    stdout = bench("preferences.py", "--members", "2000", "--repeat", "3", timeout=180)
    assert re.search(r"in it, first view \(index made\): \d+ ms", stdout)
    assert re.search(r"in it, warm: [\d.]+ ms", stdout)
    assert re.search(r"not in it, warm: [\d.]+ ms", stdout)
    assert re.search(r"confirming a sign-up .*: [\d.]+ ms", stdout)
    assert re.search(r"reading every file of the list: \d+ ms", stdout)


def test_signup_bench_sends_each_accepted_sign_up_one_confirmation() -> None:
    stdout = bench("signup.py", "--workers", "1", "--clients", "4", "--duration", "1",
                   "--json", timeout=300)
    figures = json.loads(stdout)
    assert figures["each_accepted_one_confirmation_sent"] is True
    assert figures["messages_sent"] == figures["signup_requests"] > 0


def test_collect_bench_times_a_command_pass_and_a_daemon_pass() -> None:
    stdout = bench("collect.py", "--feeds", "4", "--hosts", "2")
    assert re.search(r"first pass \d+\.\d\d s .* second \(all 304\) \d+\.\d\d s", stdout)
    assert re.search(r"a pass in the running daemon \(all 304\) \d+\.\d\d s \(CPU \d+\.\d\d s\); "
                     r"a process only importing what collect needs \d+\.\d\d s", stdout)


def test_desk_lists_bench_counts_the_same_list_every_way_it_is_read() -> None:
    stdout = bench("desk_lists.py", "--rows", "3000", "--suppressed", "30")
    views = re.findall(r"^(.+?)\s+\d+\.\d\d s   members ([\d,]+), suppressed ([\d,]+), "
                       r"invalid (\d+)$", stdout, re.M)
    assert [label for label, *_ in views] == [
        "first view, address cache cold", "after an edit of one row (cache warm)",
        "with no kept check (file remembered)",
        "another process's first view (check kept)", "again, nothing changed",
        "again, one more suppression", "after a sign-up (in another process)",
        "after another sign-up",
    ]
    assert {tuple(counts) for _, *counts in views[:5]} == {("3,000", "30", "0")}
    assert tuple(views[5][1:]) == ("3,000", "31", "0")
    assert [tuple(view[1:]) for view in views[6:]] == [("3,001", "31", "0"), ("3,002", "31", "0")]


def test_desk_lists_bench_edits_a_named_row_when_the_middle_one_is_a_repeat(tmp_path: Path) -> None:
    """At 100,000 rows the middle row is the list's repeat, which has no name of its own."""
    spec = importlib.util.spec_from_file_location("desk_lists", REPO / "bench" / "desk_lists.py")
    assert spec is not None and spec.loader is not None
    desk_lists = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(desk_lists)
    members = tmp_path / "weekly.csv"
    desk_lists.write_csv(members, 100_000)
    desk_lists.edit_one_row(members, 50_000)
    edited = [line for line in members.read_text().splitlines() if "(edited)" in line]
    assert [line.split(",")[1] for line in edited] == ["Subscriber 50001 (edited)"]
