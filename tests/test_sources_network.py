"""Which addresses a feed is fetched from: never link-local or cloud metadata, private only
when the source opts in, checked on every redirect before anything connects.

Every test talks to 127.0.0.1 only. A tripwire (a Python audit hook) records each socket
connect and name lookup the process makes while a test runs and stops any connect that is
not to 127.0.0.1 before a packet leaves, so a regression shows up as a recorded attempt
instead of a request to 169.254.169.254.
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from newsletter.config import Settings
from newsletter.errors import SourceError
from newsletter.lists import ConfigFileError, load_config_file
from newsletter.sources import FetchResult, FetchState, SourceSpec, make_source
from newsletter.sources.netguard import AddressPolicy, GuardedAdapter, judge
from tests.servers.feedserver import FeedServer

JSON_FEED = '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "url": "p/1"}]}'
NEVER = "feeds are never fetched from there"
OPT_IN = "fetched only with allow_private_network = true in [sources.news] of publication.toml"


@dataclass
class Tripwire:
    connects: list[Any] = field(default_factory=list)
    lookups: list[Any] = field(default_factory=list)

    @property
    def hosts_connected(self) -> set[str]:
        return {address[0] for address in self.connects if isinstance(address, tuple)}


_ACTIVE: list[Tripwire] = []
_HOOKED: list[bool] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _ACTIVE:
        return
    if event == "socket.getaddrinfo":
        _ACTIVE[-1].lookups.append(args[0])
    elif event == "socket.connect":
        address = args[1]
        _ACTIVE[-1].connects.append(address)
        if not (isinstance(address, tuple) and address[0] == "127.0.0.1"):
            raise ConnectionRefusedError(f"tripwire: the test tried to connect to {address}")


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    if not _HOOKED:  # an audit hook cannot be removed: one for the whole run, idle between tests
        sys.addaudithook(_audit)
        _HOOKED.append(True)
    wire = Tripwire()
    _ACTIVE.append(wire)
    try:
        yield wire
    finally:
        _ACTIVE.remove(wire)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        running.route("/feed.json", JSON_FEED, content_type="application/feed+json")
        yield running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, feed_timeout=5.0, feed_max_bytes=256 * 1024)


def fetch(url: str, settings: Settings, *, allow_private: bool) -> FetchResult:
    spec = SourceSpec(id="news", type="feed", url=url, allow_private_network=allow_private)
    return make_source(spec, settings).fetch(FetchState())


def refusal(url: str, settings: Settings, *, allow_private: bool) -> str:
    with pytest.raises(SourceError) as caught:
        fetch(url, settings, allow_private=allow_private)
    assert caught.value.source == "news"
    return caught.value.reason


# --- the feed's own address -------------------------------------------------------------------


def test_a_feed_on_the_loopback_address_is_refused_without_the_opt_in(
    server: FeedServer, settings: Settings, tripwire: Tripwire
) -> None:
    url = server.url("/feed.json")

    reason = refusal(url, settings, allow_private=False)

    assert reason == f"refused {url}: 127.0.0.1 is a loopback address; {OPT_IN}"
    assert tripwire.connects == [] and server.requests == []


def test_a_host_name_is_checked_by_the_addresses_it_resolves_to(
    server: FeedServer, settings: Settings, tripwire: Tripwire
) -> None:
    url = f"http://localhost:{server.port}/feed.json"

    reason = refusal(url, settings, allow_private=False)

    # The first address refused is named: 127.0.0.1 here, ::1 where the hosts file lists it first.
    named = "::1" if reason.startswith(f"refused {url}: localhost resolves to ::1") else "127.0.0.1"
    assert reason == f"refused {url}: localhost resolves to {named}, a loopback address; {OPT_IN}"
    assert tripwire.connects == [] and server.requests == []


def test_the_opt_in_fetches_a_private_feed_from_the_address_that_was_checked(
    server: FeedServer, settings: Settings, tripwire: Tripwire
) -> None:
    (article,) = fetch(
        f"http://localhost:{server.port}/feed.json", settings, allow_private=True
    ).articles

    assert article.url == f"http://localhost:{server.port}/p/1"
    # The name was looked up once, and the connection went to the address that was checked:
    # a second lookup could answer differently (DNS rebinding).
    assert tripwire.lookups.count("localhost") == 1
    assert tripwire.connects[-1] == ("127.0.0.1", server.port)
    assert tripwire.hosts_connected <= {"127.0.0.1", "::1"}  # ::1 first where it resolves so


# --- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "address", "kind"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
            "a link-local address, where cloud metadata services answer",
        ),
        (
            "https://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
            "a link-local address, where cloud metadata services answer",
        ),
        (
            "http://169.254.170.2/v2/credentials",
            "169.254.170.2",
            "a link-local address, where cloud metadata services answer",
        ),
        (
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "::ffff:169.254.169.254",
            "a link-local address, where cloud metadata services answer",
        ),
        (
            "http://[fe80::1]/",
            "fe80::1",
            "a link-local address, where cloud metadata services answer",
        ),
        (
            "http://100.100.100.200/latest/meta-data/",
            "100.100.100.200",
            "a cloud metadata address",
        ),
        ("http://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254", "a cloud metadata address"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True], ids=["private-refused", "opted-in"])
def test_a_redirect_to_link_local_or_metadata_is_refused_before_connecting(
    server: FeedServer,
    settings: Settings,
    tripwire: Tripwire,
    location: str,
    address: str,
    kind: str,
    allow_private: bool,
) -> None:
    server.route("/moved", status=302, headers={"Location": location})
    # Without the opt-in the feed itself (on 127.0.0.1) would be refused first; through a
    # proxy on 127.0.0.1 the first hop is an outside name and only the redirect is judged.
    proxied = settings.with_changes(http_proxy=server.url(""))
    start = "http://feeds.example.invalid/moved"

    reason = refusal(start, proxied, allow_private=allow_private)

    assert reason == f"refused {location} (redirected from {start}): {address} is {kind}; {NEVER}"
    assert tripwire.hosts_connected == {"127.0.0.1"}  # the proxy, for the first hop only
    assert [r.path for r in server.requests] == ["/moved"]


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[fe80::1]/"],
)
def test_a_direct_redirect_to_metadata_is_refused_even_with_the_opt_in(
    server: FeedServer, settings: Settings, tripwire: Tripwire, location: str
) -> None:
    server.route("/moved", status=301, headers={"Location": location})
    url = server.url("/moved")

    reason = refusal(url, settings, allow_private=True)

    assert reason.startswith(f"refused {location} (redirected from {url}): ")
    assert reason.endswith(NEVER)
    assert tripwire.hosts_connected == {"127.0.0.1"}
    assert [r.path for r in server.requests] == ["/moved"]


@pytest.mark.parametrize("host", ["2852039166", "0xa9.0xfe.0xa9.0xfe", "169.254.43518"])
def test_shorthand_addresses_are_read_as_the_address_they_spell(
    server: FeedServer, settings: Settings, tripwire: Tripwire, host: str
) -> None:
    location = f"http://{host}/latest/meta-data/"
    server.route("/moved", status=302, headers={"Location": location})
    url = server.url("/moved")
    proxied = settings.with_changes(http_proxy=server.url(""))
    start = "http://feeds.example.invalid/moved"

    direct = refusal(url, settings, allow_private=True)
    through_proxy = refusal(start, proxied, allow_private=True)

    spelled = f"{host} resolves to 169.254.169.254, a link-local address"
    assert direct.startswith(f"refused {location} (redirected from {url}): {spelled}")
    assert through_proxy.startswith(f"refused {location} (redirected from {start}): {spelled}")
    assert direct.endswith(NEVER) and through_proxy.endswith(NEVER)
    assert tripwire.hosts_connected == {"127.0.0.1"}


def test_a_redirect_to_the_loopback_address_needs_the_opt_in(
    server: FeedServer, settings: Settings, tripwire: Tripwire
) -> None:
    target = server.url("/feed.json")
    server.route("/moved", status=302, headers={"Location": target})
    proxied = settings.with_changes(http_proxy=server.url(""))
    start = "http://feeds.example.invalid/moved"

    reason = refusal(start, proxied, allow_private=False)
    assert reason == (
        f"refused {target} (redirected from {start}): 127.0.0.1 is a loopback address; {OPT_IN}"
    )
    assert [r.path for r in server.requests] == ["/moved"]

    (article,) = fetch(start, proxied, allow_private=True).articles
    assert article.url == server.url("/p/1")
    assert [r.target for r in server.requests] == [start, start, target]
    assert "feeds.example.invalid" not in tripwire.lookups  # the proxy resolves outside names


# --- TLS over a checked address ---------------------------------------------------------------


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    tmp_path: Path, tripwire: Tripwire
) -> None:
    cert, key = self_signed(tmp_path, "localhost")
    other_cert, other_key = self_signed(tmp_path, "feeds.example.org")
    with (
        tls_server(cert, key) as port,
        tls_server(other_cert, other_key) as other_port,
        requests.Session() as session,
    ):
        session.trust_env = False
        session.mount("https://", GuardedAdapter(AddressPolicy(allow_private=True)))

        answer = session.get(f"https://localhost:{port}/", verify=str(cert), timeout=5)
        # A trusted certificate for another name: the socket went to 127.0.0.1, but the
        # certificate is still held to the name in the URL.
        with pytest.raises(requests.exceptions.SSLError, match="not valid for 'localhost'"):
            session.get(f"https://localhost:{other_port}/", verify=str(other_cert), timeout=5)

    assert answer.text == "hello"
    assert tripwire.hosts_connected == {"127.0.0.1"}


# --- the classification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("93.184.215.14", "public"),
        ("2606:4700::1111", "public"),
        ("::ffff:93.184.215.14", "public"),  # judged by the IPv4 address it reaches
        ("64:ff9b::808:808", "public"),  # NAT64 of 8.8.8.8
        ("127.0.0.1", "opt-in"),
        ("127.5.5.5", "opt-in"),
        ("::1", "opt-in"),
        ("::ffff:127.0.0.1", "opt-in"),
        ("0.0.0.0", "opt-in"),
        ("10.1.2.3", "opt-in"),
        ("172.16.0.1", "opt-in"),
        ("192.168.1.1", "opt-in"),
        ("100.64.0.1", "opt-in"),  # shared address space (CGNAT)
        ("fd12:3456::1", "opt-in"),
        ("169.254.169.254", "never"),
        ("169.254.0.1", "never"),
        ("fe80::1", "never"),
        ("::ffff:169.254.169.254", "never"),
        ("::a9fe:a9fe", "never"),  # IPv4-compatible form
        ("64:ff9b::a9fe:a9fe", "never"),  # NAT64 form
        ("2002:a9fe:a9fe::1", "never"),  # 6to4 form
        ("100.100.100.200", "never"),
        ("fd00:ec2::254", "never"),
        ("192.0.0.192", "never"),
    ],
)
def test_addresses_are_public_opt_in_or_never(address: str, verdict: str) -> None:
    judged = judge(ipaddress.ip_address(address))
    assert ("never" if judged.never else "public" if judged.public else "opt-in") == verdict


# --- publication.toml -------------------------------------------------------------------------

PUBLICATION = """\
[publication]
name = "Test Weekly"
base_url = "https://news.example.org/"
from_email = "editor@example.org"
postal_address = "1 Test Street"

[sources.news]
{source}

[lists.weekly]
title = "Weekly"
members = "weekly.csv"
sources = ["news"]
"""


def load(home: Path, source: str) -> Any:
    (home / "subscribers").mkdir(exist_ok=True)
    (home / "articles").mkdir(exist_ok=True)
    (home / "subscribers" / "weekly.csv").write_text("email\n", encoding="utf-8")
    path = home / "subscribers" / "publication.toml"
    path.write_text(PUBLICATION.format(source=source), encoding="utf-8")
    return load_config_file(path, home)


def test_the_opt_in_is_read_from_the_source_table(tmp_path: Path) -> None:
    feed = 'type = "feed"\nurl = "http://10.0.0.5/feed.xml"\n'
    assert load(tmp_path, feed).sources["news"].allow_private_network is False
    opted = load(tmp_path, feed + "allow_private_network = true\n").sources["news"]
    assert opted.allow_private_network is True


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            'type = "feed"\nurl = "http://10.0.0.5/"\nallow_private_network = "yes"\n',
            ":10: sources.news.allow_private_network: input should be a valid boolean",
        ),
        (
            'type = "folder"\npath = "articles"\nallow_private_network = true\n',
            ":10: sources.news.allow_private_network: only feed sources fetch over the network",
        ),
    ],
)
def test_a_wrong_opt_in_is_named_with_its_line(tmp_path: Path, source: str, problem: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, source)
    [found] = [str(p) for p in caught.value.problems]
    assert problem in found
