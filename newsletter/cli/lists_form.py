"""``newsletter lists form LIST``: the HTML a publisher pastes into their own site to let
readers sign up to LIST.

A page of someone else's site cannot carry a fresh signed ``started`` stamp (the form's
guard against robots), so two ways are printed: a frame showing this app's own form
(``/subscribe/LIST?embed=1``, which only the publication's ``base_url`` may frame), and a
plain form posting to ``/subscribe/LIST``, whose submission is answered by this app's form
filled in, to be sent once more.
"""

from __future__ import annotations

import html

import click

from ..delivery.prepare import public_base
from ..errors import ConfigError
from ..lists import load_config
from .context import AppContext, pass_app
from .lists import lists

SNIPPET = """\
<!-- Sign-up form of the list {list_id} (double opt-in: every reader confirms by email) -->

<!-- Either: our own form in a frame. Recommended: a reader signs up in one go. -->
<iframe src="{base}/subscribe/{list_id}?embed=1" title="Subscribe to {title}"
        style="border:0; width:100%; max-width:30rem; height:21rem" loading="lazy"></iframe>

<!-- Or: a plain form styled by your site. A reader who sends it sees our form, filled in,
     and presses Subscribe once more (a pasted form cannot prove it was filled by a person). -->
<form method="post" action="{base}/subscribe/{list_id}">
  <label for="nl-email">Email address</label>
  <input id="nl-email" type="email" name="email" required autocomplete="email">
  <label for="nl-name">Name (optional)</label>
  <input id="nl-name" type="text" name="name" autocomplete="name">
  <button type="submit">Subscribe</button>
</form>
"""


@lists.command("form")
@click.argument("list_id", metavar="LIST")
@pass_app
def form(app: AppContext, list_id: str) -> None:
    """Print an HTML sign-up form for LIST to paste into the publication's site."""
    config = load_config(app.settings)
    mailing_list = config.list(list_id)
    if not mailing_list.accepts_signups:
        raise ConfigError(
            f"list {list_id!r} takes no sign-ups: give it a sign-up file with the key "
            f"signups (for example signups = \"{list_id}-signups.csv\") under [lists.{list_id}] "
            f"in {config.path}"
        )
    base = public_base(app.settings.public_url, config.publication)
    click.echo(SNIPPET.format(base=html.escape(base), list_id=html.escape(list_id),
                              title=html.escape(mailing_list.title)), nl=False)
