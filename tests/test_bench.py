"""The sending benchmark still runs end to end (figures are not checked: speed is not a test)."""

from __future__ import annotations

import re
import subprocess
import sys

from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, REPO, require_postgres

POSTGRES_TEMP_SCHEMA = re.compile(r"pg_(toast_)?temp_\d+(\.|$)")


def run_bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "send.py"), "--recipients", "1500",
         "--merge-seconds", "0.1", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_sent_once(output: str) -> None:
    assert "ledger                 {'sent': 1500}" in output
    assert "'accepted': {'mailgun': 1500}" in output
    assert "'recipients_with_duplicates': {'mailgun': 0}" in output
    assert re.search(r"send wall time\s+\d+\.\d\d s", output)


def test_bench_on_sqlite() -> None:
    assert_sent_once(run_bench())


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
