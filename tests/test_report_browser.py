"""The built report in headless Chromium with no network: charts draw, the slider works, nothing remote.

Debian's ``chromium`` (installed by ``scripts/install-sysdeps``, which ``make test`` runs) is driven by
the Python ``playwright`` package; ``playwright install`` is never needed. The network is made
unavailable three ways: a proxy on a closed loopback port, a host resolver that fails every name
but 127.0.0.1, and a route that aborts any request outside the site. Every request is recorded.

The site is opened both from ``file://`` (how a reader opens a copied report) and from a loopback
``http.server`` (how it would be hosted): browsers treat the two origins differently (file:// pages
have an opaque origin), and both must work.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cmdqv_lab.report.site import build

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # no network: a dead proxy for everything but loopback, and no name resolution
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
FIXTURE = Path(__file__).parent / "data" / "fixture_notebook.py"
FIXTURE_CHARTS = 8
LOCAL_SCHEMES = ("data:", "blob:", "about:")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def build_one(root: Path, notebook: Path, name: str) -> Path:
    """A smoke site built from one notebook (copied in as ``name``) under ``root``."""
    (root / "notebooks").mkdir()
    shutil.copy(notebook, root / "notebooks" / name)
    build(root / "notebooks", root / "site", smoke=True, repo=root)
    return root / "site"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_one(tmp_path_factory.mktemp("browser-report"), FIXTURE, "01-fixture.py")


@pytest.fixture(scope="module")
def http_base(site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """A Chromium context that records every request, console error and page error."""

    def __init__(self, context: Any, allowed_prefix: str) -> None:
        self.context = context
        self.allowed_prefix = allowed_prefix
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.blocked: list[str] = []
        context.on("request", lambda r: self.requests.append(r.url))
        context.route("**/*", self._route)

    def _local(self, url: str) -> bool:
        return url.startswith(self.allowed_prefix) or url.startswith(LOCAL_SCHEMES)

    def _route(self, route: Any) -> None:
        if self._local(route.request.url):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def open(self, url: str) -> Any:
        page = self.context.new_page()
        where = url.rsplit("/", 1)[-1]
        page.on(
            "console",
            lambda m: self.errors.append(f"{where}: console: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"{where}: pageerror: {e}"))
        page.goto(url, wait_until="load")
        page.wait_for_function(
            "() => [...document.querySelectorAll('div.cmdqv-chart')].every(e => e.dataset.rendered)",
            timeout=30_000,
        )
        return page

    def assert_clean(self) -> None:
        assert self.errors == []
        assert [u for u in self.requests if not self._local(u)] == []
        assert self.blocked == []


@pytest.fixture(params=["file", "http"])
def browser(request: pytest.FixtureRequest, site: Path, tmp_path: Path) -> Iterator[tuple[Browser, str]]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/install-sysdeps installs it)")
    from playwright.sync_api import sync_playwright

    base = site.as_uri() + "/" if request.param == "file" else request.getfixturevalue("http_base")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user data dir for every test
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield Browser(context, base), base
        finally:
            context.close()


def drawn_marks(chart: Any) -> int:
    """Number of drawn items inside the chart's mark groups (Vega's SVG renderer)."""
    return int(chart.locator("svg.marks g[class*='role-mark'] > *").count())


def test_every_chart_draws_without_network(browser: tuple[Browser, str]) -> None:
    b, base = browser
    page = b.open(base + "01-fixture.html")
    charts = page.locator("div.cmdqv-chart")
    assert charts.count() == FIXTURE_CHARTS
    for i in range(FIXTURE_CHARTS):
        chart = charts.nth(i)
        assert chart.get_attribute("data-rendered") == "1", chart.inner_text()
        assert chart.locator("svg.marks, canvas").count() == 1
        assert drawn_marks(chart) > 0
    b.assert_clean()
    scripts = [r for r in b.requests if r.endswith(".js")]
    assert sorted(scripts) == [base + "assets/report.js", base + "assets/vega.js"]  # once per page


def test_slider_changes_the_drawn_data(browser: tuple[Browser, str]) -> None:
    b, base = browser
    page = b.open(base + "01-fixture.html")
    chart = page.locator("div.cmdqv-chart", has=page.locator("input[type=range]"))
    assert chart.count() == 1
    slider = chart.locator("input[type=range]")
    title = chart.locator("g.role-title-text text")

    def drawing() -> list[str | None]:
        paths = chart.locator("svg.marks g[class*='role-mark'] path")
        return [paths.nth(i).get_attribute("d") for i in range(paths.count())]

    assert title.text_content().endswith("queues = 1")
    before = drawing()
    slider.focus()
    slider.press("End")  # as a reader would: keyboard on the focused slider
    page.wait_for_function(
        "el => el.textContent.endsWith('queues = 4')", arg=title.element_handle(), timeout=10_000
    )
    after = drawing()
    assert before and after and before != after
    assert slider.input_value() == "4"  # the slider moves over the values themselves
    b.assert_clean()


def test_index_links_to_the_answer(browser: tuple[Browser, str]) -> None:
    b, base = browser
    page = b.open(base + "index.html")
    assert page.locator("div.cmdqv-chart").count() == 0
    page.locator("a[href='01-fixture.html#answer-Q9']").click()
    page.wait_for_load_state("load")
    assert page.url == base + "01-fixture.html#answer-Q9"
    assert "ECMDQ reaches" in page.locator("#answer-Q9").inner_text()
    b.assert_clean()


def test_the_network_really_is_unavailable(browser: tuple[Browser, str]) -> None:
    """The guard works: a page that tries to reach the internet is blocked, and the test sees it."""
    b, base = browser
    page = b.open(base + "index.html")
    ok = page.evaluate("() => fetch('https://example.com/x.js').then(() => true, () => false)")
    assert ok is False
    # the page's Content-Security-Policy (connect-src 'none') stops it before the network guard sees it
    assert "https://example.com/x.js" not in b.requests and b.blocked == []
    assert any("Content Security Policy" in e for e in b.errors), b.errors
    fresh = b.context.new_page()  # without the page's CSP, the guard itself blocks and records it
    fresh.goto("about:blank")
    assert fresh.evaluate("() => fetch('https://example.com/y.js').then(() => true, () => false)") is False
    assert b.blocked == ["https://example.com/y.js"]
