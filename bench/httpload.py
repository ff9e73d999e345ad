"""A load client for the benches: N kept-alive connections asking for URLs in turn.

    python bench/httpload.py '{"base": "http://127.0.0.1:8000", "paths": ["/healthz"],
                               "headers": {}, "clients": 20, "seconds": 10, "every": 0}'

It runs in a process of its own (``start``), so that it does not take the core of the server
it measures, and it is lean: asyncio with h11 reading and writing the messages costs about
0.25 ms of CPU a request here, where httpx's pooled client cost 3.5 ms and was slower than
the server. It prints, as JSON, each path's answers (milliseconds and status), its wall time
and the CPU it used itself. With ``"seconds": 0`` it runs until its stdin is closed.
A spec with a ``"form"`` POSTs it instead, each request numbered (``numbered``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import h11

#: Each path's answers: (milliseconds, HTTP status).
Answers = dict[str, list[tuple[float, int]]]


class Connection:
    """One kept-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.http = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, base: str) -> Connection:
        parts = urlsplit(base)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    async def get(self, target: str, headers: list[tuple[str, str]],
                  body: bytes = b"") -> tuple[int, bool]:
        """The answer's status (its body read and dropped), and whether the connection can
        be used again. With a ``body``, the request is a form's POST."""
        fields = [("Host", self.host), *headers]
        if body:
            fields += [("Content-Type", "application/x-www-form-urlencoded"),
                       ("Content-Length", str(len(body)))]
        self.writer.write(self.http.send(h11.Request(
            method="POST" if body else "GET", target=target, headers=fields)))
        if body:
            self.writer.write(self.http.send(h11.Data(data=body)))
        self.writer.write(self.http.send(h11.EndOfMessage()))
        await self.writer.drain()
        status = 0
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(await self.reader.read(1 << 16))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        reusable = self.http.our_state is h11.DONE and self.http.their_state is h11.DONE
        if reusable:
            self.http.start_next_cycle()
        return status, reusable

    def close(self) -> None:
        self.writer.close()


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """``clients`` connections asking for ``paths`` in turn, each after the last answer (and
    ``every`` seconds apart if given), until ``seconds`` pass or stdin is closed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if spec["seconds"]:
        loop.call_later(spec["seconds"], stop.set)
    else:
        loop.add_reader(sys.stdin.fileno(), stop_at_end, stop)
    answers: Answers = {path: [] for path in spec["paths"]}
    headers = list(spec["headers"].items())
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(ask(spec, headers, stop, answers) for _ in range(spec["clients"])))
    return {"seconds": time.perf_counter() - started, "answers": answers,
            "cpu": time.process_time() - cpu}


def stop_at_end(stop: asyncio.Event) -> None:
    """Stop once stdin is closed (what the parent does to end a client without a time)."""
    if not sys.stdin.read(1):
        stop.set()


async def ask(spec: dict[str, Any], headers: list[tuple[str, str]], stop: asyncio.Event,
              answers: Answers) -> None:
    conn: Connection | None = None
    while not stop.is_set():
        for path in spec["paths"]:
            conn = conn or await Connection.open(spec["base"])
            asked, body = numbered(spec, headers)
            started = time.perf_counter()
            status, reusable = await conn.get(path, asked, body)
            answers[path].append(((time.perf_counter() - started) * 1000, status))
            if not reusable:
                conn.close()
                conn = None
        if spec["every"]:
            with contextlib.suppress(TimeoutError):  # time for the next round
                await asyncio.wait_for(stop.wait(), spec["every"])
    if conn is not None:
        conn.close()


#: Numbers the requests of a client process, for specs whose requests differ (``numbered``).
_REQUESTS = itertools.count()


def numbered(spec: dict[str, Any], headers: list[tuple[str, str]]
             ) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body of the next request. A spec with a ``form`` (a urlencoded body)
    POSTs it; ``{n}`` in it and in the headers' values is the request's number, ``{ip}`` an
    IPv4 address made of it (a sign-up per address and per client)."""
    if not spec.get("form"):
        return headers, b""
    n = next(_REQUESTS) + spec.get("first", 0)
    ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    asked = [(name, value.format(n=n, ip=ip)) for name, value in headers]
    return asked, str(spec["form"]).format(n=n, ip=ip).encode()


def start(spec: dict[str, Any]) -> subprocess.Popen[str]:
    """The client, running in a process of its own; ``results`` waits for it."""
    return subprocess.Popen([sys.executable, __file__, json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def results(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """What the client printed, once it ends (closing its stdin stops one without a time)."""
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"the load client failed (exit status {proc.returncode})")
    return dict(json.loads(out))


def figures(answers: list[tuple[float, int]], seconds: float) -> dict[str, Any]:
    """Requests, percentiles in ms, requests a second (over ``seconds``; 0: not given) and
    the statuses answered."""
    times = sorted(ms for ms, _ in answers) or [0.0]
    cuts = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else \
        times * 99
    return {"requests": len(answers), "p50_ms": cuts[49], "p95_ms": cuts[94],
            "p99_ms": cuts[98], "per_second": len(answers) / seconds if seconds else 0.0,
            "statuses": dict(Counter(str(status) for _, status in answers))}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(load(json.loads(sys.argv[1])))))
