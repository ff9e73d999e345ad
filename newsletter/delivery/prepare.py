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
from ..store.ledger import OpenRow
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
class BatchTokens:
    """The tokens of one batch: those kept for its place in the list (``lists.tokencache``),
    read as one value; a recipient not among them is signed, and the batch's tokens are
    kept again. A recipient of another list than the issue's is signed, not kept."""

    def __init__(self, signer: TokenSigner, kept: TokenCache, list_id: str, seq: int) -> None:
        self._sign = signer.sign
        self._kept = kept
        self.list_id, self.seq = list_id, seq
        self.found = kept.batch(list_id, seq)
        self._signed = 0

    def sign(self, address: str, list_id: str) -> str:
        """A token not found: signed now (and noted, if of the issue's list)."""
        token = self._sign(address, list_id)
        if list_id == self.list_id:
            self.found[address] = token
            self._signed += 1
        return token

    def settle(self, rows: Sequence[OpenRow]) -> None:
        """Keep the batch's tokens (its ``rows`` as the ledger gave them), unless every one
        was found and nothing else was there."""
        if not self._signed and len(self.found) == len(rows):
            return
        mine = [row[1].lower() for row in rows if (row[4] or self.list_id) == self.list_id]
        if self._signed or len(mine) != len(self.found):
            self._kept.keep(self.list_id, self.seq, {a: self.found[a] for a in mine})


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
        self, needed: Iterable[str], list_id: str, seq: int, rows: Sequence[OpenRow]
    ) -> Iterator[ValuesFor]:
        """As ``only(needed)``, for the ``rows`` of batch ``seq`` of an issue to
        ``list_id``: their tokens are read from those kept for that batch's place, and kept
        again, on leaving, if any was not there."""
        key = frozenset(needed)
        if self._kept is None or not key & {"unsubscribe_url", "preferences_url"}:
            yield self.only(key)
            return
        tokens = BatchTokens(self._signer, self._kept, list_id, seq)
        yield self._limited_to(key, tokens)
        tokens.settle(rows)

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()

    def _limited_to(self, needed: frozenset[str], kept: BatchTokens | None = None) -> ValuesFor:
        """Exactly the ``needed`` keys: a provider that merges on its side can then send each
        recipient's values as they are (``variables.batch_variables``)."""
        columns = [
            (f, f[2:] if f.startswith("f_") else "") for f in sorted(needed - OWN_FIELDS)
        ]
        wants = [f in needed for f in ("email", "name", "greeting_name")]
        want_email, want_name, want_greeting = wants
        want_url, want_page = "unsubscribe_url" in needed, "preferences_url" in needed
        sign = kept.sign if kept is not None else self._signer.sign
        found = kept.found if kept is not None else {}
        main = kept.list_id if kept is not None else None
        prefix, page = unsubscribe_prefix(self._base), preferences_prefix(self._base)

        def values(
            email: str, name: str, list_id: str, fields: Mapping[str, str]
        ) -> dict[str, str]:
            out = {}
            if want_url or want_page:  # signed lower-cased, as the ledger and suppressions key it
                key = email.lower()
                token = (found.get(key) if list_id == main else None) or sign(key, list_id)
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
