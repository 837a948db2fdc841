"""A non-editable install works (issue 17, item 8): the wheel carries the data the CLI reads.

The wheel is built offline from a copy of the sources (``pip wheel --no-build-isolation --no-index``)
and installed with ``--no-deps --no-index`` into a fresh venv that sees the project venv's
dependencies through a ``.pth`` path entry (the project venv's own ``.pth`` files, among them the
editable install of this checkout, are not processed through it). Commands then run from a
directory outside any checkout. The venv lives at a fixed place under ``.cache`` so numba's
on-disk cache of the compiled engine, keyed by source path, is reused between runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from cmdqv_lab.platform import read_preset

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".cache" / "wheel-test" / "venv"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a venv with the freshly built wheel installed."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "cmdqv_lab", src / "cmdqv_lab", ignore=shutil.ignore_patterns("__pycache__", "_data")
    )
    for kind in ("params", "calibration", "specs", "traces"):
        shutil.copytree(ROOT / "data" / kind, src / "data" / kind)
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("cmdqv_lab-*.whl")
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(VENV)], check=True)
    purelib = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*pip, "--python", str(VENV / "bin" / "python"), "install", "-q", "--no-deps", "--no-index",
         "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return VENV / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "cmdqv-lab"), *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=900
    )


def test_the_installed_package_finds_its_own_data(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import cmdqv_lab, cmdqv_lab.project as p, cmdqv_lab.platform as pl, cmdqv_lab.workloads.replay as r\n"
        "print(cmdqv_lab.__file__); print(p.source_checkout()); print(pl.PARAMS_DIR); print(r.TRACES_DIR)"
    )
    out = subprocess.run(
        [str(installed / "python"), "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        check=True,
    ).stdout.split("\n")
    site = str(VENV)
    assert out[0].startswith(site) and out[1] == "None", out
    assert out[2].startswith(site) and out[2].endswith("cmdqv_lab/_data/params"), out
    assert out[3].endswith("cmdqv_lab/_data/traces"), out
    r = run(installed, tmp_path, "params")
    assert r.returncode == 0 and [
        line.split()[0] for line in r.stdout.splitlines() if line and not line.startswith("cmdqv-lab")
    ] == [
        "d06",
        "generic",
        "grace",
    ]
    r = run(installed, tmp_path, "params", "d06")
    assert r.returncode == 0 and "fitted to calibration.md C1" in r.stdout, r.stderr
    r = run(installed, tmp_path, "simulate", "-s", "host-map-unmap", "--set", "platform=../calibration/d06")
    assert r.returncode == 2 and "platform='../calibration/d06' is not allowed" in r.stderr
    r = run(installed, tmp_path, "reproduce", "--quick")
    assert r.returncode == 2 and "not inside a cmdqv-lab checkout" in r.stderr


@pytest.mark.slow
def test_simulate_with_a_preset_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    """Same preset, same code, same numbers as in the checkout (the first run compiles the engine)."""
    args = (
        "simulate",
        "-s",
        "host-map-unmap",
        "--set",
        "platform=d06",
        "--set",
        "cpus=4",
        "--ops",
        "3000",
        "--json",
    )
    r = run(installed, tmp_path, *args)
    assert r.returncode == 0, r.stderr
    wheel = json.loads(r.stdout)
    here = subprocess.run(
        [sys.executable, "-m", "cmdqv_lab.cli", *args], capture_output=True, text=True, cwd=ROOT, check=True
    )
    checkout = json.loads(here.stdout)
    # the preset's fitted value, not the generic default: the wheel found its own copy of d06.toml
    fitted = read_preset("d06").values["tlbi_service_ns"]
    assert wheel["params"]["tlbi_service_ns"] == fitted != 250.0 and wheel["params"] == checkout["params"]
    assert wheel["metrics"] == checkout["metrics"]
