"""Every notebook in notebooks/ runs in smoke mode and the report they make works offline.

One smoke report of the real notebooks is built (module fixture, notebooks executed two at a time);
the checks then read its manifest and open its pages in headless Chromium with the network cut, as
tests/test_report_browser.py does for the fixture notebook.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cmdqv_lab.report.pages import QUESTION_SOURCES
from cmdqv_lab.report.site import build
from tests.test_report_browser import CHROMIUM, FLAGS, Browser, drawn_marks

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.py"))
#: Q1-Q10 (the seed thread) and every later question a notebook is named for (``10-q11-...``).
QUESTIONS = sorted(
    {f"Q{i}" for i in range(1, 11)} | {f"Q{n}" for p in NOTEBOOKS for n in re.findall(r"-q(\d+)", p.name)},
    key=lambda q: int(q[1:]),
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "site"
    # a cell timeout turns a lost kernel reply (seen three times at notebook 04's old
    # ipywidgets.interactive cell) into a failure naming the cell instead of a hung suite
    build(ROOT / "notebooks", out, smoke=True, repo=ROOT, jobs=2, timeout=600)
    return out


@pytest.fixture(scope="module")
def manifest(report: Path) -> dict[str, Any]:
    return json.loads((report / "manifest.json").read_text())


def test_there_are_notebooks_for_every_question() -> None:
    assert len(NOTEBOOKS) >= 10
    assert NOTEBOOKS[0].name.startswith("00-")


def test_every_notebook_ran_and_has_charts(manifest: dict[str, Any], report: Path) -> None:
    ran = {n["source"]: n for n in manifest["notebooks"]}
    assert sorted(ran) == [p.name for p in NOTEBOOKS]
    for name, nb in ran.items():
        assert nb["charts"] > 0, f"{name} drew no chart"
        assert len(nb["figures"]) == 2 * nb["charts"], name  # each chart as SVG and PNG
        assert all((report / f).stat().st_size > 1000 for f in nb["figures"]), name
        assert nb["seconds"] < 120, f"{name} took {nb['seconds']} s in smoke mode"


def test_every_question_has_a_computed_answer(manifest: dict[str, Any]) -> None:
    answers: dict[str, list[str]] = {}
    for nb in manifest["notebooks"]:
        for a in nb["answers"]:
            answers.setdefault(a["qid"], []).append(a["text"])
    assert sorted(answers, key=lambda q: int(q[1:])) == QUESTIONS
    for qid, texts in answers.items():
        for text in texts:
            assert re.search(r"\d", text), f"{qid}: the answer states no number: {text!r}"


def test_each_notebook_answers_the_questions_its_name_says(manifest: dict[str, Any], report: Path) -> None:
    """``01-q1-…`` answers Q1, ``03-q4-q7-…`` Q4 then Q7; tour and calibration answer none."""
    for nb in manifest["notebooks"]:
        named = [f"Q{n}" for n in re.findall(r"-q(\d+)", nb["source"])]
        assert [a["qid"] for a in nb["answers"]] == named, nb["source"]
    index = (report / "index.html").read_text()
    for qid in QUESTIONS:
        row = re.search(rf'<td class="qid">{qid}</td>.*?</tr>', index, re.S)
        assert row and "Not answered yet" not in row.group(0), qid


def test_every_notebook_shows_a_parameter_table_with_provenance(manifest: dict[str, Any]) -> None:
    for nb in manifest["notebooks"]:
        if nb["source"].startswith("00-"):
            continue
        assert nb["tables"], f"{nb['source']} shows no parameter table"


@pytest.fixture(params=["file"])
def browser(request: pytest.FixtureRequest, report: Path, tmp_path: Path) -> Iterator[tuple[Browser, str]]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (scripts/install-sysdeps installs it)")
    from playwright.sync_api import sync_playwright

    base = report.as_uri() + "/"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )  # fmt: skip
        try:
            yield Browser(context, base), base
        finally:
            context.close()


@pytest.mark.browser
def test_every_page_draws_offline(browser: tuple[Browser, str], manifest: dict[str, Any]) -> None:
    b, base = browser
    sliders = 0
    for nb in manifest["notebooks"]:
        page = b.open(base + nb["page"])
        charts = page.locator("div.cmdqv-chart")
        assert charts.count() == nb["charts"]
        for i in range(charts.count()):
            chart = charts.nth(i)
            assert chart.get_attribute("data-rendered") == "1", f"{nb['page']} chart {i}"
            assert chart.locator("svg.marks, canvas").count() == 1
            assert drawn_marks(chart) > 0, f"{nb['page']} chart {i} drew nothing"
        sliders += page.locator("div.cmdqv-chart input[type=range], div.cmdqv-chart select").count()
        page.close()
    assert sliders > 0, "no page keeps an explorer (a Vega-Lite parameter bound to a control)"
    b.assert_clean()


@pytest.mark.browser
def test_a_slider_changes_the_drawn_data(browser: tuple[Browser, str], manifest: dict[str, Any]) -> None:
    b, base = browser
    for nb in manifest["notebooks"]:
        page = b.open(base + nb["page"])
        chart = page.locator("div.cmdqv-chart", has=page.locator("input[type=range]")).first
        if chart.count() == 0:
            page.close()
            continue
        slider = chart.locator("input[type=range]").first

        def drawing(chart: Any = chart) -> list[str | None]:
            marks = chart.locator("svg.marks g[class*='role-mark'] > *")
            return [
                marks.nth(i).get_attribute("d") or marks.nth(i).get_attribute("transform")
                for i in range(marks.count())
            ]

        before = drawing()
        slider.focus()
        slider.press("End" if slider.input_value() != slider.get_attribute("max") else "Home")
        page.wait_for_timeout(500)
        assert drawing() != before, f"{nb['page']}: moving the slider did not change the chart"
        b.assert_clean()
        return
    pytest.fail("no notebook page has a slider")


# --------------------------------------------------------------------------- a review, not a dump
def test_pages_read_as_a_review(manifest: dict[str, Any], report: Path) -> None:
    """No frame dumps, at most one parameter table, primary sources cited on every question page."""
    for nb in manifest["notebooks"]:
        page = (report / nb["page"]).read_text()
        assert "shape: (" not in page and "┌──" not in page, f"{nb['page']}: a raw frame dump"
        assert len(nb["parameter_tables"]) <= 1, (nb["page"], nb["parameter_tables"])
        if nb["answers"]:
            assert '<section class="short-answer">' in page, nb["page"]
            for a in nb["answers"]:  # the seed thread for Q1-Q10, the mail that asked it after
                assert QUESTION_SOURCES[a["qid"]] in nb["cited"], (nb["page"], a["qid"])
            cited = re.search(r'<section class="cited">.*?</section>', page, re.S)
            assert cited and "https://lore.kernel.org/" in cited.group(0), nb["page"]
            assert all(a.get("numbers") for a in nb["answers"]), (
                f"{nb['page']}: an answer without key numbers"
            )


def test_summary_txt_is_a_cover_letter(report: Path) -> None:
    text = (report / "summary.txt").read_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for q in QUESTIONS:
        assert re.search(rf"^{q}\. ", text, re.M), q
    assert "Message-ID <37734fe9-8b67-3cf3-2925-2fee549cb45a@huawei.com>" in text  # C1, by Message-ID
    assert "PREDICTION" in text and "measured" in text


def test_site_is_small_and_links_the_seed_thread(report: Path) -> None:
    size = sum(p.stat().st_size for p in report.rglob("*") if p.is_file())
    assert size < 15 * 2**20, f"site is {size / 2**20:.1f} MiB"
    index = (report / "index.html").read_text()
    from cmdqv_lab.report.sources import seed_thread

    assert f'href="{seed_thread().link.replace("&", "&amp;")}"' in index
    for what in ("What was measured", "What was fitted", "What is predicted"):
        assert what in index


_OVERFLOW_JS = """() => {
  const main = document.querySelector('main'), mr = main.getBoundingClientRect(), bad = [];
  if (document.documentElement.scrollWidth > window.innerWidth + 1) bad.push('page scrolls sideways');
  for (const el of main.querySelectorAll('p, li, td, th, caption, summary, h1, h2, h3, pre, code, div.answer, span')) {
    if (el.closest('figure.chart-figure, .table-wrap, details:not([open])')) continue;
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > mr.right + 1) bad.push(el.tagName + ': ' + el.textContent.slice(0, 60));
    const cs = getComputedStyle(el);
    if (cs.overflowX === 'visible' && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0 && cs.display !== 'inline')
      bad.push('overflowing ' + el.tagName + ': ' + el.textContent.slice(0, 60));
  }
  for (const w of main.querySelectorAll('.table-wrap')) {
    const r = w.getBoundingClientRect();
    if (r.right > mr.right + 1) bad.push('table wider than the page: ' + w.textContent.slice(0, 60));
  }
  return bad;
}"""

_TITLES_JS = """el => [...el.querySelectorAll('g.role-axis-title text, g.role-legend-title text, g.role-title-text text')]
  .map(t => t.textContent)"""


def _control_value(chart: Any) -> str | None:
    """The value a chart's control shows: a slider's value label, the checked radio or the selection."""
    rng = chart.locator("input[type=range]")
    if rng.count():
        label = rng.first.locator("xpath=following-sibling::*[1]")
        return (label.text_content() if label.count() else rng.first.input_value()).strip()
    radio = chart.locator("input[type=radio]:checked")
    if radio.count():
        return radio.first.get_attribute("value")
    sel = chart.locator("select")
    if sel.count():
        return sel.first.input_value()
    return None


@pytest.mark.browser
def test_pages_look_right_in_chromium(
    browser: tuple[Browser, str], manifest: dict[str, Any], report: Path
) -> None:
    """Screenshots of every page; no overflow, no identifier-like titles, controls show what the chart shows."""
    from cmdqv_lab.plots.labels import is_identifier_title

    b, base = browser
    shots = report.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    pages = [nb["page"] for nb in manifest["notebooks"]] + ["index.html", "sources.html", "provenance.html"]
    problems: list[str] = []
    for name in pages:
        page = b.open(base + name)
        page.screenshot(path=str(shots / name.replace(".html", ".png")), full_page=True)
        problems += [f"{name}: {p}" for p in page.evaluate(_OVERFLOW_JS)]
        charts = page.locator("div.cmdqv-chart")
        for i in range(charts.count()):
            chart = charts.nth(i)
            assert drawn_marks(chart) > 0, f"{name} chart {i} drew nothing"
            titles = chart.evaluate(_TITLES_JS)
            # a title's " — control = value" suffix shows a data value (a parameter's name, say): not a title
            problems += [
                f"{name} chart {i}: title {t!r}" for t in titles if is_identifier_title(t.split(" — ")[0])
            ]
            shown = _control_value(chart)
            if shown is not None:
                head = chart.locator("g.role-title-text text").first.text_content() or ""
                if not head.endswith(f"= {shown}"):
                    problems.append(f"{name} chart {i}: control shows {shown!r}, title {head!r}")
        page.close()
    print(f"screenshots in {shots}")
    assert problems == []
    b.assert_clean()
