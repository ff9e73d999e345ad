"""Imports each command module so its commands attach to the ``cli`` group."""

from . import collect, dev, issue, lists, send, serve, status, suppressions, worker  # noqa: F401
