"""From a stored, rendered issue to what providers need: templates once, values per recipient."""

from __future__ import annotations

import email.utils
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..lists.tokencache import TokenCache
from ..models import MailingList, Publication
from ..render.greeting import greeting_name
from ..render.merge import MergeTemplate, marker
from ..tokens import TokenSigner, preferences_prefix, unsubscribe_prefix
from .base import BatchRecipient, OutgoingBatch, PreparedIssue


def public_base(settings_public_url: str, publication: Publication) -> str:
    return (settings_public_url or publication.base_url).rstrip("/")


def list_unsubscribe_template(publication: Publication, mailing_list: MailingList) -> MergeTemplate:
    """RFC 2369 value: the one-click HTTPS URL first, a mailto for mail-only setups second."""
    value = f"<{marker('unsubscribe_url')}>"
    if publication.unsubscribe_mailto:
        subject = urllib.parse.quote(f"unsubscribe {mailing_list.id}")
        value += f", <mailto:{publication.unsubscribe_mailto}?subject={subject}>"
    return MergeTemplate.parse(value)


def list_id_header(publication: Publication, mailing_list: MailingList) -> str:
    """RFC 2919: a stable id under a domain the publisher controls, after the list's title.

    The title is a phrase: ``formataddr`` quotes it when it holds specials and encodes it
    (RFC 2047) when it is not ASCII, never both, since an encoded-word inside quotes is
    not decoded by mail programs.
    """
    domain = urlsplit(publication.base_url).hostname or publication.from_email.rpartition("@")[2]
    return email.utils.formataddr((mailing_list.title, f"{mailing_list.id}.{domain}"))


def prepare_issue(
    *,
    issue_id: int,
    subject: str,
    html: str,
    text: str,
    publication: Publication,
    mailing_list: MailingList,
    is_test: bool = False,
) -> PreparedIssue:
    from_email = mailing_list.from_email or publication.from_email
    return PreparedIssue(
        issue_id=issue_id,
        list_id=mailing_list.id,
        list_id_header=list_id_header(publication, mailing_list),
        from_email=from_email,
        from_name=mailing_list.from_name or publication.from_name,
        reply_to=mailing_list.reply_to or publication.reply_to,
        subject=MergeTemplate.parse(("[TEST] " if is_test else "") + subject),
        html=MergeTemplate.parse(html, escape=True),
        text=MergeTemplate.parse(text),
        list_unsubscribe=list_unsubscribe_template(publication, mailing_list),
        message_id_domain=from_email.rpartition("@")[2],
        tag=f"issue-{issue_id}",
        is_test=is_test,
    )


#: One recipient's values from (email, name, list id, member fields).
ValuesFor = Callable[[str, str, str, Mapping[str, str]], dict[str, str]]
#: A recipient's token from (lower-cased address, list id).
TokenFor = Callable[[str, str], str]


class BatchTokens:
    """The tokens of one batch's recipients: those kept (``lists.tokencache``) read in one
    query per list, the others signed and kept once the batch is built."""

    def __init__(self, signer: TokenSigner, kept: TokenCache,
                 wanted: Iterable[tuple[str, str]]) -> None:
        self._sign = signer.sign
        self._kept = kept
        by_list: dict[str, list[str]] = {}
        for address, list_id in wanted:
            by_list.setdefault(list_id, []).append(address)
        self._found = {list_id: kept.known(list_id, addresses)
                       for list_id, addresses in by_list.items()}
        self._new: dict[str, dict[str, str]] = {}

    def __call__(self, address: str, list_id: str) -> str:
        token = self._found[list_id].get(address)
        if token is None:
            token = self._found[list_id][address] = self._sign(address, list_id)
            self._new.setdefault(list_id, {})[address] = token
        return token

    def keep_new(self) -> None:
        for list_id, tokens in self._new.items():
            self._kept.keep(list_id, tokens)
        self._new.clear()


class RecipientValues:
    """Computes each recipient's merge values: the signed unsubscribe URL and their fields.

    ``email`` is the address as the list wrote it (``{{ recipient.email }}`` shows it so);
    the token is signed over its lower-cased form, which suppressions key on, so a link
    is the same whatever the spelling, and links in emails sent before stay valid."""

    def __init__(self, signer: TokenSigner, base_url: str, kept: TokenCache | None = None) -> None:
        """``kept``: where the tokens signed for a list are kept from one send to the next
        (``batch``); None signs every one."""
        self._signer = signer
        self._base = base_url
        self._kept = kept
        self._made: dict[frozenset[str], ValuesFor] = {}  # per issue, asked for per batch

    def __call__(
        self,
        email: str,
        name: str,
        list_id: str,
        fields: Mapping[str, str],
    ) -> dict[str, str]:
        values = {f"f_{key}": str(value) for key, value in fields.items()}
        values.update(self._own(email, name, list_id))
        return values

    def only(self, needed: Iterable[str]) -> ValuesFor:
        """The same values, limited to the fields ``needed`` by an issue's templates.

        A send computes values for every recipient; building just what the templates use
        saves copying every column of every member. A needed field that a member's file
        lacks is empty, as it is in a preview.
        """
        key = frozenset(needed)
        made = self._made.get(key)
        if made is None:
            made = self._made.setdefault(key, self._limited_to(key))
        return made

    @contextmanager
    def batch(
        self, needed: Iterable[str], wanted: Iterable[tuple[str, str]]
    ) -> Iterator[ValuesFor]:
        """As ``only(needed)``, for a batch of recipients whose lower-cased addresses and
        list ids are ``wanted``: their tokens are read from those kept, and the ones signed
        now are kept when the batch is built (on leaving)."""
        key = frozenset(needed)
        if self._kept is None or not key & {"unsubscribe_url", "preferences_url"}:
            yield self.only(key)
            return
        tokens = BatchTokens(self._signer, self._kept, wanted)
        yield self._limited_to(key, tokens)
        tokens.keep_new()

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()

    def _limited_to(self, needed: frozenset[str], token_for: TokenFor | None = None) -> ValuesFor:
        """Exactly the ``needed`` keys: a provider that merges on its side can then send each
        recipient's values as they are (``variables.batch_variables``)."""
        columns = [
            (f, f[2:] if f.startswith("f_") else "") for f in sorted(needed - OWN_FIELDS)
        ]
        wants = [f in needed for f in ("email", "name", "greeting_name")]
        want_email, want_name, want_greeting = wants
        want_url, want_page = "unsubscribe_url" in needed, "preferences_url" in needed
        sign = token_for or self._signer.sign
        prefix, page = unsubscribe_prefix(self._base), preferences_prefix(self._base)

        def values(
            email: str, name: str, list_id: str, fields: Mapping[str, str]
        ) -> dict[str, str]:
            out = {}
            if want_url or want_page:  # signed lower-cased, as the ledger and suppressions key it
                token = sign(email.lower(), list_id)
                if want_url:
                    out["unsubscribe_url"] = prefix + token
                if want_page:
                    out["preferences_url"] = page + token
            if want_greeting:
                out["greeting_name"] = greeting_name(name)
            if want_name:
                out["name"] = name
            if want_email:
                out["email"] = email
            for key, column in columns:
                out[key] = str(fields.get(column, "")) if column else ""
            return out

        return values

    def _own(self, email: str, name: str, list_id: str) -> dict[str, str]:
        token = self._signer.sign(email.lower(), list_id)
        return {
            "email": email,
            "name": name,
            "greeting_name": greeting_name(name),
            "unsubscribe_url": unsubscribe_prefix(self._base) + token,
            "preferences_url": preferences_prefix(self._base) + token,
        }


#: The values every recipient has, whatever their member file's columns.
OWN_FIELDS = frozenset({"email", "name", "greeting_name", "unsubscribe_url", "preferences_url"})


def batch_for_test_send(
    prepared: PreparedIssue, make: RecipientValues, addresses: Sequence[str], key: str
) -> OutgoingBatch:
    """A batch for a test send: outside the ledger (negative ids), fields a member would
    have filled left empty."""
    needed = prepared.html.field_names | prepared.text.field_names
    recipients = []
    for index, address in enumerate(addresses):
        values = make(address, "", prepared.list_id, {})
        values.update({name: "" for name in needed - values.keys()})
        recipients.append(BatchRecipient(-(index + 1), address, "", values))
    return OutgoingBatch(0, 0, key, recipients)
