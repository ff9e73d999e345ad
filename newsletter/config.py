"""Settings: read once from ``.env`` and the environment into one frozen, typed object.

This is the only module that looks at ``os.environ``. Everything else receives a
``Settings`` (or the part of it that it needs). Every variable is declared once in
``VARIABLES``; ``.env.example`` documents the same names and a test keeps them in step.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from .errors import ConfigError

PROVIDERS = ("outbox", "smtp", "mailgun", "postmark", "sendgrid", "resend", "ses", "brevo")


class Secret(str):
    """A string whose ``repr`` and ``str`` in logs never show the value; use ``.reveal()``."""

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self else ""

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true/false")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or a positive whole number")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("must be zero or more")
    return value


def _provider(raw: str) -> str:
    value = raw.strip().lower()
    if value not in PROVIDERS:
        raise ValueError(f"must be one of {', '.join(PROVIDERS)}")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _processes(raw: str) -> int:
    """``auto`` (0: one per core) or a positive count."""
    value = raw.strip().lower()
    if value == "auto":
        return 0
    if not value.isdigit() or int(value) == 0:
        raise ValueError("must be auto or a positive whole number")
    return int(value)


def _addresses(raw: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in raw.split(",") if a.strip())


def _url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


@dataclass(frozen=True, slots=True)
class Var:
    """One environment variable: where it lands in Settings and how it is parsed."""

    name: str
    attr: str
    parse: Callable[[str], Any] = str
    secret: bool = False


VARIABLES: tuple[Var, ...] = (
    Var("NEWSLETTER_DATABASE_URL", "database_url"),
    Var("NEWSLETTER_PROVIDER", "provider", _provider),
    Var("NEWSLETTER_SECRET_KEY", "secret_key", secret=True),
    Var("NEWSLETTER_PUBLIC_URL", "public_url", _url),
    Var("NEWSLETTER_OUTBOX_DIR", "outbox_dir"),
    Var("NEWSLETTER_LOOKBACK_DAYS", "lookback_days", _positive_int),
    Var("NEWSLETTER_FEED_TIMEOUT", "feed_timeout", _positive_float),
    Var("NEWSLETTER_FEED_MAX_BYTES", "feed_max_bytes", _positive_int),
    Var("NEWSLETTER_CHECK_DELIVERABILITY", "check_deliverability", _bool),
    Var("NEWSLETTER_TEST_RECIPIENTS", "test_recipients", _addresses),
    Var("NEWSLETTER_LOG_LEVEL", "log_level", _choice("debug", "info", "warning", "error")),
    Var("NEWSLETTER_HTTP_TIMEOUT", "http_timeout", _positive_float),
    Var("NEWSLETTER_HTTP_PROXY", "http_proxy", _url),
    Var("NEWSLETTER_CONCURRENCY", "concurrency", _positive_int),
    Var("NEWSLETTER_PROCESSES", "processes", _processes),
    Var("NEWSLETTER_RATE_MESSAGES", "rate_messages", _non_negative_float),
    Var("NEWSLETTER_RATE_REQUESTS", "rate_requests", _non_negative_float),
    Var("NEWSLETTER_MAX_ATTEMPTS", "max_attempts", _positive_int),
    Var("NEWSLETTER_OUTAGE_RESUME_MINUTES", "outage_resume_minutes", _non_negative_int),
    Var("NEWSLETTER_BATCH_SIZE", "batch_size", _non_negative_int),
    Var("NEWSLETTER_FREEZE_CHUNK", "freeze_chunk", _non_negative_int),
    Var("NEWSLETTER_SOFT_BOUNCE_LIMIT", "soft_bounce_limit", _positive_int),
    Var("NEWSLETTER_COLLECT_INTERVAL_MINUTES", "collect_interval_minutes", _positive_int),
    Var("NEWSLETTER_MISFIRE_GRACE_SECONDS", "misfire_grace_seconds", _positive_int),
    Var("NEWSLETTER_LEASE_SECONDS", "lease_seconds", _positive_int),
    Var("MAILGUN_API_KEY", "mailgun_api_key", secret=True),
    Var("MAILGUN_DOMAIN", "mailgun_domain"),
    Var("MAILGUN_BASE_URL", "mailgun_base_url", _url),
    Var("MAILGUN_WEBHOOK_SIGNING_KEY", "mailgun_webhook_signing_key", secret=True),
    Var("POSTMARK_SERVER_TOKEN", "postmark_server_token", secret=True),
    Var("POSTMARK_MESSAGE_STREAM", "postmark_message_stream"),
    Var("POSTMARK_BASE_URL", "postmark_base_url", _url),
    Var("POSTMARK_WEBHOOK_USER", "postmark_webhook_user"),
    Var("POSTMARK_WEBHOOK_PASSWORD", "postmark_webhook_password", secret=True),
    Var("SENDGRID_API_KEY", "sendgrid_api_key", secret=True),
    Var("SENDGRID_BASE_URL", "sendgrid_base_url", _url),
    Var("SENDGRID_WEBHOOK_PUBLIC_KEY", "sendgrid_webhook_public_key"),
    Var("RESEND_API_KEY", "resend_api_key", secret=True),
    Var("RESEND_BASE_URL", "resend_base_url", _url),
    Var("RESEND_WEBHOOK_SECRET", "resend_webhook_secret", secret=True),
    Var("SES_REGION", "ses_region"),
    Var("SES_ACCESS_KEY_ID", "ses_access_key_id"),
    Var("SES_SECRET_ACCESS_KEY", "ses_secret_access_key", secret=True),
    Var("SES_BASE_URL", "ses_base_url", _url),
    Var("SES_CONFIGURATION_SET", "ses_configuration_set"),
    Var("SES_SNS_TOPIC_ARNS", "ses_sns_topic_arns", _addresses),
    Var("BREVO_API_KEY", "brevo_api_key", secret=True),
    Var("BREVO_BASE_URL", "brevo_base_url", _url),
    Var("BREVO_WEBHOOK_USER", "brevo_webhook_user"),
    Var("BREVO_WEBHOOK_PASSWORD", "brevo_webhook_password", secret=True),
    Var("SMTP_HOST", "smtp_host"),
    Var("SMTP_PORT", "smtp_port", _positive_int),
    Var("SMTP_USERNAME", "smtp_username"),
    Var("SMTP_PASSWORD", "smtp_password", secret=True),
    Var("SMTP_SECURITY", "smtp_security", _choice("starttls", "ssl", "none")),
)

#: What each provider cannot start without; checked before the first batch, not at batch 37.
REQUIRED: Mapping[str, tuple[str, ...]] = {
    "outbox": (),
    "smtp": ("SMTP_HOST",),
    "mailgun": ("MAILGUN_API_KEY", "MAILGUN_DOMAIN"),
    "postmark": ("POSTMARK_SERVER_TOKEN",),
    "sendgrid": ("SENDGRID_API_KEY",),
    "resend": ("RESEND_API_KEY",),
    "ses": ("SES_REGION", "SES_ACCESS_KEY_ID", "SES_SECRET_ACCESS_KEY"),
    "brevo": ("BREVO_API_KEY",),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with defaults that work offline on a fresh clone."""

    home: Path
    database_url: str = ""
    provider: str = "outbox"
    secret_key: Secret = Secret("")
    public_url: str = ""
    outbox_dir: str = ""
    lookback_days: int = 7
    feed_timeout: float = 10.0
    feed_max_bytes: int = 5 * 1024 * 1024
    check_deliverability: bool = False
    test_recipients: tuple[str, ...] = ()
    log_level: str = "warning"
    http_timeout: float = 30.0
    http_proxy: str = ""
    concurrency: int = 4
    #: Sender processes for one big issue; 0 = one per core (``auto``).
    processes: int = 0
    #: Per second; None = the provider's documented default (only Resend publishes one).
    rate_messages: float | None = None
    rate_requests: float | None = None
    max_attempts: int = 8
    #: An issue paused because the provider was down is queued again this long after; 0:
    #: only a person resumes it.
    outage_resume_minutes: int = 15
    batch_size: int = 0
    #: Members frozen into the ledger per transaction (rounded to whole batches); 0 = the
    #: database's default (``store.audience.DEFAULT_CHUNKS``).
    freeze_chunk: int = 0
    soft_bounce_limit: int = 3
    collect_interval_minutes: int = 30
    misfire_grace_seconds: int = 3600
    lease_seconds: int = 120
    mailgun_api_key: Secret = Secret("")
    mailgun_domain: str = ""
    mailgun_base_url: str = "https://api.mailgun.net"
    mailgun_webhook_signing_key: Secret = Secret("")
    postmark_server_token: Secret = Secret("")
    postmark_message_stream: str = "broadcast"
    postmark_base_url: str = "https://api.postmarkapp.com"
    postmark_webhook_user: str = ""
    postmark_webhook_password: Secret = Secret("")
    sendgrid_api_key: Secret = Secret("")
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str = ""
    resend_api_key: Secret = Secret("")
    resend_base_url: str = "https://api.resend.com"
    resend_webhook_secret: Secret = Secret("")
    ses_region: str = ""
    ses_access_key_id: str = ""
    ses_secret_access_key: Secret = Secret("")
    ses_base_url: str = ""
    ses_configuration_set: str = ""
    ses_sns_topic_arns: tuple[str, ...] = ()
    brevo_api_key: Secret = Secret("")
    brevo_base_url: str = "https://api.brevo.com"
    brevo_webhook_user: str = ""
    brevo_webhook_password: Secret = Secret("")
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: Secret = Secret("")
    smtp_security: str = "starttls"
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def var_dir(self) -> Path:
        return self.home / "var"

    @property
    def subscribers_dir(self) -> Path:
        return self.home / "subscribers"

    @property
    def templates_dir(self) -> Path:
        return self.home / "templates"

    @property
    def outbox_path(self) -> Path:
        return Path(self.outbox_dir) if self.outbox_dir else self.var_dir / "outbox"

    @property
    def resolved_ses_base_url(self) -> str:
        return self.ses_base_url or f"https://email.{self.ses_region}.amazonaws.com"

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def require_provider_credentials(self, provider: str | None = None) -> None:
        """Fail at start, naming every missing variable, rather than in the middle of a send."""
        name = provider or self.provider
        by_name = {v.name: v.attr for v in VARIABLES}
        missing = [var for var in REQUIRED[name] if not getattr(self, by_name[var])]
        if missing:
            raise ConfigError(
                f"provider {name!r} needs {', '.join(missing)} (set in .env or the environment)"
            )


def _read_environment(
    home: Path, env_file: Path | None, environ: Mapping[str, str]
) -> dict[str, str]:
    path = env_file if env_file is not None else home / ".env"
    values: dict[str, str] = {}
    if path.is_file():
        values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    values.update(environ)  # the process environment wins over the file, as in twelve-factor apps
    return values


def _parse(var: Var, raw: str) -> Any:
    try:
        value = var.parse(raw)
    except ValueError as exc:
        shown = "(hidden)" if var.secret else repr(raw)
        raise ConfigError(f"{var.name}={shown}: {exc}") from exc
    return Secret(value) if var.secret else value


def _secret_key(home: Path, configured: Secret) -> Secret:
    """Use the configured key, else one generated once and kept in ``var/secret.key``."""
    if configured:
        return configured
    path = home / "var" / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return Secret(path.read_text().strip())


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("NEWSLETTER_HOME") or Path.cwd())


def load_settings(
    home: Path | str | None = None,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``.env`` in the publication home plus the environment into a Settings."""
    env = dict(os.environ if environ is None else environ)
    root = Path(home) if home is not None else default_home(env)
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"publication home {root} is not a folder (NEWSLETTER_HOME / --home)")
    raw = _read_environment(root, env_file, env)
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    for var in VARIABLES:
        if var.attr in known and raw.get(var.name, "").strip() != "":
            values[var.attr] = _parse(var, raw[var.name])
    values.setdefault("database_url", f"sqlite:///{root / 'var' / 'newsletter.db'}")
    settings = Settings(home=root, **values)
    return replace(settings, secret_key=_secret_key(root, settings.secret_key))
