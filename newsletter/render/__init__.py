"""Turning an issue into email, rendered once and merged per recipient.

``environment``  the Jinja2 environment over the publication's ``templates/`` and its filters
``issue``        ``Renderer``: ``IssueContent`` in, ``RenderedIssue`` (HTML, text, web) out
``inline``       CSS inlining (premailer) with the parsed stylesheet cached
``text``         plain text from article HTML
``merge``        markers in the rendered issue, values per recipient
``message``      the MIME message for SMTP and raw-MIME providers
``screenshot``   PNG previews with headless Chromium

Nothing is re-exported here: ``delivery`` imports ``merge`` alone and should not pay for
Jinja2, premailer and lxml.
"""
