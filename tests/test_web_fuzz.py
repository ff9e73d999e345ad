"""Nobody can make the public app answer 500: every malformed request gets a 4xx.

The fuzz test drives the real app through uvicorn over every route it registers (read from
``app.routes``, so a new route is fuzzed without touching this file), with random paths, ids,
methods, bodies, content types, nesting and sizes, and with the credentials that get a body
past each provider's authentication, so the parsers behind it are reached too. It is
derandomized and bounded: the same examples run every time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route
from svix.webhooks import Webhook

from newsletter.config import Secret, Settings
from newsletter.models import IssueState
from newsletter.store import Store
from newsletter.tokens import TokenSigner
from newsletter.web import create_app
from newsletter.web.app import FORM_MAX_BODY
from newsletter.web.webhooks import build_receivers
from newsletter.web.webhooks.endpoint import MAX_BODY
from tests.servers.webapp import SITE, WebApp, add_issue, basic_auth

MAILGUN_KEY = "mailgun-signing-key"
RESEND_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BASIC = {"postmark": ("postmark-hooks", "postmark pw"), "brevo": ("brevo-hooks", "brevo pw")}
#: Requests per route, and to random paths.
FUZZ_EXAMPLES = 80


def configured(settings: Settings) -> Settings:
    """Every provider's secret set, so that bodies get past authentication to the parsers."""
    return settings.with_changes(
        mailgun_webhook_signing_key=Secret(MAILGUN_KEY),
        resend_webhook_secret=Secret(RESEND_SECRET),
        postmark_webhook_user=BASIC["postmark"][0],
        postmark_webhook_password=Secret(BASIC["postmark"][1]),
        brevo_webhook_user=BASIC["brevo"][0],
        brevo_webhook_password=Secret(BASIC["brevo"][1]),
    )


@dataclass
class Running:
    app: Starlette
    web: WebApp
    signer: TokenSigner
    issue_id: int
    providers: list[str]


@pytest.fixture
def running(settings: Settings, store: Store) -> Iterator[Running]:
    app = create_app(configured(settings), store, site=SITE)
    issue_id = add_issue(store, state=IssueState.SENT, web_html="<p>Issue one</p>")
    providers = sorted(build_receivers(configured(settings), store.now))
    with WebApp(app) as web:
        yield Running(app, web, TokenSigner(settings.secret_key.reveal()), issue_id, providers)


def nested(depth: int, kind: str = "[") -> bytes:
    if kind == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def mailgun_signed(event_data: Any) -> bytes:
    """A body with a valid Mailgun signature around ``event_data`` (any JSON)."""
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    digest = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    signature = {"timestamp": stamp, "token": token, "signature": digest}
    return b'{"signature":' + json.dumps(signature).encode() + b',"event-data":' + _raw(
        event_data
    ) + b"}"


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def resend_headers(body: bytes) -> dict[str, str]:
    now, msg_id = datetime.now(UTC), "msg_" + secrets.token_hex(8)
    signature = Webhook(RESEND_SECRET).sign(msg_id, now, body.decode("utf-8", "replace"))
    return {"svix-id": msg_id, "svix-timestamp": str(int(now.timestamp())),
            "svix-signature": signature}


# -- the two 500s found by hand, and the limits --------------------------------------------


@pytest.mark.parametrize(
    "issue_id", ["9223372036854775808", "9223372036854775807", "99999999999999999999999", "0",
                 "9" * 5000, "0" * 5000, "0" * 30 + "4242", "١", "+1", "1.0"]
)
def test_an_issue_id_no_row_can_have_is_not_found(running: Running, issue_id: str) -> None:
    response = running.web.session.get(running.web.url(f"/archive/weekly/{issue_id}"))

    assert response.status_code == 404
    assert "Not found" in response.text


def test_an_issue_id_with_leading_zeros_is_still_that_issue(running: Running) -> None:
    page = running.web.session.get(running.web.url(f"/archive/weekly/000{running.issue_id}"))

    assert page.status_code == 200
    assert "<p>Issue one</p>" in page.text


@pytest.mark.parametrize("kind", ["[", "{"])
@pytest.mark.parametrize("provider", ["mailgun", "ses", "sendgrid", "resend", "postmark", "brevo"])
def test_deeply_nested_json_is_refused_without_a_crash(
    running: Running, provider: str, kind: str
) -> None:
    body = nested(100_000, kind)

    response = running.web.session.post(running.web.url(f"/webhooks/{provider}"), data=body)

    assert response.status_code in (400, 401, 403)


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deep_json_after_a_valid_signature_is_a_400(running: Running, depth: int) -> None:
    session, url = running.web.session, running.web.url
    deep = nested(depth, "{")
    answers = [
        session.post(url("/webhooks/postmark"), data=deep, headers=basic_auth(*BASIC["postmark"])),
        session.post(url("/webhooks/brevo"), data=deep, headers=basic_auth(*BASIC["brevo"])),
        session.post(url("/webhooks/resend"), data=deep, headers=resend_headers(deep)),
    ]
    # Mailgun's signature is inside the body: one too deep to read cannot be verified.
    mailgun = session.post(url("/webhooks/mailgun"), data=mailgun_signed(deep))

    assert [a.status_code for a in answers] == [400] * 3
    # Past 32 levels our limit says so; past 1,024 the parser stops by itself first.
    expected = "nested deeper than 32 levels" if depth <= 1_024 else "depth limit exceeded"
    assert all(expected in a.json()["error"] for a in answers)
    assert mailgun.status_code == 403


def test_json_nested_as_deep_as_real_events_is_still_read(running: Running) -> None:
    """Real payloads nest a few levels; the limit leaves them plenty of room."""
    session, url = running.web.session, running.web.url
    event = {"RecordType": "Delivery", "MessageID": "m1", "Recipient": "a@example.org",
             "DeliveredAt": "2026-11-25T16:33:54Z"}
    body = json.dumps(event).encode()[:-1] + b', "Metadata": ' + nested(31, "{") + b"}"

    answer = session.post(url("/webhooks/postmark"), data=body,
                          headers=basic_auth(*BASIC["postmark"]))

    assert answer.status_code == 200


def test_a_nul_character_in_an_event_field_is_a_400(running: Running) -> None:
    """PostgreSQL cannot store it; SQLite could, but both answer alike."""
    event = {"id": "e1", "timestamp": time.time(), "event": "delivered",
             "recipient": "a\u0000@example.org"}
    record = {"RecordType": "Delivery", "MessageID": "m\u00001", "Recipient": "a@example.org",
              "DeliveredAt": "2026-11-25T16:33:54Z"}

    mailgun = running.web.session.post(
        running.web.url("/webhooks/mailgun"), data=mailgun_signed(event)
    )
    postmark = running.web.session.post(
        running.web.url("/webhooks/postmark"), json=record, headers=basic_auth(*BASIC["postmark"])
    )

    assert (mailgun.status_code, postmark.status_code) == (400, 400)
    assert "NUL" in mailgun.json()["error"] and "NUL" in postmark.json()["error"]


def test_a_nul_character_in_the_path_is_not_found(running: Running) -> None:
    for path in ("/archive/we%00ekly/", f"/archive/we%00ekly/{running.issue_id}", "/%00"):
        assert running.web.session.get(running.web.url(path)).status_code == 404


def _chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    while size > 0:
        yield b"a" * min(piece, size)
        size -= piece


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_get_a_413(running: Running, chunked: bool) -> None:
    web = running.web
    token = running.signer.sign("jane@example.org", "weekly")
    form_body = b"List-Unsubscribe=One-Click&x=" + b"a" * FORM_MAX_BODY
    webhook_body = b"a" * (MAX_BODY + 1)
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}

    def body(data: bytes) -> bytes | Iterator[bytes]:
        return _chunks(len(data)) if chunked else data

    unsubscribe = web.raw_request("POST", f"/unsubscribe/{token}", form_type, body(form_body))
    webhook = web.raw_request("POST", "/webhooks/postmark", basic_auth(*BASIC["postmark"]),
                              body(webhook_body))
    anywhere = web.raw_request("POST", "/archive/", {}, body(form_body))

    assert unsubscribe.status_code == 413
    assert b"Content Too Large" in unsubscribe.body
    assert webhook.status_code == 413
    assert anywhere.status_code in (405, 413)


def test_bodies_within_the_limits_are_read(running: Running) -> None:
    session, url = running.web.session, running.web.url
    token = running.signer.sign("jane@example.org", "weekly")
    padding = b"&x=" + b"a" * (FORM_MAX_BODY - 100)
    big_events = json.dumps([{"RecordType": "Open"}] * ((MAX_BODY - 100) // 30)).encode()[
        : MAX_BODY - 10
    ]

    unsubscribe = session.post(
        url(f"/unsubscribe/{token}"), data=b"List-Unsubscribe=One-Click" + padding,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    webhook = session.post(url("/webhooks/postmark"), data=big_events,
                           headers=basic_auth(*BASIC["postmark"]))

    assert unsubscribe.status_code == 200
    assert webhook.status_code == 400  # read whole, then found malformed (cut mid-array)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=\xff\xfe%ff%fe"),
        ("application/x-www-form-urlencoded; charset=utf-16", b"\xff\xfe\x00"),
        ("multipart/form-data", b"--x\r\n\xff"),
        ("multipart/form-data; boundary=x", b"\xff\xfe garbage"),
        ("multipart/form-data; boundary=", b""),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n"),
        ("multipart/form-data; boundary=\xff", b"--\xff\r\n"),
        ("text/plain; charset=bogus", b"\xc3\x28"),
        ("application/json", b"\xed\xa0\x80"),
        ("", b"\x00" * 100),
        ("\x7f;;;===", b"List-Unsubscribe=One-Click"),
    ],
)
def test_invalid_utf8_and_odd_content_types_get_a_4xx(
    running: Running, content_type: str, body: bytes
) -> None:
    token = running.signer.sign("jane@example.org", "weekly")
    paths = [f"/unsubscribe/{token}", "/unsubscribe/not-a-token", "/webhooks/postmark",
             "/webhooks/mailgun", "/webhooks/ses", "/webhooks/resend", "/webhooks/sendgrid"]

    for path in paths:
        extra = basic_auth(*BASIC["postmark"]) if path.endswith("postmark") else {}
        answer = running.web.raw_request("POST", path, {"Content-Type": content_type, **extra},
                                         body)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.body[:200])


# -- the fuzz test ----------------------------------------------------------------------------

CONTENT_TYPES = [
    "application/json", "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=fuzz", "multipart/form-data; boundary=", "text/plain",
    "application/json; charset=latin-1", "application/x-www-form-urlencoded; charset=utf-16",
    "text/html; charset=nonsense", "", "*/*", "multipart/mixed; boundary=\"fuzz\"",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
#: Field names the receivers look for, so random objects look like events often enough.
EVENT_KEYS = ["event", "event-data", "signature", "RecordType", "Type", "Message", "type",
              "data", "email", "recipient", "timestamp", "sg_message_id", "MessageID", "id",
              "severity", "message", "headers", "message-id", "eventType", "mail", "bounce"]
event_like = st.dictionaries(
    st.sampled_from(EVENT_KEYS), json_values | st.dictionaries(st.sampled_from(EVENT_KEYS),
                                                             json_values, max_size=4),
    max_size=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["binary", "json", "event", "events", "deep", "form",
                                 "multipart", "sized"]))
    if kind == "binary":
        return draw(st.binary(max_size=400))
    if kind in ("json", "event", "events"):
        strategy = {"json": json_values, "event": event_like,
                    "events": st.lists(event_like, max_size=4)}[kind]
        return wrapped(json.dumps(draw(strategy)).encode(), draw(st.sampled_from(DEPTHS)))
    if kind == "deep":
        return nested(draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["[", "{"])))
    if kind == "form":
        pairs = draw(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)),
                              max_size=4))
        pairs.append((b"List-Unsubscribe", draw(st.sampled_from([b"One-Click", b"\xff"]))))
        return b"&".join(quote(k).encode() + b"=" + quote(v).encode() for k, v in pairs)
    if kind == "multipart":
        part = draw(st.binary(max_size=100))
        return (b"--fuzz\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                + part + draw(st.sampled_from([b"\r\n--fuzz--\r\n", b"", b"\r\n--fuzz\r\n"])))
    size = draw(st.sampled_from([FORM_MAX_BODY, FORM_MAX_BODY + 1, MAX_BODY + 1]))
    return draw(st.sampled_from([b"a", b"[", b"\xff"])) * size


#: How deep a JSON body is nested: 0 (as drawn), about the app's limit, the parser's, far past.
DEPTHS = [0, 0, 31, 32, 33, 1_024, 1_025, 100_000]


def wrapped(document: bytes, depth: int) -> bytes:
    """``document`` inside ``depth`` arrays or objects."""
    if depth % 2:
        return b'{"a":' * depth + document + b"}" * depth
    return b"[" * depth + document + b"]" * depth


class FuzzRequest:
    """One request; not a dataclass, so that hypothesis reports it by this short repr rather
    than printing a body of megabytes field by field."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return (f"FuzzRequest({self.method} {self.path[:200]!r} headers={self.headers!r} "
                f"body={self.body[:200]!r}… ({len(self.body)} bytes))")


def segment_values(running: Running, name: str) -> st.SearchStrategy[str]:
    """Values for the path parameter ``name``: mostly ones the app knows for it (so that
    requests get past the routing to the code behind), or the numbers at its edges; else
    numbers of any size, or any bytes at all (percent-encoded: NULs and invalid UTF-8)."""
    known = {
        "provider": running.providers,
        "list_id": ["weekly", "daily", "we%00ekly", "%FF"],
        "issue_id": [str(running.issue_id), "9223372036854775807", "9223372036854775808",
                     "9" * 5_000, "0" * 50 + str(running.issue_id), "-1"],
        "token": [running.signer.sign("jane@example.org", "weekly"), "%00"],
    }.get(name, ["0", "%00", "9223372036854775808"])
    some = st.sampled_from(known)
    return st.one_of(
        some, some, some,
        st.integers(min_value=0, max_value=2**70).map(str),
        st.binary(min_size=1, max_size=40).map(lambda b: quote(b, safe="")),
    )


@st.composite
def route_requests(draw: st.DrawFn, running: Running, route: Route) -> FuzzRequest:
    """A request to ``route``: its own methods mostly, its parameters drawn at random."""
    path = route.path_format
    for name in route.param_convertors:
        path = path.replace("{" + name + "}", draw(segment_values(running, name)))
    own = sorted(route.methods or {"GET"})
    method = draw(st.sampled_from(own) | st.sampled_from(METHODS))
    return draw(with_body(method, path))


@st.composite
def random_requests(draw: st.DrawFn) -> FuzzRequest:
    """A request to any path at all."""
    parts = draw(st.lists(st.binary(max_size=20).map(lambda b: quote(b, safe="")), max_size=5))
    return draw(with_body(draw(st.sampled_from(METHODS)), "/" + "/".join(parts)))


def authenticate(path: str, body: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (and for Mailgun a body) that get ``body`` past the provider's checks."""
    provider = path.removeprefix("/webhooks/")
    if provider in BASIC:
        return basic_auth(*BASIC[provider]), body
    if provider == "resend":
        return resend_headers(body), body
    if provider == "mailgun":
        return {}, mailgun_signed(body if _is_json(body) else json.dumps(body.decode("latin-1"))
                                  .encode())
    return {}, body


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


@st.composite
def with_body(draw: st.DrawFn, method: str, path: str) -> FuzzRequest:
    body = draw(bodies())
    headers = {"Content-Type": draw(st.sampled_from(CONTENT_TYPES) | st.text(
        st.characters(min_codepoint=32, max_codepoint=126), max_size=40))}
    if path.startswith("/webhooks/") and draw(st.booleans()):
        auth_headers, body = authenticate(path, body)
        headers |= auth_headers
    elif draw(st.booleans()):
        headers["Authorization"] = draw(st.sampled_from(
            ["Basic", "Basic !!!", "Basic " + "QQ==", "Bearer x", "Basic " + "a" * 1000]
        ))
    return FuzzRequest(method, path, headers, body)


def fuzz_with(running: Running, requests: st.SearchStrategy[FuzzRequest]) -> None:
    """``FUZZ_EXAMPLES`` requests drawn from ``requests``, the same ones every run."""

    @hypothesis_settings(
        max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests)
    def fuzz(request: FuzzRequest) -> None:
        status = running.web.raw_request(
            request.method, request.path, request.headers, request.body
        ).status_code
        assert status < 500, f"{request!r} got {status}"

    fuzz()


def test_no_request_to_any_route_gets_a_server_error(running: Running) -> None:
    routes = [route for route in running.app.routes if isinstance(route, Route)]
    assert {r.path.split("/")[1] for r in routes} >= {"archive", "unsubscribe", "webhooks"}

    for route in routes:  # each its own examples: a new route is fuzzed as much as the others
        fuzz_with(running, route_requests(running, route))


def test_no_request_to_any_other_path_gets_a_server_error(running: Running) -> None:
    fuzz_with(running, random_requests())
