"""Sweep specs: expansion order, seeds, the quick variant, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmdqv_lab.cli import main
from cmdqv_lab.errors import SpecError
from cmdqv_lab.experiments.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
HEAD = 'scenario = "host-map-unmap"\ncount = 100\nreplicates = 2\n'


def test_product_and_zip_expand_in_documented_order() -> None:
    text = HEAD + '[grid]\ncpus = [1, 2]\n[[grid.zip]]\nqueues = ["main", "vcmdq"]\nvcmdqs = [2, 8]\n'
    spec = parse_spec(text, "s.toml")
    pts = spec.points()
    assert len(pts) == 2 * 2 * 2
    assert [p.index for p in pts] == list(range(8))
    # last axis fastest, seed innermost; zip keys move together
    assert [
        (dict(p.values)["cpus"], dict(p.values)["queues"], dict(p.values)["vcmdqs"], p.seed) for p in pts
    ] == [
        (1, "main", 2, 0),
        (1, "main", 2, 1),
        (1, "vcmdq", 8, 0),
        (1, "vcmdq", 8, 1),
        (2, "main", 2, 0),
        (2, "main", 2, 1),
        (2, "vcmdq", 8, 0),
        (2, "vcmdq", 8, 1),
    ]
    assert spec.grid_keys == ["cpus", "queues", "vcmdqs"]


def test_seeds_from_replicates_and_explicit_list() -> None:
    grid = "[grid]\ncpus = [1]\n"
    s = parse_spec(
        'scenario = "host-map-unmap"\ncount = 5\nreplicates = 3\nfirst_seed = 10\n' + grid, "a.toml"
    )
    assert s.seeds == (10, 11, 12)
    s = parse_spec('scenario = "host-map-unmap"\ncount = 5\nseeds = [7, 3]\n' + grid, "a.toml")
    assert s.seeds == (7, 3)


def test_float_parameters_accept_integers_as_the_same_value() -> None:
    s = parse_spec(
        'scenario = "open-queue"\ncount = 5\nseeds = [0]\n[grid]\nrate_mcmd_s = [1, 2.5]\n', "a.toml"
    )
    assert [dict(p.values)["rate_mcmd_s"] for p in s.points()] == [1.0, 2.5]
    assert all(type(dict(p.values)["rate_mcmd_s"]) is float for p in s.points())


def test_quick_variant_narrows_and_shrinks() -> None:
    text = HEAD + (
        '[fixed]\nsubmit = "spinlock"\n[grid]\ncpus = [1, 2, 4]\ntlbis = [1, 2]\n'
        '[quick]\ncount = 7\nseeds = [5]\n[quick.fixed]\nsubmit = "atomic-add"\n[quick.grid]\ncpus = [4]\n'
    )
    full, quick = parse_spec(text, "q.toml"), parse_spec(text, "q.toml", quick=True)
    assert len(full.points()) == 3 * 2 * 2 and full.count == 100
    assert quick.quick and quick.count == 7 and quick.seeds == (5,)
    assert [p.label() for p in quick.points()] == ["cpus=4, tlbis=1, seed=5", "cpus=4, tlbis=2, seed=5"]
    assert dict(quick.fixed)["submit"] == "atomic-add"


def test_published_specs_are_valid_with_quick_variants() -> None:
    specs = sorted((ROOT / "data" / "specs").glob("*.toml"))
    assert len(specs) >= 2
    for path in specs:
        full, quick = load_spec(path), load_spec(path, quick=True)
        assert full.name == path.stem
        assert quick.count <= full.count
        # cheaper: fewer points, or as many with fewer ops each
        assert 0 < len(quick.points()) * quick.count < len(full.points()) * full.count, path.name


BAD = [
    # (spec text, expected message after the file name)
    (HEAD + "[grid]\ncpuz = [1, 2]\n", "grid.cpuz: unknown parameter 'cpuz' for scenario host-map-unmap"),
    (HEAD + "[fixed]\nbogus = 1\n[grid]\ncpus = [1]\n", "fixed.bogus: unknown parameter 'bogus'"),
    (HEAD + "[grid]\n", "grid: empty grid"),
    (HEAD, "grid: empty grid"),
    (HEAD + "[grid]\ncpus = []\n", "grid.cpus: expected a non-empty list of integers"),
    (HEAD + '[grid]\ncpus = [1, "2"]\n', "grid.cpus: expected a non-empty list of integers"),
    (HEAD + "[grid]\ncpus = 4\n", "grid.cpus: expected a non-empty list of integers"),
    (HEAD + "[grid]\nsubmit = [1]\n", "grid.submit: expected a non-empty list of strings"),
    (HEAD + '[fixed]\ncpus = "2"\n[grid]\ntlbis = [1]\n', "fixed.cpus: expected an integer, got '2'"),
    (HEAD + "[grid]\nthink_ns = [true]\n", "grid.think_ns: expected a non-empty list of numbers"),
    (
        HEAD + '[grid]\n[[grid.zip]]\nqueues = ["main", "vcmdq"]\nvcmdqs = [2]\n',
        "grid.zip[0].vcmdqs: has 1 values but grid.zip[0].queues has 2",
    ),
    ('scenario = "nope"\ncount = 1\nseeds = [0]\n[grid]\ncpus = [1]\n', "scenario: unknown scenario 'nope'"),
    (HEAD + "[grid]\ncpus = [0, 2]\n", "grid.cpus: cpus=0 is out of range"),
    (HEAD + "[grid]\ncpus = [2, 2]\n", "grid.cpus: value 2 appears twice"),
    (HEAD + "[fixed]\ncpus = 2\n[grid]\ncpus = [2, 4]\n", "grid.cpus: also set in fixed.cpus"),
    (
        HEAD + '[grid]\ncpus = [2]\nsubmit = ["exclusive"]\n',
        "grid.submit: submit=exclusive needs one queue per CPU",
    ),
    ('scenario = "host-map-unmap"\nreplicates = 1\n[grid]\ncpus = [1]\n', "count: required"),
    (
        'scenario = "host-map-unmap"\ncount = 0\nseeds = [0]\n[grid]\ncpus = [1]\n',
        "count: expected a positive",
    ),
    ('scenario = "host-map-unmap"\ncount = 1\n[grid]\ncpus = [1]\n', "seeds: give exactly one of"),
    (
        'scenario = "host-map-unmap"\ncount = 1\nseeds = [1]\nreplicates = 2\n[grid]\ncpus = [1]\n',
        "seeds: give exactly one of",
    ),
    (
        'scenario = "host-map-unmap"\ncount = 1\nseeds = [-1]\n[grid]\ncpus = [1]\n',
        "seeds: expected non-negative",
    ),
    (HEAD + "colour = 1\n[grid]\ncpus = [1]\n", "colour: unknown key"),
    (HEAD + "[grid]\ncpus = [1]\n[quick]\nbogus = 1\n", "quick.bogus: unknown key"),
    (HEAD + "[grid]\ncpus = [1]\n[quick.grid]\ntlbis = [1]\n", "quick.grid.tlbis: not a product key"),
    (HEAD + "[grid\n", "invalid TOML"),
]


@pytest.mark.parametrize(
    ("text", "expected"), BAD, ids=[b[1].split(":")[0] + f"-{i}" for i, b in enumerate(BAD)]
)
def test_bad_specs_raise_one_line_naming_file_and_key(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as ei:
        parse_spec(text, "data/specs/q9.toml")
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"data/specs/q9.toml: {expected}"), msg


def test_quick_without_quick_table_is_an_error() -> None:
    with pytest.raises(SpecError, match=r"^s\.toml: quick: this spec has no \[quick\] table"):
        parse_spec(HEAD + "[grid]\ncpus = [1]\n", "s.toml", quick=True)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (HEAD + "[grid]\ncpuz = [1, 2]\n", "grid.cpuz"),
        (HEAD + "[grid]\n", "grid"),
        (HEAD + '[grid]\ncpus = [1, "x"]\n', "grid.cpus"),
        (HEAD + '[grid]\n[[grid.zip]]\nqueues = ["main", "vcmdq"]\nvcmdqs = [2]\n', "grid.zip[0].vcmdqs"),
        ('scenario = "nope"\ncount = 1\nseeds = [0]\n[grid]\ncpus = [1]\n', "scenario"),
    ],
)
def test_cli_exits_2_with_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    spec = tmp_path / "q9.toml"
    spec.write_text(text)
    with pytest.raises(SystemExit) as ei:
        main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"cmdqv-lab: error: {spec}: {key}: "), err
    assert not (tmp_path / "out").exists()


def test_cli_missing_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["sweep", str(tmp_path / "absent.toml")])
    assert ei.value.code == 2
    assert (
        capsys.readouterr().err.strip() == f"cmdqv-lab: error: {tmp_path / 'absent.toml'}: no such spec file"
    )
