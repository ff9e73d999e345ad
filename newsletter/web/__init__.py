"""The public web app: RFC 8058 one-click unsubscribe, provider webhooks, the issue archive."""

from .app import create_app
from .pages import Site, site_from_config

__all__ = ["Site", "create_app", "site_from_config"]
