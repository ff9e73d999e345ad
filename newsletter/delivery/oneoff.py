"""One message to one reader outside any issue (a sign-up's confirmation, a welcome), as the
provider seam takes it: a ``PreparedIssue`` whose parts are the finished message, and a
batch of one recipient.

Every provider then sends it as it sends an issue's copy: the same From, Reply-To, List-Id
and one-click List-Unsubscribe headers, the same MIME building and error translation. The
parts are taken literally, never parsed for merge markers: a reader's name typed into a
form ends up in them, and must not be read as a field.
"""

from __future__ import annotations

from ..models import MailingList, Publication
from ..render.merge import MergeTemplate
from .base import BatchRecipient, OutgoingBatch, PreparedIssue
from .prepare import list_id_header, list_unsubscribe_template

#: The issue id of one-off messages: no issue has it (ids start at 1). The outbox provider
#: writes them to a folder per list of their own (``readers-<list>``).
ONE_OFF_ISSUE = 0


def literal(text: str) -> MergeTemplate:
    """``text`` as a template without fields, whatever it holds."""
    return MergeTemplate((text,), ())


def one_off(
    *,
    message_id: int,
    kind: str,
    publication: Publication,
    mailing_list: MailingList,
    to_email: str,
    subject: str,
    html: str,
    text: str,
    unsubscribe_url: str,
) -> tuple[PreparedIssue, OutgoingBatch]:
    """The message ``message_id`` of ``mail_outbox`` ready for ``Provider.send_batch``.

    Its idempotency key is the message's id, so a provider that honours keys delivers a
    message once however often a crashed sender tries it again."""
    from_email = mailing_list.from_email or publication.from_email
    prepared = PreparedIssue(
        issue_id=ONE_OFF_ISSUE,
        list_id=mailing_list.id,
        list_id_header=list_id_header(publication, mailing_list),
        from_email=from_email,
        from_name=mailing_list.from_name or publication.from_name,
        reply_to=mailing_list.reply_to or publication.reply_to,
        subject=literal(subject),
        html=literal(html),
        text=literal(text),
        list_unsubscribe=list_unsubscribe_template(publication, mailing_list),
        message_id_domain=from_email.rpartition("@")[2],
        tag=f"reader-{kind}",
        transactional=True,
    )
    recipient = BatchRecipient(message_id, to_email, "", {"unsubscribe_url": unsubscribe_url})
    return prepared, OutgoingBatch(0, 0, f"reader-{message_id}", [recipient])
