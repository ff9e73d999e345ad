"""Imports each command module so its commands attach to the ``cli`` group."""

from . import collect, issue, lists, send  # noqa: F401
