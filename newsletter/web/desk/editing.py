"""A draft's words and articles, edited on its page: subject, preheader and introduction,
and articles added, moved up or down, and removed. Each form calls ``editor.editing``, as
``newsletter issue edit`` and ``newsletter issue articles …`` do; only a draft takes them,
and the state machine's refusal (the issue was queued meanwhile) is shown with a 409.
"""

from __future__ import annotations

from starlette.datastructures import FormData

from ...editor import editing
from ...editor.articles import article_entry
from ...publisher import Publisher
from ...wording import counted
from .issuepage import FieldError, IssueForms, Operation, text_field, ticked, whole_number

#: The longest words a form takes (the pre-send checks say what is wise: a subject over
#: 78 characters is a warning).
MAX_CHARS = {"subject": 500, "preheader": 500, "intro": 50_000}
LABELS = {"subject": "Subject", "preheader": "Preheader", "intro": "Introduction"}
#: The fields ``editing.edit`` says it changed, as the notice names them.
CHANGED = {"subject": "subject", "preheader": "preheader", "intro_md": "introduction"}
#: How a refused repeat is told to add the article anyway, in the words of the form.
ADD_AGAIN = "tick “Add it again” and add it"


def words(form: FormData) -> dict[str, str]:
    """The three fields as typed: subject and preheader trimmed, the introduction with the
    browser's CRLF line ends made plain ones (Markdown, stored as written)."""
    typed = {
        "subject": text_field(form, "subject").strip(),
        "preheader": text_field(form, "preheader").strip(),
        "intro": text_field(form, "intro").replace("\r\n", "\n"),
    }
    for name, text in typed.items():
        if len(text) > MAX_CHARS[name]:
            raise FieldError(name, f"{LABELS[name]}: at most {MAX_CHARS[name]:,} characters "
                                   f"(this has {len(text):,})")
    return typed


def edit(publisher: Publisher, issue_id: int, form: FormData) -> str:
    typed = words(form)
    changed = editing.edit(publisher, issue_id, subject=typed["subject"],
                           preheader=typed["preheader"], intro_md=typed["intro"])
    if not changed:
        return "Nothing changed."
    names = ", ".join(CHANGED.get(name, name) for name in changed)
    return f"Saved: {names}. The preview shows the issue as it is now."


def add_article(publisher: Publisher, issue_id: int, form: FormData) -> str:
    if not text_field(form, "article"):
        raise FieldError("article", "Article: choose one to add")
    article_id = whole_number(form, "article", "article")
    title = article_entry(publisher, article_id).title
    at, count = editing.add_article(publisher, issue_id, article_id,
                                    again=ticked(form, "again"), how_again=ADD_AGAIN)
    return f"Added “{title}” at position {at} of {count}."


def move_article(publisher: Publisher, issue_id: int, form: FormData) -> str:
    article_id = whole_number(form, "article", "articles")
    position = whole_number(form, "position", "articles")
    title = article_entry(publisher, article_id).title
    editing.move_article(publisher, issue_id, article_id, position, field="position")
    return f"Moved “{title}” to position {position}."


def remove_article(publisher: Publisher, issue_id: int, form: FormData) -> str:
    article_id = whole_number(form, "article", "articles")
    title = article_entry(publisher, article_id).title
    left = editing.remove_article(publisher, issue_id, article_id)
    return (f"Removed “{title}” ({counted(left, 'article')} left); a later "
            "issue may take it.")


OPERATIONS = [
    Operation("edit", edit),
    Operation("add-article", add_article, field="article"),
    Operation("move-article", move_article),
    Operation("remove-article", remove_article),
]


class EditingEndpoints(IssueForms):
    operations = OPERATIONS
