"""``python -m newsletter.devtools.fakeprovider --port N``."""

from .command import fake_provider

fake_provider(prog_name="python -m newsletter.devtools.fakeprovider")
