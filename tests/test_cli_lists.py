"""``newsletter lists …`` against a copy of the example publication and a real SQLite store."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.lists.addresscache import file_digest, opened_cache
from newsletter.models import ALL_LISTS, SuppressionReason
from newsletter.store import Store, suppressions

REPO = Path(__file__).resolve().parents[1]
ANN = "Ann O\u2019Neil"  # a typographic apostrophe, as people really type names


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "publication"
    shutil.copytree(REPO / "subscribers", root / "subscribers")
    shutil.copytree(REPO / "articles", root / "articles")
    return root


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), "lists", *args], catch_exceptions=False)


def suppress(home: Path, email: str, scope: str = ALL_LISTS) -> None:
    store = Store.open(load_settings(home).database_url)
    try:
        with store.engine.begin() as conn:
            suppressions.add(
                conn, email, SuppressionReason.UNSUBSCRIBED, scope=scope, at=datetime.now(UTC)
            )
    finally:
        store.close()


def weekly(home: Path) -> Path:
    return home / "subscribers" / "weekly.csv"


def test_check_passes_on_the_example_publication(home: Path) -> None:
    result = run(home, "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"weekly: 7 members in {weekly(home)}; 0 invalid rows, 0 duplicates",
        f"every-article: 5 members in {home / 'subscribers' / 'every-article.csv'}; "
        "0 invalid rows, 0 duplicates",
        "OK: 2 lists checked, 0 errors, 0 warnings",
    ]


def test_check_reports_bad_rows_by_file_and_line_and_fails(home: Path) -> None:
    with weekly(home).open("a", encoding="utf-8") as handle:
        handle.write("broken@,Broken,Nowhere\nZOE.ANGSTROM@example.org,Zoë again,Kellmouth\n")
    result = run(home, "check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"{weekly(home)}:11: error: invalid address 'broken@': There must be something after "
        "the @-sign.",
        f"{weekly(home)}:12: warning: duplicate of line 4 (kept the first)",
    ]
    assert lines[2] == f"weekly: 7 members in {weekly(home)}; 1 invalid row, 1 duplicate"
    assert lines[-1] == "FAILED: 2 lists checked, 1 error, 1 warning"


def test_duplicates_alone_are_warnings_and_check_passes(home: Path) -> None:
    with weekly(home).open("a", encoding="utf-8") as handle:
        handle.write("Jose.Nunez@Example.org,José,Truro\n")
    result = run(home, "check")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "OK: 2 lists checked, 0 errors, 1 warning"


def test_check_reports_every_problem_in_publication_toml(home: Path) -> None:
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text(encoding="utf-8")
    text = text.replace('timezone = "Europe/London"', 'timezone = "Europe/Kellmouth"')
    text = text.replace('approval = "auto"               #', 'aproval = "auto"  #')
    toml.write_text(text, encoding="utf-8")
    result = run(home, "check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{toml}:37: error: lists.weekly.timezone: 'Europe/Kellmouth' is")
    assert lines[1].startswith(f"{toml}:38: error: lists.weekly.aproval: unknown key (did you mean")
    assert lines[-1] == "FAILED: 0 lists checked, 2 errors, 0 warnings"


def test_check_json_is_parseable_and_complete(home: Path) -> None:
    (home / "subscribers" / "every-article.csv").write_text("email,name\nnope,No\n", "utf-8")
    result = run(home, "check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["ok"], report["errors"], report["warnings"]) == (False, 1, 1)
    assert report["lists"]["weekly"]["members"] == 7
    assert report["lists"]["every-article"] == {
        "files": [str(home / "subscribers" / "every-article.csv")],
        "rows": 1,
        "members": 0,
        "invalid": 1,
        "duplicates": 0,
    }
    assert [(p["line"], p["severity"]) for p in report["problems"]] == [
        (2, "error"),
        (None, "warning"),
    ]
    assert report["problems"][1]["reason"] == "list 'every-article' has no members"


def test_show_json_counts_members_across_files_and_suppressions(home: Path) -> None:
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace('members = ["weekly.csv"]', 'members = ["weekly.csv", "every-article.csv"]'),
        "utf-8",
    )
    suppress(home, "harbourmaster@example.org", scope="weekly")
    suppress(home, "Zoe.Angstrom@example.org")  # every list

    result = run(home, "show", "--json")
    assert result.exit_code == 0, result.output
    shown = {item["id"]: item for item in json.loads(result.stdout)["lists"]}
    numbers = ("members", "duplicates", "suppressed", "recipients", "invalid")
    # weekly: 7 + 5 rows, two people are on both files
    assert tuple(shown["weekly"][k] for k in numbers) == (10, 2, 2, 8, 0)
    assert tuple(shown["every-article"][k] for k in numbers) == (5, 0, 1, 4, 0)
    assert shown["weekly"]["schedule"] == "0 8 * * mon"
    assert shown["every-article"]["schedule"] is None
    assert shown["every-article"]["timezone"] == "America/New_York"


def test_show_one_list_as_text(home: Path) -> None:
    result = run(home, "show", "every-article")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "every-article: The Kellmouth Tide — every article"
    assert "  cadence:    instant, as published" in lines
    assert "  suppressed: 0 (recipients: 5)" in lines
    assert not any(line.startswith("weekly") for line in lines)


def test_show_an_unknown_list_is_an_error(home: Path) -> None:
    result = run(home, "show", "monthly")
    assert result.exit_code == 1
    assert "Error: no list 'monthly'" in result.output
    assert "(lists: every-article, weekly)" in result.output


def test_add_appends_to_the_first_file_and_keeps_comments(home: Path) -> None:
    before = weekly(home).read_text(encoding="utf-8")
    result = run(
        home,
        "add",
        "weekly",
        "Ann.ONeil@EXAMPLE.org",
        "--name",
        ANN,
        "--field",
        "City=Penzance",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Added Ann.ONeil@example.org to weekly ({weekly(home)}).\n"
    assert weekly(home).read_text(encoding="utf-8") == (
        before + f"Ann.ONeil@example.org,{ANN},Penzance\n"
    )


def test_add_an_existing_member_changes_nothing(home: Path) -> None:
    before = weekly(home).read_bytes()
    result = run(home, "add", "weekly", "JOSE.NUNEZ@example.org")
    assert result.exit_code == 0
    assert "is already in weekly" in result.stdout and "weekly.csv:5)" in result.stdout
    assert weekly(home).read_bytes() == before


def test_add_refuses_suppressed_and_invalid_addresses(home: Path) -> None:
    suppress(home, "gone@example.org", scope="weekly")
    before = weekly(home).read_bytes()
    refused = run(home, "add", "weekly", "gone@example.org")
    assert refused.exit_code == 1
    assert "Error: gone@example.org is suppressed for list 'weekly'" in refused.output
    invalid = run(home, "add", "weekly", "gone@")
    assert invalid.exit_code == 1
    assert "Error: invalid address 'gone@'" in invalid.output
    bad_field = run(home, "add", "weekly", "ok@example.org", "--field", "no-equals-sign")
    assert bad_field.exit_code == 2
    assert weekly(home).read_bytes() == before


def test_remove_takes_out_one_row_and_notes_shared_files(home: Path) -> None:
    toml = home / "subscribers" / "publication.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(
        text.replace(
            'members = ["every-article.csv"]', 'members = ["every-article.csv", "weekly.csv"]'
        ),
        "utf-8",
    )
    result = run(home, "remove", "every-article", "lena.fischer@example.org")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Removed lena.fischer@example.org from every-article: {weekly(home)} line 9.",
        f"Note: {weekly(home)} is also read by weekly; the address has left those lists too.",
    ]
    text = weekly(home).read_text(encoding="utf-8")
    assert "lena.fischer" not in text
    assert text.startswith('# Members of the "weekly" list.')
    missing = run(home, "remove", "weekly", "lena.fischer@example.org")
    assert missing.exit_code == 1
    assert "Error: lena.fischer@example.org is not in list 'weekly'" in missing.output


def test_import_dry_run_reports_each_row_and_writes_nothing(home: Path) -> None:
    source = home / "subscribers" / "broken-example.csv"
    suppress(home, "new.reader@example.org", scope="weekly")
    before = weekly(home).read_bytes()
    result = run(home, "import", "weekly", str(source), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{source}:5: warning: new.reader@example.org is suppressed for weekly; not added",
        f"{source}:7: error: invalid address 'not-an-address@': There must be something after "
        "the @-sign.",
        f"{source}:9: warning: already in the list (weekly.csv:4)",
        f"{source}:11: error: expected 3 columns (email,name,city), found 4; put values that "
        "contain commas in double quotes",
        "new: 0, duplicate: 1, invalid: 2, suppressed: 1",
        f"Dry run: nothing was written ({weekly(home)} is unchanged).",
    ]
    assert weekly(home).read_bytes() == before


def test_import_appends_new_rows_only(home: Path) -> None:
    source = home / "incoming.csv"
    source.write_text(
        "email,city,name\n"
        "fresh@example.org,Looe,Fresh One\n"
        "fresh@example.org,Looe,Fresh Twice\n"
        "zoe.angstrom@example.org,Kellmouth,Zoë\n"
        "second@example.org,,Second\n",
        encoding="utf-8",
    )
    before = weekly(home).read_text(encoding="utf-8")
    result = run(home, "import", "weekly", str(source))
    assert result.exit_code == 0, result.output
    assert "new: 2, duplicate: 2, invalid: 0, suppressed: 0" in result.stdout
    assert weekly(home).read_text(encoding="utf-8") == (
        before + "fresh@example.org,Fresh One,Looe\nsecond@example.org,Second,\n"
    )


def test_import_refuses_columns_the_list_file_lacks(home: Path) -> None:
    source = home / "incoming.csv"
    source.write_text("email,postcode\nx@example.org,KM1\n", encoding="utf-8")
    result = run(home, "import", "weekly", str(source))
    assert result.exit_code == 1
    assert "column postcode is not in weekly.csv" in result.output


def test_export_leaves_out_suppressed_addresses(home: Path) -> None:
    suppress(home, "SIOBHAN.OCONNELL@example.org", scope="weekly")
    suppress(home, "nora.penhallow@example.org")  # not on weekly: changes nothing there
    out = home / "weekly-export.csv"
    result = run(home, "export", "weekly", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Exported 6 members of weekly (1 suppressed and 0 invalid left out)." in result.output
    assert out.read_text(encoding="utf-8") == (
        "email,name,city\n"
        "zoe.angstrom@example.org,Zoë Ångström,Kellmouth\n"
        "jose.nunez@example.org,José Núñez,Truro\n"
        "harbourmaster@example.org,Piran Tregear,Kellmouth\n"
        'm.okafor@example.org,"Okafor, Mary",Falmouth\n'
        "lena.fischer@example.org,Lena Fischer,Hamburg\n"
        "arjun.mehta@example.org,Arjun Mehta,Kellmouth\n"
    )


def test_export_to_standard_output_and_never_over_a_members_file(home: Path) -> None:
    result = run(home, "export", "every-article")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == [
        "email,name,city",
        "zoe.angstrom@example.org,Zoë Ångström,Kellmouth",
    ]
    assert len(result.stdout.splitlines()) == 6
    before = weekly(home).read_bytes()
    refused = run(home, "export", "weekly", "--out", str(weekly(home)))
    assert refused.exit_code == 1
    assert "is one of the list's own members files" in refused.output
    assert weekly(home).read_bytes() == before


def test_a_list_read_once_is_vouched_for_and_a_change_is_checked_again(home: Path) -> None:
    first = run(home, "show", "--json").stdout
    assert run(home, "check").exit_code == 0
    var_dir = load_settings(home).var_dir
    with opened_cache(var_dir) as cache:
        assert cache.is_clean(file_digest(weekly(home)))  # the next read skips validation
    assert run(home, "show", "--json").stdout == first

    with weekly(home).open("a", encoding="utf-8") as handle:
        handle.write("broken@,Broken,Nowhere\n")
    result = run(home, "check")
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{weekly(home)}:11: error: invalid address 'broken@'")
