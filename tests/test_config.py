"""Settings: defaults that work offline, clear errors naming the variable, masked secrets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from newsletter.config import REQUIRED, VARIABLES, Secret, load_settings
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
        ("NEWSLETTER_PROVIDER", "pigeon", "must be one of outbox"),
        ("NEWSLETTER_CONCURRENCY", "0", "positive whole number"),
        ("NEWSLETTER_FEED_TIMEOUT", "soon", "could not convert"),
        ("NEWSLETTER_PUBLIC_URL", "news.example.org", "must start with http"),
        ("NEWSLETTER_CHECK_DELIVERABILITY", "maybe", "true/false"),
    ],
)
def test_a_wrong_value_names_the_variable(tmp_path: Path, name: str, value: str,
                                          message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}='{re.escape(value)}': .*{message}"):
        load_settings(tmp_path, environ={name: value})


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
