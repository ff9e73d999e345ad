"""The app as a whole: health check, error pages, headers, and the publication it reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from newsletter.config import Settings, load_settings
from newsletter.store import Store
from newsletter.web import create_app
from tests.servers.webapp import SITE, WebApp, write_publication


@pytest.fixture
def web(settings: Settings, store: Store) -> Iterator[WebApp]:
    with WebApp(create_app(settings, store, site=SITE)) as running:
        yield running


def test_healthz_checks_the_database(web: WebApp) -> None:
    response = web.session.get(web.url("/healthz"))

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_healthz_reports_an_unreachable_database(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "not-a-database").mkdir()
    broken = Store(create_engine(f"sqlite:///{tmp_path / 'not-a-database'}"))
    try:
        with WebApp(create_app(settings, broken, site=SITE)) as web:
            response = web.session.get(web.url("/healthz"))
    finally:
        broken.close()

    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}


def test_unknown_pages_get_a_404_page_with_safe_headers(web: WebApp) -> None:
    response = web.session.get(web.url("/wp-login.php"))

    assert response.status_code == 404
    assert "Not found" in response.text
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_wrong_methods_and_unknown_providers(web: WebApp) -> None:
    get_webhook = web.session.get(web.url("/webhooks/mailgun"))
    unknown = web.session.post(web.url("/webhooks/carrier-pigeon"), data=b"{}")

    assert get_webhook.status_code == 405
    assert get_webhook.headers["Allow"] == "POST"
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown provider"}


def test_the_stylesheet_is_served_from_the_app_itself(web: WebApp) -> None:
    page = web.session.get(web.url("/"))
    css = web.session.get(web.url("/assets/web.css"))

    assert '<link rel="stylesheet" href="/assets/web.css">' in page.text
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert "body {" in css.text
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_publication_can_restyle_its_pages(settings: Settings, store: Store) -> None:
    web_templates = settings.templates_dir / "web"
    web_templates.mkdir(parents=True, exist_ok=True)
    (web_templates / "home.html").write_text("<p>Welcome to {{ site.name }}</p>")

    with WebApp(create_app(settings, store, site=SITE)) as web:
        home = web.session.get(web.url("/"))
        not_found = web.session.get(web.url("/missing"))

    assert home.text == "<p>Welcome to The Example Weekly</p>"
    assert "Not found" in not_found.text  # templates it does not override still come bundled


def test_site_comes_from_the_publication_file(tmp_path: Path, store: Store) -> None:
    write_publication(tmp_path)
    settings = load_settings(tmp_path, environ={})

    with WebApp(create_app(settings, store)) as web:
        home = web.session.get(web.url("/"))

    assert "<h1>The Example Weekly</h1>" in home.text
    assert '<a href="https://news.example.org">' in home.text
