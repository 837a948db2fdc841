"""Everything the report inserts from a notebook goes through one allowlist (nh3, i.e. ammonia).

Notebook Markdown, ``display(Markdown(...))``, ``text/html`` outputs and answer texts are HTML
the report did not write; a scenario name or a cell output can carry ``<script>``, ``onerror=``,
``<iframe srcdoc>``, ``javascript:`` (also entity-encoded) or a ``<meta http-equiv=refresh>``.
:func:`clean` keeps a fixed set of text and table tags and attributes, and links to ``http``,
``https``, ``mailto`` and relative URLs only; everything else is dropped (scripts and styles with
their content). The report's own charts are not HTML from the notebook: their specs are data in
a JSON script element drawn by the report's own script (:mod:`cmdqv_lab.report.render`).

>>> clean('<p onclick="x()">a<script>alert(1)</script><img src=x onerror=alert(1)></p>')
'<p>a</p>'
>>> clean('<a href="&#106;avascript:alert(1)">x</a> <a href="https://lore.kernel.org/r/1@x">y</a>')
'<a rel="noopener noreferrer">x</a> <a href="https://lore.kernel.org/r/1@x" rel="noopener noreferrer">y</a>'
"""

from __future__ import annotations

import nh3

#: Tags kept (text, lists, code, tables, headings, details).
TAGS: frozenset[str] = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
        "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
        "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary",
        "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
    }
)  # fmt: skip

#: Attributes kept, per tag ("*": on every kept tag).
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"class", "id", "title", "lang"},
    "a": {"href"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
    "details": {"open"},
}

#: URL schemes a kept link may use (relative URLs are allowed too).
URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})


def clean(html_text: str) -> str:
    """``html_text`` with everything outside the allowlist removed."""
    return nh3.clean(
        html_text,
        tags=set(TAGS),
        attributes={k: set(v) for k, v in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        clean_content_tags={
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "template",
            "noscript",
            "svg",
            "math",
        },
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
