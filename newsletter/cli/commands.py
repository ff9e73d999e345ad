"""Imports each command module so its commands attach to the ``cli`` group."""

from . import lists  # noqa: F401
