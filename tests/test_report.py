"""The report builder: a smoke build of the fixture notebook, failures, and output-directory safety."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.errors import ReportError
from cmdqv_lab.report.site import MARKER, build, remote_references

FIXTURE = Path(__file__).parent / "data" / "fixture_notebook.py"
FIXTURE_CHARTS = 8  # charts the fixture notebook draws (an explorer with a slider, one with radio buttons)

TINY = """# %% [markdown]
# # Tiny

# %% tags=["parameters"]
smoke = False

# %%
import os, sys
from cmdqv_lab.report import answer
print("kernel-python", sys.executable)
print("smoke-env", os.environ.get("CMDQV_SMOKE"))
answer("Q4", "Tiny answer.")
"""

BROKEN = """# %% tags=["parameters"]
smoke = False

# %%
x = 1

# %%
y = x / 0
"""


def write(dirpath: Path, name: str, text: str) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    (dirpath / name).write_text(text)
    return dirpath / name


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    nbdir = root / "notebooks"
    nbdir.mkdir()
    shutil.copy(FIXTURE, nbdir / "01-fixture.py")
    data = root / "data"
    write(data / "results" / "run1", "manifest.json", json.dumps({"spec_hash": "abc123", "rows": 42}))
    write(data / "traces", "sample.json", json.dumps({"source": "qemu", "kernel": "6.1"}))
    write(data / "traces", "broken.json", "{not json")
    build(nbdir, root / "site", smoke=True, repo=root)
    return root / "site"


def test_site_layout(site: Path) -> None:
    names = {p.relative_to(site).as_posix() for p in site.rglob("*")}
    assert {
        "index.html",
        "01-fixture.html",
        "notebooks/01-fixture.ipynb",
        "assets/vega.js",
        "assets/report.js",
        "assets/report.css",
        "manifest.json",
        MARKER,
    } <= names
    assert not [n for n in names if n.endswith(".input.ipynb")]
    assert not list(site.parent.glob(".site.*"))  # no build directories left behind


def test_index_answers_link_to_pages(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert "Smoke build" in index
    row = re.search(r'<td class="qid">Q9</td>.*?</tr>', index, re.S)
    assert row and "ECMDQ reaches" in row.group(0) and 'href="01-fixture.html#answer-Q9"' in row.group(0)
    q1 = re.search(r'<td class="qid">Q1</td>.*?</tr>', index, re.S)
    assert q1 and "Not answered yet" in q1.group(0)
    assert "<script" not in index  # no charts, no runtime


def test_page_charts_have_inline_specs_and_one_runtime(site: Path) -> None:
    page = (site / "01-fixture.html").read_text()
    charts = re.findall(r'<div class="cmdqv-chart" id="([^"]+)" data-spec="([^"]+)">', page)
    assert len(charts) == FIXTURE_CHARTS
    specs = []
    for _cid, spec_id in charts:
        m = re.search(rf'<script type="application/json" id="{spec_id}">(.*?)</script>', page, re.S)
        assert m, spec_id
        assert len(m.group(1)) < 200_000  # data bounded by the builders
        specs.append(json.loads(m.group(1)))
    assert all(s["$schema"].startswith("https://vega.github.io/schema/vega-lite/v6") for s in specs)
    sliders = [p for s in specs for p in s.get("params", []) if p.get("bind", {}).get("input") == "range"]
    assert len(sliders) == 1
    assert re.findall(r"<script src=\"([^\"]+)\"", page) == ["assets/vega.js", "assets/report.js"]
    assert page.rindex("assets/report.js") > page.rindex('type="application/json"')


def test_every_chart_is_exported_as_svg_and_png(site: Path) -> None:
    page = (site / "01-fixture.html").read_text()
    links = re.findall(r'<a href="(figures/[^"]+)" download>', page)
    m = json.loads((site / "manifest.json").read_text())
    assert links == m["notebooks"][0]["figures"]
    assert len(links) == 2 * FIXTURE_CHARTS
    for link in links:
        data = (site / link).read_bytes()
        if link.endswith(".svg"):
            assert data.lstrip().startswith(b"<svg") and b"<script" not in data, link
        else:
            assert data.startswith(b"\x89PNG\r\n\x1a\n"), link
            width = int.from_bytes(data[16:20], "big")
            assert width > 200, (link, width)  # drawn at 2x, not an empty image


def test_page_shows_answers_tables_and_provenance(site: Path) -> None:
    page = (site / "01-fixture.html").read_text()
    assert '<div class="answer" id="answer-Q2">' in page
    assert '<section class="short-answer">' in page  # the short answers, near the top
    assert page.index("short-answer") < page.index('class="cmdqv-chart"')
    assert "<caption>Fixture parameters</caption>" in page and 'class="prov-assumption"' in page
    assert '<details class="params">' in page  # the one parameter table is folded away
    assert "parameters injected by the report build" in page and "smoke" in page
    assert 'href="provenance.html"' in page and "Content-Security-Policy" in page
    prov = (site / "provenance.html").read_text()
    assert sys.version.split()[0] in prov
    assert "data/results/run1/manifest.json" in prov and "spec_hash=abc123" in prov
    assert "data/traces/sample.json" in prov and "not valid JSON" in prov
    assert "data/results/run1" not in page  # manifests once per site, not on every page
    assert "Interactive widget omitted" not in page


def test_executed_notebook_ran_in_smoke_mode(site: Path) -> None:
    nb = nbformat.read(site / "notebooks" / "01-fixture.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "smoke = True" in injected[0].source
    streams = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "smoke=True" in streams
    nbformat.validate(nb)


def test_manifest_json(site: Path) -> None:
    m = json.loads((site / "manifest.json").read_text())
    (nb,) = m["notebooks"]
    assert nb["source"] == "01-fixture.py" and nb["charts"] == FIXTURE_CHARTS
    assert [a["qid"] for a in nb["answers"]] == ["Q9", "Q2"]
    assert nb["tables"] == ["Fixture parameters"]
    env = m["environment"]
    assert env["smoke"] is True and env["packages"]["altair"] and env["vega_runtime"]["vega-lite"]
    assert {d["path"] for d in m["data_manifests"]} == {
        "data/results/run1/manifest.json",
        "data/traces/sample.json",
        "data/traces/broken.json",
    }


def test_pages_reference_nothing_remote(site: Path) -> None:
    for page in site.glob("*.html"):
        assert remote_references(page.read_text()) == [], page.name
    css = (site / "assets" / "report.css").read_text()
    assert "@import" not in css and "url(" not in css
    assert "window.vegaEmbed=" in (site / "assets" / "vega.js").read_text()


# ---------------------------------------------------------------------------------- failures
def test_failure_names_notebook_and_cell_and_keeps_previous_site(tmp_path: Path) -> None:
    nbdir = tmp_path / "notebooks"
    write(nbdir, "01-tiny.py", TINY)
    out = tmp_path / "site"
    build(nbdir, out)
    before = (out / "index.html").read_bytes()
    assert "Tiny answer." in before.decode()

    write(nbdir, "02-broken.py", BROKEN)
    with pytest.raises(ReportError) as err:
        build(nbdir, out, smoke=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        "notebook 02-broken.py failed in cell 3 (`y = x / 0`): ZeroDivisionError: division by zero"
    )
    assert (out / "index.html").read_bytes() == before  # the old site is untouched
    assert not (out / "02-broken.html").exists()
    kept = tmp_path / "site.failed" / "02-broken.ipynb"
    assert kept.is_file() and str(kept) in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebooks", "site", "site.failed"]

    (nbdir / "02-broken.py").unlink()
    said: list[str] = []
    build(nbdir, out, log=said.append)  # a good build replaces the site; the failed copy is kept, and named
    assert kept.is_file()
    assert any(str(kept.parent) in m and "keeping" in m for m in said), said


def test_kernel_is_this_python_and_sees_smoke_env(tmp_path: Path) -> None:
    nbdir = tmp_path / "nb"
    write(nbdir, "01-tiny.py", TINY)
    build(nbdir, tmp_path / "out", smoke=True)
    nb = nbformat.read(tmp_path / "out" / "notebooks" / "01-tiny.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"kernel-python {sys.executable}\n" in text
    assert "smoke-env 1\n" in text


def test_cell_timeout_fails_with_one_line(tmp_path: Path) -> None:
    nbdir = tmp_path / "nb"
    write(
        nbdir, "01-slow.py", '# %% tags=["parameters"]\nsmoke = False\n\n# %%\nimport time\ntime.sleep(60)\n'
    )
    with pytest.raises(ReportError, match=r"^notebook 01-slow.py: a cell ran longer than the 2 s limit"):
        build(nbdir, tmp_path / "out", timeout=2)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("# %%\nsmoke = False\n", "no cell tagged parameters"),
        ('# %% tags=["parameters"]\nseed = 1\n', "must set `smoke = False`"),
        (
            '# %% tags=["parameters"]\nsmoke = False\n\n# %% tags=["parameters"]\nsmoke = True\n',
            "2 cells tagged",
        ),
    ],
)
def test_parameters_cell_is_checked_before_running(tmp_path: Path, text: str, match: str) -> None:
    nbdir = tmp_path / "nb"
    write(nbdir, "01-x.py", text)
    with pytest.raises(ReportError, match=match):
        build(nbdir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    nbdir = tmp_path / "nb"
    write(nbdir, "01-tiny.py", TINY)
    out = tmp_path / "mine"
    write(out, "precious.txt", "keep me")
    with pytest.raises(ReportError, match="not empty and not a previous report"):
        build(nbdir, out)
    assert (out / "precious.txt").read_text() == "keep me"
    with pytest.raises(ReportError, match="would contain the notebooks"):
        build(nbdir, tmp_path)


def test_an_output_path_that_cannot_hold_a_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "nb", "01-tiny.py", TINY)
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(SystemExit) as e:  # --out under a regular file: the build directory cannot be made
        main(
            [
                "report",
                "--smoke",
                "--notebooks",
                str(tmp_path / "nb"),
                "--out",
                str(tmp_path / "file" / "site"),
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"cmdqv-lab: error: --out {tmp_path / 'file' / 'site'}: cannot build"
    )


def test_no_notebooks_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "nb", "scratch.py", "x = 1\n")  # not an NN-topic.py name
    with pytest.raises(ReportError, match="no notebooks in"):
        build(tmp_path / "nb", tmp_path / "out")


def test_cli_prints_one_line_error_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nb").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["report", "--smoke", "--notebooks", str(tmp_path / "nb"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cmdqv-lab: error: no notebooks in")


def test_cli_builds_a_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "nb", "01-tiny.py", TINY)
    main(["report", "--notebooks", str(tmp_path / "nb"), "--out", str(tmp_path / "out"), "--timeout", "120"])
    cap = capsys.readouterr()
    assert "report: [1/1] 01-tiny.py: ok in" in cap.err and "wrote" in cap.out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["environment"]["command"].startswith("cmdqv-lab report --out ")
    assert manifest["environment"]["smoke"] is False


SLEEPY = """# %% tags=["parameters"]
smoke = False

# %%
import time
time.sleep(300)
"""


@pytest.mark.slow
def test_sigterm_stops_the_build_promptly_and_leaves_nothing(tmp_path: Path) -> None:
    """SIGTERM (what a CI timeout or `kill` sends): exit 130 within seconds, the build directory
    removed, the worker processes and their kernels gone, the previous site untouched."""
    import os
    import signal
    import subprocess
    import time

    for i in (1, 2, 3):
        write(tmp_path / "nb", f"0{i}-sleepy.py", SLEEPY)
    cmd = [sys.executable, "-m", "cmdqv_lab.cli", "report", "--notebooks", str(tmp_path / "nb"),
           "--out", str(tmp_path / "out"), "--jobs", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    building = tmp_path / f".out.building-{proc.pid}"
    kernels: list[int] = []
    while time.monotonic() < deadline and not kernels:
        out = subprocess.run(["ps", "-eo", "pid,ppid,cmd"], capture_output=True, text=True).stdout
        workers = [int(ln.split()[0]) for ln in out.splitlines()[1:] if ln.split()[1] == str(proc.pid)]
        kernels = [int(ln.split()[0]) for ln in out.splitlines()[1:]
                   if int(ln.split()[1]) in workers and "ipykernel" in ln]  # fmt: skip
        time.sleep(0.5)
    assert building.is_dir() and kernels, "the build never started its kernels"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 30
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert not building.exists() and not (tmp_path / "out").exists()
    time.sleep(3)
    for pid in [*workers, *kernels]:
        try:
            os.kill(pid, 0)
            alive = subprocess.run(
                ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True
            ).stdout
            assert alive.strip().startswith("Z") or not alive.strip(), f"process {pid} outlived the build"
        except ProcessLookupError:
            pass
