"""A local stand-in for the six HTTP delivery providers, for tests, demos and benchmarks.

    with FakeProviderServer() as server:
        settings = Settings(home=..., provider="mailgun", **server.settings_values())
        server.faults.push("mailgun", Fault(FaultKind.RATE_LIMIT, nth=1))
        ...
        server.recorder.count("mailgun", "ada@example.org")

Run it on its own with ``python -m newsletter.devtools.fakeprovider --port 8025`` or
``newsletter dev fake-provider --port 8025``; ``POST /_fake/faults``, ``GET /_fake/record``
and ``POST /_fake/reset`` drive it from another process.
"""

from .core import Copy, Credentials, Fault, FaultKind, Recorder, Rendered
from .server import FakeProviderServer

__all__ = ["Copy", "Credentials", "FakeProviderServer", "Fault", "FaultKind", "Recorder",
           "Rendered"]
