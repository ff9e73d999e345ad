"""Settings: read once from ``.env`` and the environment into one frozen, typed object.

This is the only module that looks at ``os.environ``. Everything else receives a
``Settings`` (or the part of it that it needs). Every variable is declared once, as a field
of ``Settings`` whose alias is the variable's name and whose description says what values
are allowed; ``.env.example`` documents the same names and a test keeps them in step.

pydantic-settings does the reading: ``load_settings`` runs its ``.env`` source (python-dotenv
underneath) and its environment source over the process environment (or a mapping a test
gives), the environment winning. A ``Settings`` built directly holds only what it is given,
so a test or ``with_changes`` never picks up the developer's own environment. A wrong value
becomes one ``ConfigError`` naming the variable and what it allows.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, NamedTuple

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError

PROVIDERS = ("outbox", "smtp", "mailgun", "postmark", "sendgrid", "resend", "ses", "brevo")
LOG_LEVELS = ("debug", "info", "warning", "error")
SMTP_SECURITY = ("starttls", "ssl", "none")
DATABASE_EXAMPLES = "sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/dbname"

# Upper bounds keep a typo (an extra zero or three) from overflowing a date or a socket
# timeout in the middle of a send; each is far above any sensible value.
A_DAY = 86_400
A_YEAR_IN_MINUTES = 525_600


class Secret(SecretStr):
    """A string that never shows in ``repr``, ``str`` or logs; ``.reveal()`` gives the value."""

    def reveal(self) -> str:
        return self.get_secret_value()


def _var(name: str, default: Any, allowed: str, **bounds: Any) -> Any:
    """A field read from variable ``name``; ``allowed`` completes "must be …" in errors."""
    return Field(default, validation_alias=name, description=allowed, **bounds)


def _count(name: str, default: int, low: int = 1, high: int | None = None) -> Any:
    what = "a whole number" + (f" from {low} to {high}" if high else f", {low} or more")
    return _var(name, default, what, ge=low, le=high)


def _seconds(name: str, default: float, high: float) -> Any:
    what = f"a number of seconds above 0 and at most {high:g}"
    return _var(name, default, what, gt=0, le=high, allow_inf_nan=False)


def _rate(name: str) -> Any:
    return _var(name, None, "empty (the provider's default), 0 (no limit) or a number above 0",
                ge=0, allow_inf_nan=False)


def _url(name: str, default: str = "") -> Any:
    return _var(name, default, "empty or a URL starting with http:// or https://")


def _text(name: str, default: str = "") -> Any:
    return _var(name, default, "text")


def _secret(name: str) -> Any:
    return _var(name, Secret(""), "text")


def _addresses(name: str) -> Any:
    return _var(name, (), "a comma-separated list")


def _one_of(*allowed: str) -> str:
    return "one of " + ", ".join(allowed)


Addresses = Annotated[tuple[str, ...], NoDecode]  # comma-separated, not JSON


class Settings(BaseSettings):
    """Everything configurable, with defaults that work offline on a fresh clone."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=True,
        env_ignore_empty=True,  # NAME= in .env means "the default", as .env.example shows
        validate_by_name=True,
        validate_by_alias=True,
        hide_input_in_errors=True,  # a ValidationError never carries a secret
    )

    home: Path
    database_url: str = _var("NEWSLETTER_DATABASE_URL", "", f"a database URL: {DATABASE_EXAMPLES}")
    provider: str = _var("NEWSLETTER_PROVIDER", "outbox", _one_of(*PROVIDERS))
    secret_key: Secret = _secret("NEWSLETTER_SECRET_KEY")
    public_url: str = _url("NEWSLETTER_PUBLIC_URL")
    outbox_dir: str = _text("NEWSLETTER_OUTBOX_DIR")
    lookback_days: int = _count("NEWSLETTER_LOOKBACK_DAYS", 7, high=36_500)
    feed_timeout: float = _seconds("NEWSLETTER_FEED_TIMEOUT", 10.0, high=A_DAY)
    feed_max_bytes: int = _count("NEWSLETTER_FEED_MAX_BYTES", 5 * 1024 * 1024)
    #: Hosts fetched at once when collecting; the feeds of one host are fetched in turn.
    collect_concurrency: int = _count("NEWSLETTER_COLLECT_CONCURRENCY", 16, high=64)
    check_deliverability: bool = _var("NEWSLETTER_CHECK_DELIVERABILITY", False,
                                      "true or false (also yes/no, on/off, 1/0)")
    test_recipients: Addresses = _addresses("NEWSLETTER_TEST_RECIPIENTS")
    log_level: str = _var("NEWSLETTER_LOG_LEVEL", "warning", _one_of(*LOG_LEVELS))
    http_timeout: float = _seconds("NEWSLETTER_HTTP_TIMEOUT", 30.0, high=A_DAY)
    http_proxy: str = _url("NEWSLETTER_HTTP_PROXY")
    concurrency: int = _count("NEWSLETTER_CONCURRENCY", 4, high=1000)
    #: Sender processes for one big issue; 0 = one per core (``auto``).
    processes: int = _var("NEWSLETTER_PROCESSES", 0,
                          "auto or a positive whole number (at most 256)", ge=0, le=256)
    #: Per second; None = the provider's documented default (only Resend publishes one).
    rate_messages: float | None = _rate("NEWSLETTER_RATE_MESSAGES")
    rate_requests: float | None = _rate("NEWSLETTER_RATE_REQUESTS")
    max_attempts: int = _count("NEWSLETTER_MAX_ATTEMPTS", 8, high=1000)
    #: An issue paused because the provider was down is queued again this long after; 0:
    #: only a person resumes it.
    outage_resume_minutes: int = _count("NEWSLETTER_OUTAGE_RESUME_MINUTES", 15, low=0,
                                        high=A_YEAR_IN_MINUTES)
    batch_size: int = _count("NEWSLETTER_BATCH_SIZE", 0, low=0)
    #: Members frozen into the ledger per transaction (rounded to whole batches); 0 = the
    #: database's default (``store.audience.DEFAULT_CHUNKS``).
    freeze_chunk: int = _count("NEWSLETTER_FREEZE_CHUNK", 0, low=0)
    soft_bounce_limit: int = _count("NEWSLETTER_SOFT_BOUNCE_LIMIT", 3, high=1000)
    collect_interval_minutes: int = _count("NEWSLETTER_COLLECT_INTERVAL_MINUTES", 30,
                                           high=A_YEAR_IN_MINUTES)
    misfire_grace_seconds: int = _count("NEWSLETTER_MISFIRE_GRACE_SECONDS", 3600, high=365 * A_DAY)
    lease_seconds: int = _count("NEWSLETTER_LEASE_SECONDS", 120, high=A_DAY)
    #: A desk session ends after this long without a request, and this long after sign-in
    #: whatever happens (``web/desk/sessions.py``).
    desk_idle_minutes: int = _count("NEWSLETTER_DESK_IDLE_MINUTES", 30, high=24 * 60)
    desk_session_hours: int = _count("NEWSLETTER_DESK_SESSION_HOURS", 12, high=30 * 24)
    #: Public sign-up (``readers.signup``): how long a confirmation link is good for, how
    #: soon a second confirmation may go to the same address, how fast a form may be filled
    #: at the quickest, and the limits per client and per address within one window.
    signup_confirm_hours: int = _count("NEWSLETTER_SIGNUP_CONFIRM_HOURS", 48, high=30 * 24)
    signup_resend_minutes: int = _count("NEWSLETTER_SIGNUP_RESEND_MINUTES", 5, low=0,
                                        high=A_YEAR_IN_MINUTES)
    signup_min_seconds: int = _count("NEWSLETTER_SIGNUP_MIN_SECONDS", 3, low=0, high=3600)
    signup_client_limit: int = _count("NEWSLETTER_SIGNUP_CLIENT_LIMIT", 20, high=1_000_000)
    signup_address_limit: int = _count("NEWSLETTER_SIGNUP_ADDRESS_LIMIT", 5, high=1_000_000)
    signup_window_minutes: int = _count("NEWSLETTER_SIGNUP_WINDOW_MINUTES", 10, high=24 * 60)
    #: The reader's own page (``readers.preferences``): views and saves per client within
    #: one window of ``signup_window_minutes``.
    reader_page_limit: int = _count("NEWSLETTER_READER_PAGE_LIMIT", 60, high=1_000_000)
    #: The readers' one-off messages (``mail_outbox``) sent, failed or of unknown fate are
    #: deleted this many days after they were last tried.
    reader_mail_retention_days: int = _count("NEWSLETTER_READER_MAIL_RETENTION_DAYS", 30,
                                             high=3650)
    mailgun_api_key: Secret = _secret("MAILGUN_API_KEY")
    mailgun_domain: str = _text("MAILGUN_DOMAIN")
    mailgun_base_url: str = _url("MAILGUN_BASE_URL", "https://api.mailgun.net")
    mailgun_webhook_signing_key: Secret = _secret("MAILGUN_WEBHOOK_SIGNING_KEY")
    postmark_server_token: Secret = _secret("POSTMARK_SERVER_TOKEN")
    postmark_message_stream: str = _text("POSTMARK_MESSAGE_STREAM", "broadcast")
    #: Where a reader's own messages go (a sign-up's confirmation, a welcome): Postmark keeps
    #: mail a reader asked for apart from bulk, and suppresses the broadcast stream's
    #: unsubscribers, who must still get the confirmation when they sign up again.
    postmark_transactional_stream: str = _text("POSTMARK_TRANSACTIONAL_STREAM", "outbound")
    postmark_base_url: str = _url("POSTMARK_BASE_URL", "https://api.postmarkapp.com")
    postmark_webhook_user: str = _text("POSTMARK_WEBHOOK_USER")
    postmark_webhook_password: Secret = _secret("POSTMARK_WEBHOOK_PASSWORD")
    sendgrid_api_key: Secret = _secret("SENDGRID_API_KEY")
    sendgrid_base_url: str = _url("SENDGRID_BASE_URL", "https://api.sendgrid.com")
    sendgrid_webhook_public_key: str = _text("SENDGRID_WEBHOOK_PUBLIC_KEY")
    resend_api_key: Secret = _secret("RESEND_API_KEY")
    resend_base_url: str = _url("RESEND_BASE_URL", "https://api.resend.com")
    resend_webhook_secret: Secret = _secret("RESEND_WEBHOOK_SECRET")
    ses_region: str = _text("SES_REGION")
    ses_access_key_id: str = _text("SES_ACCESS_KEY_ID")
    ses_secret_access_key: Secret = _secret("SES_SECRET_ACCESS_KEY")
    ses_base_url: str = _url("SES_BASE_URL")
    ses_configuration_set: str = _text("SES_CONFIGURATION_SET")
    ses_sns_topic_arns: Addresses = _addresses("SES_SNS_TOPIC_ARNS")
    brevo_api_key: Secret = _secret("BREVO_API_KEY")
    brevo_base_url: str = _url("BREVO_BASE_URL", "https://api.brevo.com")
    brevo_webhook_user: str = _text("BREVO_WEBHOOK_USER")
    brevo_webhook_password: Secret = _secret("BREVO_WEBHOOK_PASSWORD")
    smtp_host: str = _text("SMTP_HOST")
    smtp_port: int = _count("SMTP_PORT", 587, high=65535)
    smtp_username: str = _text("SMTP_USERNAME")
    smtp_password: Secret = _secret("SMTP_PASSWORD")
    smtp_security: str = _var("SMTP_SECURITY", "starttls", _one_of(*SMTP_SECURITY))

    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "provider": PROVIDERS, "log_level": LOG_LEVELS, "smtp_security": SMTP_SECURITY,
    }

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what the caller passes: ``load_settings`` is the one reader of the environment."""
        return (init_settings,)

    @field_validator("provider", "log_level", "smtp_security", mode="before")
    @classmethod
    def _choice(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in cls._CHOICES[str(info.field_name)]:
                raise ValueError("not one of the choices")
        return value

    @field_validator("public_url", "http_proxy", "mailgun_base_url", "postmark_base_url",
                     "sendgrid_base_url", "resend_base_url", "ses_base_url", "brevo_base_url",
                     mode="before")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if value and not value.startswith(("http://", "https://")):
                raise ValueError("not an http(s) URL")
        return value

    @field_validator("test_recipients", "ses_sns_topic_arns", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("processes", mode="before")
    @classmethod
    def _auto_processes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value == "auto":
                return 0
            if not value.isdigit() or int(value) == 0:  # "0" is not a way to say auto
                raise ValueError("not auto or a positive count")
        return value

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                backend = make_url(value).get_backend_name()
            except ArgumentError:
                raise ValueError("not a database URL") from None
            if backend not in ("sqlite", "postgresql"):
                raise ValueError("neither SQLite nor PostgreSQL")
        return value

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
        """A copy with some fields changed, checked like the originals."""
        try:
            return type(self)(**{**dict(self), **changes})
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from exc

    def require_provider_credentials(self, provider: str | None = None) -> None:
        """Fail at start, naming every missing variable or unusable folder, rather than in the
        middle of a send."""
        name = provider or self.provider
        missing = [var for var in REQUIRED[name] if not getattr(self, _FIELD_OF[var])]
        if missing:
            raise ConfigError(
                f"provider {name!r} needs {', '.join(missing)} (set in .env or the environment)"
            )
        if name == "outbox":
            _check_outbox_folder(self.outbox_path, configured=bool(self.outbox_dir))


class Var(NamedTuple):
    """One environment variable and the ``Settings`` field it sets."""

    name: str
    attr: str
    secret: bool


VARIABLES: tuple[Var, ...] = tuple(
    Var(str(info.validation_alias), attr, info.annotation is Secret)
    for attr, info in Settings.model_fields.items()
    if info.validation_alias
)
_FIELD_OF = {var.name: var.attr for var in VARIABLES}
_VARIABLE_OF = {var.attr: var for var in VARIABLES}

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


def _check_outbox_folder(path: Path, *, configured: bool) -> None:
    """The outbox folder, or the nearest part of its path that exists, must be a folder."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        what = f"NEWSLETTER_OUTBOX_DIR={str(path)!r}" if configured else f"the outbox {path}"
        raise ConfigError(f"{what}: {existing} is a file, not a folder; name a folder")


def _shown(var: Var, raw: Any) -> str:
    if var.secret:
        return "(hidden)"
    if var.attr == "database_url" and isinstance(raw, str):
        raw = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw)  # never print a password
    return repr(raw if isinstance(raw, str) else str(raw))


def _describe(exc: ValidationError) -> str:
    """One line for pydantic's report: each wrong variable, its value and what it allows."""
    problems: list[str] = []
    for error in exc.errors(include_input=True, include_url=False):
        key = str(error["loc"][0]) if error["loc"] else ""
        var = _VARIABLE_OF.get(_FIELD_OF.get(key, key))
        if var is None:  # not a variable: a field given in code (home, …)
            problems.append(f"{key or 'settings'}: {error['msg']}")
            continue
        allowed = Settings.model_fields[var.attr].description
        problems.append(f"{var.name}={_shown(var, error.get('input'))}: must be {allowed}")
    return "; ".join(dict.fromkeys(problems))


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (the process environment
    unless a caller, usually a test, gives another)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name, value in self._environ.items() if value.strip()}


def _read_variables(env_file: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """The variables set in ``env_file`` and ``environ``; the environment wins, as in
    twelve-factor apps. A file that does not exist sets nothing."""
    try:
        from_file = DotEnvSettingsSource(Settings, env_file=env_file)()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{env_file}: cannot be read: {exc}") from exc
    from_environment = _EnvironmentSource(Settings, environ)()
    merged = {**from_file, **from_environment}
    return {name: value for name, value in merged.items() if name in _FIELD_OF}  # not `home`


def _secret_key(home: Path, configured: Secret) -> Secret:
    """Use the configured key, else one generated once and kept in ``var/secret.key``."""
    if configured:
        return configured
    path = home / "var" / "secret.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return Secret(path.read_text().strip())


def _prepare_var_folder(home: Path) -> None:
    """Create ``var/``, the one folder the defaults write to (database, key, outbox)."""
    var = home / "var"
    try:
        var.mkdir(exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {var}: {exc.strerror or exc}") from exc


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
    path = env_file if env_file is not None else root / ".env"
    if env_file is not None and not path.is_file():
        raise ConfigError(f"--env-file {path}: no such file")
    values = _read_variables(path, env)
    try:
        settings = Settings(home=root, **values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    _prepare_var_folder(root)
    if not settings.database_url:  # the default database lives in var/, created just above
        default = f"sqlite:///{root / 'var' / 'newsletter.db'}"
        settings = settings.model_copy(update={"database_url": default})
    return settings.model_copy(update={"secret_key": _secret_key(root, settings.secret_key)})
