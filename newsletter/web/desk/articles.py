"""The articles page: what was collected, newest first, a page at a time; a collection on
demand ("Collect now": what the scheduler does every ``NEWSLETTER_COLLECT_INTERVAL_MINUTES``,
instant lists' issues included, as the API's ``POST /collect`` does); and drafting an issue
from the articles an editor ticks (``editor.editing.draft``, as ``newsletter issue draft
LIST --article …`` does), recorded in the new issue's history as ``desk:<user>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...editor import editing
from ...editor.articles import ArticleEntry, ArticlePage, Cursor, article_page
from ...editor.editing import RepeatedArticleError
from ...errors import NewsletterError, NotFoundError
from ...publisher import Publisher
from ...schedule import cadence
from ...store import issues as issue_store
from ...wording import counted
from ..coalesced import Coalesced
from . import forms, notices
from .forms import FieldError
from .guard import Guard
from .pages import DeskPages
from .sessions import DeskSession


@dataclass(frozen=True, slots=True)
class Choice:
    """What the draft form asked for, kept to show the form again as it was sent."""

    list_id: str = ""
    article_ids: tuple[int, ...] = ()
    again: bool = False


@dataclass(frozen=True, slots=True)
class Browse:
    """Which page of articles is shown: a source (or all), and where the page starts."""

    source: str = ""
    after: str = ""


class ArticleEndpoints:
    def __init__(self, publisher: Publisher, guard: Guard, pages: DeskPages) -> None:
        self.publisher = publisher
        self.guard = guard
        self.pages = pages
        self.collection = Coalesced(lambda: cadence.collect_and_publish(publisher))

    def routes(self) -> list[Route]:
        guard = self.guard()
        return [
            Route("/desk/articles", guard(self.listing), methods=["GET"]),
            Route("/desk/articles/collect", guard(self.collect), methods=["POST"]),
            Route("/desk/articles/draft", guard(self.draft), methods=["POST"]),
        ]

    async def listing(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        browse = Browse(request.query_params.get("source", "")[:200],
                        request.query_params.get("after", "")[:60])
        return await self._page(session, browse, Choice(), notice=notices.read(request, session))

    async def collect(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        """Every source read now; back to the newest articles, saying what came of it."""
        try:
            with issue_store.acting_as(f"desk:{session.user.name}"):
                done = await self.collection()
        except NewsletterError as exc:  # the publication file cannot be read, say
            error = FieldError("collect", "Collect now", str(exc))
            return await self._page(session, Browse(), Choice(), error=error)
        query = urlencode({"notice": notices.signed(session, collected(done))})
        return RedirectResponse(f"/desk/articles?{query}", status_code=303)

    async def draft(
        self, request: Request, session: DeskSession, form: FormData | None
    ) -> Response:
        browse = Browse(forms.text(form, "source", 200), forms.text(form, "after", 60))
        try:
            chosen = forms.ids(form, "article", "Articles")
        except FieldError as exc:
            return await self._page(session, browse, Choice(), error=exc)
        choice = Choice(forms.text(form, "list", 200), tuple(chosen), forms.ticked(form, "again"))
        try:
            self._check(choice)
            drafted = await run_in_threadpool(self._draft, choice, f"desk:{session.user.name}")
        except FieldError as exc:  # the page again, as it was sent, saying what was wrong
            return await self._page(session, browse, choice, error=exc)
        return RedirectResponse(f"/desk/issues/{drafted}", status_code=303)

    # -- the form ------------------------------------------------------------------------
    def _check(self, choice: Choice) -> None:
        if not choice.article_ids:
            raise FieldError("article", "Articles", "tick at least one article to draft from")
        if not choice.list_id:
            raise FieldError("list", "List", "choose the list the issue is for")
        if choice.list_id not in self._lists():
            raise FieldError("list", "List", f"there is no list {choice.list_id!r}")

    def _draft(self, choice: Choice, actor: str) -> int:
        """The new issue's id; the library's refusals become the field they are about."""
        try:
            with issue_store.acting_as(actor):
                drafted = editing.draft(self.publisher, choice.list_id,
                                        article_ids=list(choice.article_ids), again=choice.again)
        except RepeatedArticleError as exc:
            raise FieldError("article", "Articles", _repeat(exc, choice.list_id)) from exc
        except NotFoundError as exc:
            raise FieldError("article", "Articles", str(exc)) from exc
        except NewsletterError as exc:
            raise FieldError("list", "List", str(exc)) from exc
        return drafted[0]

    # -- the page ------------------------------------------------------------------------
    async def _page(
        self, session: DeskSession, browse: Browse, choice: Choice,
        error: FieldError | None = None, notice: str = "",
    ) -> Response:
        sources = self._sources()
        try:
            page = await run_in_threadpool(self._read, browse, sources)
        except FieldError as exc:
            error = error or exc
            page = await run_in_threadpool(self._read, Browse(), sources)
            browse = Browse()
        return self.pages.render(
            "articles.html", session, 422 if error else 200,
            page=page, rows=[_row(e) for e in page.entries], browse=browse, sources=sources,
            lists=self._lists(), choice=choice, error=error, notice=notice,
            collect_minutes=self.publisher.settings.collect_interval_minutes,
        )

    def _read(self, browse: Browse, sources: list[str]) -> ArticlePage:
        if browse.source and browse.source not in sources:
            raise FieldError("source", "Source", f"there is no source {browse.source!r}")
        try:
            after = Cursor.parse(browse.after) if browse.after else None
        except NewsletterError as exc:
            raise FieldError("after", "Page", "that link to a page of articles is broken; "
                             "here are the newest") from exc
        return article_page(self.publisher, source_id=browse.source or None, after=after)

    def _sources(self) -> list[str]:
        try:
            return sorted(self.publisher.config.sources)
        except NewsletterError:  # the page still lists what was collected
            return []

    def _lists(self) -> dict[str, str]:
        try:
            return {k: v.title for k, v in sorted(self.publisher.config.lists.items())}
        except NewsletterError:
            return {}


def _row(entry: ArticleEntry) -> dict[str, Any]:
    """An article as the page shows it: its link only when it is an http(s) one."""
    return {"entry": entry, "href": forms.web_link(entry.url)}


def _repeat(exc: RepeatedArticleError, list_id: str) -> str:
    carrier = exc.carrier
    if exc.went_out:
        return (f"article {exc.article_id} already went to {list_id} in issue "
                f"{carrier.issue_id} ({carrier.state}); tick “Again” to send it again")
    return (f"article {exc.article_id} is already in issue {carrier.issue_id} of {list_id} "
            f"({carrier.state}); tick “Again” to put it in another issue too")


#: How many failed sources, and how many issue ids a list, the notice names: it rides in
#: the redirect's URL, which a collection of hundreds of feeds must not make too long.
NAMED = 5
ERROR_CHARS = 200


def collected(done: cadence.Collection) -> str:
    """What a collection found and what the instant lists made of it, in a few sentences."""
    report = done.report
    words = [f"Collected {counted(report.new, 'new article')} from "
             f"{counted(len(report.sources), 'source')}."]
    words += [f"{s.source_id} could not be read: {s.error[:ERROR_CHARS]}"
              for s in report.errors[:NAMED]]
    if len(report.errors) > NAMED:
        words.append(f"… and {len(report.errors) - NAMED} more sources could not be read "
                     "(the Status page has each).")
    for outcome in done.lists:
        words += _made(outcome)
    return " ".join(words)


def _made(outcome: cadence.ListOutcome) -> list[str]:
    said = []
    if outcome.queued:
        said.append(f"{outcome.list_id}: {_issues(outcome.queued)} queued.")
    if outcome.waiting:
        said.append(f"{outcome.list_id}: {_issues(outcome.waiting)} drafted for an editor.")
    said += [f"{outcome.list_id}: issue {h.issue_id} held back: {h.reason[:ERROR_CHARS]}"
             for h in outcome.held[:NAMED]]
    if len(outcome.held) > NAMED:
        said.append(f"… and {len(outcome.held) - NAMED} more held back (each issue's page "
                    "says why).")
    return said


def _issues(ids: tuple[int, ...]) -> str:
    named = ", ".join(str(i) for i in ids[:NAMED * 4])
    more = f" and {len(ids) - NAMED * 4} more" if len(ids) > NAMED * 4 else ""
    return ("issue " if len(ids) == 1 else "issues ") + named + more
