"""The database schema, in SQLAlchemy Core. Migrations in ``migrations/`` create and evolve it.

The ledger (``recipients`` + ``batches``) is the record of every email an issue owes:
frozen when sending starts, with each batch's state committed before and after its HTTP call.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every database.

    SQLite keeps no offset: without this, 08:00+01:00 would be stored as 08:00 and read
    back as 08:00 UTC, an hour late. Naive values are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

# BigInteger ids on PostgreSQL, but plain INTEGER PRIMARY KEY (the rowid) on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")

source_state = Table(
    "source_state",
    metadata,
    Column("source_id", String(200), primary_key=True),
    Column("etag", String(500), nullable=False, default=""),
    Column("last_modified", String(200), nullable=False, default=""),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_checked_at", UtcDateTime()),
    Column("last_status", String(40), nullable=False, default=""),
    Column("last_error", Text, nullable=False, default=""),
    Column("last_new", Integer, nullable=False, default=0),
)

articles = Table(
    "articles",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source_id", String(200), nullable=False),
    Column("uid", String(1000), nullable=False),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False, default=""),
    Column("author", Text, nullable=False, default=""),
    Column("published_at", UtcDateTime()),
    Column("summary_html", Text, nullable=False, default=""),
    Column("content_html", Text, nullable=False, default=""),
    Column("image_url", Text, nullable=False, default=""),
    Column("tags", JSON, nullable=False, default=list),
    Column("content_hash", String(64), nullable=False, default=""),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # Seen on a source's first fetch but older than the look-back window: never offered.
    Column("archived", Integer, nullable=False, default=0),
    UniqueConstraint("source_id", "uid", name="uq_articles_source_uid"),
)

# When a list was first seen: articles older than that minus the look-back are not offered
# to it, so adding a list to an old source does not mail out the archive.
list_state = Table(
    "list_state",
    metadata,
    Column("list_id", String(100), primary_key=True),
    Column("first_seen_at", UtcDateTime(), nullable=False),
)

issues = Table(
    "issues",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("list_id", String(100), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("state", String(20), nullable=False, index=True),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False, default=""),
    Column("intro_md", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("send_at", UtcDateTime()),
    Column("started_at", UtcDateTime()),
    Column("finished_at", UtcDateTime()),
    Column("provider", String(40), nullable=False, default=""),
    Column("html", Text, nullable=False, default=""),
    Column("text", Text, nullable=False, default=""),
    Column("web_html", Text, nullable=False, default=""),
    Column("rendered_at", UtcDateTime()),
    Column("audience_frozen", Integer, nullable=False, default=0),
    # Who is freezing the audience, chunk by chunk, and until when that claim holds.
    Column("freeze_owner", String(200), nullable=False, default="", server_default=""),
    Column("freeze_until", Float, nullable=False, default=0.0, server_default="0"),
    Column("pause_reason", Text, nullable=False, default=""),
    # The issue's number in its list (1 for a list's first issue), shown in the masthead;
    # handed out by ``issue_numbers``. Empty for rows made outside ``issues.create``.
    Column("number", Integer),
    Index("ix_issues_list_number", "list_id", "number", unique=True),
)

# The last number each list handed out: a counter rather than max(number) + 1, so that a
# number is never given twice, even after its issue is gone, and drafts made at the same
# time wait for each other on this row instead of reading the same maximum.
issue_numbers = Table(
    "issue_numbers",
    metadata,
    Column("list_id", String(100), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

issue_articles = Table(
    "issue_articles",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("article_id", ForeignKey("articles.id"), primary_key=True),
    Column("position", Integer, nullable=False),
)

# An article is offered to a list once: the row is written when an issue containing it is
# drafted, and removed again only if that issue is cancelled before anything was sent.
list_articles = Table(
    "list_articles",
    metadata,
    Column("list_id", String(100), primary_key=True),
    Column("article_id", ForeignKey("articles.id"), primary_key=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
)

issue_events = Table(
    "issue_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("from_state", String(20), nullable=False),
    Column("to_state", String(20), nullable=False),
    Column("note", Text, nullable=False, default=""),
    #: Who made the change: ``cli:<os user>``, ``desk:<user>``, or empty for the scheduler
    #: and the senders.
    Column("actor", String(100), nullable=False, default="", server_default=""),
)

batches = Table(
    "batches",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("state", String(20), nullable=False),
    Column("size", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("idempotency_key", String(100), nullable=False),
    Column("provider_batch_id", Text, nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("lease_owner", String(100), nullable=False, default=""),
    Column("lease_until", Float, nullable=False, default=0.0),
    # When the claimed batch's request started (0: not yet): a sender that dies before
    # then, waiting for the rate limiter, sent nothing, and the batch goes back to pending.
    Column("request_started_at", Float, nullable=False, default=0.0, server_default="0"),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("issue_id", "seq", name="uq_batches_issue_seq"),
    # ``claim`` reads the first pending batch in ``seq`` order straight from this index.
    Index("ix_batches_claim", "issue_id", "state", "seq"),
    # Webhooks of providers that give a whole batch one message id find it here.
    Index("ix_batches_provider_batch_id", "provider_batch_id"),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("batch_id", ForeignKey("batches.id"), nullable=True),
    # Lower-cased: what the unique index, suppressions, webhooks and tokens compare.
    Column("email", String(320), nullable=False),
    # The address as the list wrote it (its first spelling), which a send uses; NULL when
    # it is ``email`` already, as in most lists.
    Column("email_as_written", String(320), nullable=True),
    Column("name", Text, nullable=False, default=""),
    Column("fields", JSON, nullable=False, default=dict),
    Column("list_id", String(100), nullable=False, default=""),
    Column("status", String(20), nullable=False),
    Column("provider_message_id", String(300), nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Column("updated_at", UtcDateTime()),
    UniqueConstraint("issue_id", "email", name="uq_recipients_issue_email"),
    # A batch's open rows, and an issue's rows counted by status, read from this index
    # alone. A batch sent whole leaves its rows as they are (``queued``, read as sent), so
    # ``status`` changes, and moves an index entry, only for a row whose outcome differs.
    Index("ix_recipients_batch_status", "batch_id", "status"),
    # Rows kept out of every batch (suppressed): counted without reading the issue's rows.
    Index(
        "ix_recipients_unbatched",
        "issue_id",
        "status",
        sqlite_where=text("batch_id IS NULL"),
        postgresql_where=text("batch_id IS NULL"),
    ),
    # Most rows never get an id of their own (a batch-wide id is on the batch): indexing
    # only those that do keeps a million empty strings out of the index.
    Index(
        "ix_recipients_message_id",
        "provider_message_id",
        sqlite_where=text("provider_message_id != ''"),
        postgresql_where=text("provider_message_id != ''"),
    ),
)

# What each issue's audience was frozen from (``store.audience_sources``): a later issue to
# the same list, read from the very same bytes, copies that audience rather than reading the
# list again. The ids bound where its rows are, so the copy needs no index on the issue.
audience_sources = Table(
    "audience_sources",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("list_id", String(100), nullable=False),
    Column("key", String(64), nullable=False),
    Column("first_row", BigInteger, nullable=False),
    Column("last_row", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("duplicates", BigInteger, nullable=False),
    # Each member file's name, size and SHA-256, in order: a later read of the same files
    # with rows appended to the last one copies these rows and reads only the new ones.
    Column("files", JSON, nullable=True),
    Index("ix_audience_sources_list_key", "list_id", "key"),
)

# How each issue's audience was frozen (``store.audience_origins``), for editors to read:
# read from the list's files, or copied from an earlier issue (then the rows appended to a
# file since read), with the rows and the repeats dropped.
issue_audiences = Table(
    "issue_audiences",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("copied_from", BigInteger, nullable=True),  # an issue id; None: read
    Column("appended_to", String(255), nullable=False, default=""),  # the file read after it
    Column("from_line", BigInteger, nullable=False, default=0),  # 1: the whole file
    Column("rows", BigInteger, nullable=True),  # None: a freeze taken over (not one run's)
    Column("duplicates", BigInteger, nullable=True),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("scope", String(100), primary_key=True),  # a list id, or "*" for every list
    Column("reason", String(20), nullable=False),
    Column("source", String(100), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime(), nullable=False),
    # A send reads the suppressions added since its audience was frozen before each batch.
    Index("ix_suppressions_created_at", "created_at"),
)

soft_bounces = Table(
    "soft_bounces",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
    Column("last_at", UtcDateTime(), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("provider", String(40), nullable=False),
    Column("event_id", String(300), nullable=False),
    Column("type", String(20), nullable=False),
    Column("email", String(320), nullable=False, default=""),
    Column("provider_message_id", String(300), nullable=False, default=""),
    Column("issue_id", BigInteger, nullable=True, index=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    UniqueConstraint("provider", "event_id", name="uq_events_provider_event"),
    # A reader's events, for ``subscribers show`` and ``forget``: by address, and, for those
    # a provider sent without one (an empty address), by the id of one of their messages.
    # Without it a reader's data request read every event the publication ever had.
    Index("ix_events_email_message", "email", "provider_message_id"),
)

# Webhook tokens already seen (Mailgun asks receivers to refuse a replayed token).
seen_tokens = Table(
    "seen_tokens",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("token", String(300), primary_key=True),
    Column("at", UtcDateTime(), nullable=False),
)

# Global token buckets, shared by every worker process on the same database.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated", Float, nullable=False),
)

# Who holds a named lock (the scheduler) and until when; renewed by the holder.
locks = Table(
    "locks",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("until", Float, nullable=False),
)

collections = Table(
    "collections",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("report", JSON, nullable=False),
)


# -- the desk: its accounts, their server-side sessions, and sign-in throttling --------------
desk_users = Table(
    "desk_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(10), nullable=False),
    #: An argon2id hash in PHC form (``$argon2id$v=19$m=…``): its parameters travel with it.
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

desk_sessions = Table(
    "desk_sessions",
    metadata,
    #: The SHA-256 of the cookie's value: a copy of the table signs nobody in.
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("desk_users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)

desk_throttle = Table(
    "desk_throttle",
    metadata,
    #: ``name:<account>`` or ``addr:<client address>``.
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)


# -- the HTTP API's tokens -------------------------------------------------------------------
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: Named like a desk account; the issue history records ``api:<name>``, so a name is
    #: never given to a second token, even once the first is revoked.
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(10), nullable=False),
    #: The SHA-256 of the token: a copy of the table lets nobody in.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)


# -- readers: sign-ups, the confirmed sign-ups every host copies into its files, limits and
# -- the transactional messages (confirmations, welcomes) -----------------------------------
signup_requests = Table(
    "signup_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("list_id", String(100), nullable=False),
    #: ``lists.address.address_key`` of the address: one request per reader and list.
    Column("email_key", String(320), nullable=False),
    #: The address as the reader typed it, checked (``sendable_address``).
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    #: Random; the confirmation link carries it, so a link is good once and only the newest
    #: request's link confirms. Emptied when the request is confirmed.
    Column("nonce", String(64), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    #: When a confirmation was last queued for this request (none is re-sent sooner than the
    #: resend interval after it).
    Column("last_sent_at", UtcDateTime(), nullable=True),
    Column("confirmed_at", UtcDateTime(), nullable=True),
    UniqueConstraint("list_id", "email_key", name="uq_signup_requests_list_email"),
)

# The journal of confirmed sign-ups and readers' own changes, in the order they happened.
# The database is the record every host shares; each host copies the journal into its own
# ``subscribers/`` sign-up files, remembering the last ``id`` it applied.
signup_journal = Table(
    "signup_journal",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("list_id", String(100), nullable=False),
    #: ``join`` (add the reader to the list's sign-up file) or ``rename`` (a new name).
    Column("kind", String(10), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    #: ``confirm`` (a confirmation link) or ``preferences`` (the reader's own page).
    Column("source", String(20), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_signup_journal_list_id", "list_id", "id"),
)

# Fixed-window counters for the public forms: per client address and per email address,
# shared by every process through the database.
reader_limits = Table(
    "reader_limits",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("count", Integer, nullable=False),
)

# One-off messages to one reader (a sign-up's confirmation, a welcome), rendered when they
# are queued and sent by whichever process claims them; the same statuses as the ledger.
mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    #: ``confirm``, ``welcome`` or ``notice`` (an already subscribed reader's reminder).
    Column("kind", String(20), nullable=False),
    Column("list_id", String(100), nullable=False),
    Column("to_email", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    #: A ``BatchState``: pending, sending (claimed), sent, failed, unknown.
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("queued_at", UtcDateTime(), nullable=False),
    #: Not to be tried before this; a claimed row's lease ends here.
    Column("due_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("provider_message_id", String(300), nullable=False, default=""),
    Column("error", Text, nullable=False, default=""),
    Index("ix_mail_outbox_status_due", "status", "due_at"),
)
