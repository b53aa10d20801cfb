"""Sphinx extension: each page loads every script once.

sphinx-thebe (which Jupyter Book 1.x always loads) adds its inline configuration,
``const THEBE_JS_URL = ...``, once per read of the environment, and our build reads it twice:
the page then declares the constant twice and the browser's console reports
``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` on every page
(found by `make check-html`). This drops a script that is already on the page.
"""

from __future__ import annotations


def _key(script) -> str:
    """A file by its name; an inline script by its code."""
    filename = getattr(script, "filename", script)
    if filename:
        return str(filename)
    return (getattr(script, "attributes", {}) or {}).get("body", "")


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: later handlers (MathJax) append to this very list


def setup(app):
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
