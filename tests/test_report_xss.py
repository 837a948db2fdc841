"""A report built from a notebook full of script payloads contains none that can run.

The probe notebook (tests/data/xss_notebook.py) puts payloads into every door a notebook has into
a page: Markdown cells, HTML and Markdown outputs, answers, key numbers, table titles and cells,
printed output, an SVG image and a chart's title and data. The built site is checked statically
(no script element, event handler, frame, javascript:/data: link or refresh beyond the report's
own) and opened in headless Chromium: no dialog opens, nothing sets ``window.pwned``, no console
error (a CSP violation is one), and every page carries the Content-Security-Policy.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cmdqv_lab.report.pages import CSP
from tests.test_report_browser import CHROMIUM, build_one

PROBE = Path(__file__).parent / "data" / "xss_notebook.py"
OWN_SCRIPTS = {"assets/vega.js", "assets/report.js"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_one(tmp_path_factory.mktemp("xss"), PROBE, "01-xss.py")


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src") not in OWN_SCRIPTS and a.get("type") != "application/json":
            self.bad.append(f"script {a}")
        if tag in ("iframe", "object", "embed", "form", "base", "frame", "svg", "math", "style"):
            self.bad.append(tag)
        if tag == "meta" and "refresh" in (a.get("http-equiv") or "").lower():
            self.bad.append("meta refresh")
        for k, v in attrs:
            if k.startswith("on"):
                self.bad.append(f"{tag} {k}")
            risky = (
                k in ("href", "src", "action", "data")
                and v
                and re.match(r"\s*(javascript|data:text|vbscript)", v, re.I)
            )
            ours = (tag == "img" and (v or "").startswith("data:image/")) or (tag == "link" and v == "data:,")
            if risky and not ours:
                self.bad.append(f"{tag} {k}={(v or '')[:40]}")


@pytest.mark.parametrize("name", ["01-xss.html", "index.html", "sources.html", "provenance.html"])
def test_no_payload_survives_in_the_html(site: Path, name: str) -> None:
    text = (site / name).read_text()
    scan = _Scan()
    scan.feed(text)
    assert scan.bad == []
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in text
    for marker in ("P-script", "P-img", "md-img"):  # the payloads are text at most, never markup
        for m in re.finditer(marker, text):
            before = text[max(0, m.start() - 200) : m.start()]
            assert "<script>" not in before.rsplit(">", 1)[-1]


def test_the_payloads_reached_the_page_as_text(site: Path) -> None:
    """The probe is not vacuous: its payloads are on the page, escaped."""
    text = (site / "01-xss.html").read_text()
    assert "&lt;script&gt;window.pwned=&#x27;P-script&#x27;" in text  # printed output, escaped
    assert "Answer text" in text and "Parameters" in text and "Results" in text


def test_summary_txt_is_plain(site: Path) -> None:
    text = (site / "summary.txt").read_text()
    assert "Answer text" in text and max(len(x) for x in text.splitlines()) <= 80


@pytest.mark.browser
def test_nothing_runs_in_chromium(site: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/install-sysdeps installs it)")
    from playwright.sync_api import sync_playwright

    from tests.test_report_browser import FLAGS

    dialogs: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            for name in ("01-xss.html", "index.html", "sources.html", "provenance.html"):
                page = context.new_page()
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.on(
                    "console",
                    lambda m, n=name: errors.append(f"{n}: {m.text}") if m.type == "error" else None,
                )
                page.on("pageerror", lambda e, n=name: errors.append(f"{n}: {e}"))
                page.goto(site.as_uri() + "/" + name, wait_until="load")
                page.wait_for_timeout(1500)
                assert page.evaluate("() => window.pwned") is None
                assert page.url.endswith(name)  # no refresh navigated away
                csp = page.locator('meta[http-equiv="Content-Security-Policy"]')
                assert csp.count() == 1 and "script-src 'self'" in (csp.get_attribute("content") or "")
                for link in page.locator("a[href]").all():
                    href = link.get_attribute("href") or ""
                    assert not re.match(r"\s*(javascript|data|vbscript):", href, re.I), href
                if name == "01-xss.html":
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('div.cmdqv-chart')].every(e => e.dataset.rendered)",
                        timeout=30_000,
                    )
                    assert page.locator("div.cmdqv-chart[data-rendered='1']").count() == 1
                page.close()
        finally:
            context.close()
    assert dialogs == []
    assert errors == []
