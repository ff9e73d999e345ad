"""Settings: defaults that work offline, clear errors naming the variable, masked secrets."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from newsletter.config import REQUIRED, VARIABLES, Secret, Settings, load_settings
from newsletter.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_defaults_need_no_file_and_no_credentials(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.provider == "outbox"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'newsletter.db'}"
    assert settings.outbox_path == tmp_path.resolve() / "var" / "outbox"
    key_file = tmp_path / "var" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert settings.secret_key.reveal() == key_file.read_text().strip()
    assert load_settings(tmp_path, environ={}).secret_key.reveal() == settings.secret_key.reveal()


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NEWSLETTER_PROVIDER=mailgun\nNEWSLETTER_CONCURRENCY=2\n")
    settings = load_settings(tmp_path, environ={"NEWSLETTER_CONCURRENCY": "7"})
    assert (settings.provider, settings.concurrency) == ("mailgun", 7)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NEWSLETTER_PROVIDER", "pigeon", "must be one of outbox, smtp, mailgun"),
        ("NEWSLETTER_CONCURRENCY", "0", "must be a whole number from 1 to 1000"),
        ("NEWSLETTER_CONCURRENCY", "x", "must be a whole number from 1 to 1000"),
        ("NEWSLETTER_FEED_TIMEOUT", "soon", "must be a number of seconds above 0"),
        ("NEWSLETTER_COLLECT_CONCURRENCY", "0", "must be a whole number from 1 to 64"),
        ("NEWSLETTER_COLLECT_CONCURRENCY", "65", "must be a whole number from 1 to 64"),
        ("NEWSLETTER_HTTP_TIMEOUT", "nan", "must be a number of seconds above 0 and at most"),
        ("NEWSLETTER_HTTP_TIMEOUT", "1e400", "must be a number of seconds above 0 and at most"),
        ("NEWSLETTER_HTTP_TIMEOUT", "0", "must be a number of seconds above 0"),
        ("NEWSLETTER_RATE_REQUESTS", "nan", "must be empty (the provider's default), 0 (no"),
        ("NEWSLETTER_RATE_REQUESTS", "-1", "must be empty (the provider's default), 0 (no"),
        ("NEWSLETTER_LEASE_SECONDS", "1e99", "must be a whole number from 1 to 86400"),
        ("NEWSLETTER_OUTAGE_RESUME_MINUTES", "-5", "must be a whole number from 0 to"),
        ("SMTP_PORT", "70000", "must be a whole number from 1 to 65535"),
        ("SMTP_SECURITY", "tls", "must be one of starttls, ssl, none"),
        ("NEWSLETTER_PUBLIC_URL", "news.example.org", "must be empty or a URL starting with"),
        ("NEWSLETTER_CHECK_DELIVERABILITY", "maybe", "must be true or false"),
        ("NEWSLETTER_DATABASE_URL", "nonsense", "must be a database URL: sqlite:///"),
        ("NEWSLETTER_DATABASE_URL", "mysql://db/news", "must be a database URL"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_variable_and_what_it_allows(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    expected = rf"^{name}='{re.escape(value)}': {re.escape(message)}"
    with pytest.raises(ConfigError, match=expected) as raised:
        load_settings(tmp_path, environ={name: value})
    text = str(raised.value)
    assert "\n" not in text
    for leaked in ("invalid literal", "could not convert", "Input should", "pydantic"):
        assert leaked not in text


def test_every_wrong_value_is_named_on_the_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path, environ={"NEWSLETTER_CONCURRENCY": "0",
                                         "NEWSLETTER_HTTP_TIMEOUT": "inf"})
    assert str(raised.value).count("; ") == 1
    assert "NEWSLETTER_CONCURRENCY='0'" in str(raised.value)
    assert "NEWSLETTER_HTTP_TIMEOUT='inf'" in str(raised.value)


def test_the_password_of_a_wrong_database_url_is_never_shown(tmp_path: Path) -> None:
    url = "mysql://editor:hunter2@127.0.0.1/news"
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path, environ={"NEWSLETTER_DATABASE_URL": url})
    assert str(raised.value).startswith("NEWSLETTER_DATABASE_URL='mysql://editor:***@127.0.0.1/")
    assert "hunter2" not in str(raised.value) + str(raised.value.__cause__)


def test_values_are_typed_and_blank_means_the_default(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={
        "NEWSLETTER_HTTP_TIMEOUT": " 2.5 ", "NEWSLETTER_RATE_MESSAGES": "0",
        "NEWSLETTER_TEST_RECIPIENTS": "a@example.org, b@example.org,", "SMTP_SECURITY": "SSL",
        "NEWSLETTER_CONCURRENCY": "", "NEWSLETTER_PROVIDER": "  ",
        "MAILGUN_BASE_URL": "https://api.eu.mailgun.net/",
    })
    assert settings.http_timeout == 2.5 and settings.rate_messages == 0.0
    assert settings.rate_requests is None
    assert settings.test_recipients == ("a@example.org", "b@example.org")
    assert settings.smtp_security == "ssl"
    assert (settings.concurrency, settings.provider) == (4, "outbox")
    assert settings.mailgun_base_url == "https://api.eu.mailgun.net"


def test_settings_are_frozen_and_changes_are_checked(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    with pytest.raises(ValidationError):
        settings.concurrency = 9  # type: ignore[misc]
    assert settings.with_changes(concurrency=9).concurrency == 9
    with pytest.raises(ConfigError, match=r"NEWSLETTER_CONCURRENCY=.*must be a whole number"):
        settings.with_changes(concurrency=0)
    copied = pickle.loads(pickle.dumps(settings))  # how a send's helper processes get them
    assert copied == settings and copied.secret_key.reveal() == settings.secret_key.reveal()


def test_a_settings_object_built_in_code_reads_no_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_PROVIDER", "mailgun")
    (tmp_path / ".env").write_text("NEWSLETTER_CONCURRENCY=2\n")
    monkeypatch.chdir(tmp_path)
    assert (Settings(home=tmp_path).provider, Settings(home=tmp_path).concurrency) == ("outbox", 4)
    assert load_settings(tmp_path).provider == "mailgun"  # the one reader of the environment


def test_a_missing_env_file_given_on_the_command_line_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--env-file .*missing\.env: no such file"):
        load_settings(tmp_path, env_file=tmp_path / "missing.env", environ={})


def test_missing_credentials_are_named_before_sending(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"NEWSLETTER_PROVIDER": "ses",
                                                "SES_REGION": "eu-west-1"})
    with pytest.raises(ConfigError, match="SES_ACCESS_KEY_ID, SES_SECRET_ACCESS_KEY"):
        settings.require_provider_credentials()


def test_secrets_never_show_in_repr_str_or_logs(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(tmp_path, environ={"MAILGUN_API_KEY": "key-very-secret",
                                                "NEWSLETTER_SECRET_KEY": "also-secret"})
    logging.getLogger("test").warning("settings: %s / %r", settings, settings)
    shown = repr(settings) + str(settings) + f"{settings.mailgun_api_key}" + caplog.text
    assert "very-secret" not in shown and "also-secret" not in shown
    assert settings.mailgun_api_key.reveal() == "key-very-secret"
    assert isinstance(settings.mailgun_api_key, Secret) and repr(Secret("")) == "Secret('')"


def test_a_missing_home_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        load_settings(tmp_path / "nowhere", environ={})


def test_env_example_documents_every_variable_and_nothing_else() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert documented == {v.name for v in VARIABLES}
    assert all(name in documented for names in REQUIRED.values() for name in names)
    load_settings(REPO, env_file=REPO / ".env.example", environ={})  # its defaults are valid


def test_only_the_documented_names_are_read(tmp_path: Path) -> None:
    # Field names are not variables: a stray `provider` or `home` in the environment is not
    # NEWSLETTER_PROVIDER, and NEWSLETTER_HOME is read only to find the publication.
    settings = load_settings(tmp_path, environ={"home": "/elsewhere", "provider": "smtp",
                                                "newsletter_provider": "ses"})
    assert (settings.home, settings.provider) == (tmp_path.resolve(), "outbox")
