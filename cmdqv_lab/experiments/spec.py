"""Sweep specs: the TOML format, its validation in one place, and the expansion into points.

A spec file (``data/specs/<name>.toml``) describes one sweep::

    name = "q9-host-cpus-submit"    # optional (default: the file stem); letters, digits, . _ -
    description = "..."             # optional, one line
    scenario = "host-map-unmap"     # see `cmdqv-lab simulate --list`
    count = 100000                  # ops (or commands, for command-counting scenarios) per point
    replicates = 3                  # seeds first_seed .. first_seed+2; or: seeds = [0, 1, 2]
    first_seed = 0                  # optional, with replicates only (default 0)
    record = false                  # optional: keep per-op/per-command records (large; default false)

    [fixed]                         # parameters held constant (scenario or platform fields)
    platform = "d06"

    [grid]                          # every key is a list; keys combine as a cartesian product
    cpus = [1, 2, 4, 8, 16]
    submit = ["linux-lockfree", "atomic-add"]

    [[grid.zip]]                    # optional zip groups: equal-length lists varied together,
    queues = ["main", "vcmdq"]      # one axis of the product (here: (main, 1), (vcmdq, 8))
    vcmdqs = [1, 8]

    [quick]                         # optional variant for `--quick`: runs in seconds
    count = 5000                    # may set count, seeds/replicates/first_seed,
    replicates = 1                  # [quick.fixed] (merged over [fixed]),
    [quick.grid]                    # [quick.grid] (replaces listed product keys; a
    cpus = [1, 16]                  # quick.grid.zip replaces all zip groups)

A *point* is one parameter combination x one seed. Points are numbered in a fixed order: the axes
in file order (product keys, then zip groups), the last axis varying fastest, the seed innermost.
Every grid point uses the same seeds (common random numbers: configurations are compared on the
same random draws). Values must have the parameter's type (integers for integer fields, numbers
for float fields, strings, booleans); ranges and choices are checked by the scenario's own
:func:`~cmdqv_lab.scenarios.base.resolve`, and every distinct combination is built once (no
simulation) so that combinations the scenario refuses fail before the sweep starts.

Every mistake raises :class:`~cmdqv_lab.errors.SpecError` with one line naming the file and key:

>>> parse_spec('scenario = "open-queue"\\ncount = 10\\nseeds = [0]\\n[grid]\\nburst = []', "q.toml")
Traceback (most recent call last):
...
cmdqv_lab.errors.SpecError: q.toml: grid.burst: expected a non-empty list of numbers

>>> text = '''
... scenario = "open-queue"
... count = 1000
... replicates = 2
... [grid]
... rate_mcmd_s = [1.0, 5.0]
... '''
>>> spec = parse_spec(text, "demo.toml")
>>> [p.label() for p in spec.points()]
['rate_mcmd_s=1.0, seed=0', 'rate_mcmd_s=1.0, seed=1', 'rate_mcmd_s=5.0, seed=0', 'rate_mcmd_s=5.0, seed=1']
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmdqv_lab.errors import CmdqvError, InputTooLargeError, ParamError, SpecError
from cmdqv_lab.inputs import MAX_SPEC_BYTES, loads_toml, read_text_capped

#: Keys allowed at the top level of a spec.
SPEC_KEYS = (
    "name",
    "description",
    "scenario",
    "count",
    "seeds",
    "replicates",
    "first_seed",
    "record",
    "fixed",
    "grid",
    "quick",
)
#: Keys allowed in ``[quick]``.
QUICK_KEYS = ("count", "seeds", "replicates", "first_seed", "fixed", "grid")
#: Largest number of points (combinations x seeds) a spec may expand to.
MAX_POINTS = 100_000
#: Largest number of seeds.
MAX_SEEDS = 10_000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_KIND = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    bool: ("true or false", "booleans"),
}


@dataclass(frozen=True)
class Axis:
    """One grid axis: a product key (one key) or a zip group (several keys varied together)."""

    keys: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]  # one tuple of values (one per key) per step


@dataclass(frozen=True)
class Point:
    """One parameter combination (the grid values, in axis order) with one seed."""

    index: int
    values: tuple[tuple[str, Any], ...]
    seed: int

    def label(self) -> str:
        """``"cpus=4, submit=spinlock, seed=1"``."""
        return ", ".join([*(f"{k}={v}" for k, v in self.values), f"seed={self.seed}"])


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec (after applying ``[quick]`` when ``quick`` is true)."""

    source: str  # the file as the user named it (used in messages)
    text: str  # the file verbatim
    name: str
    description: str
    scenario: str
    count: int
    count_unit: str  # "ops" or "commands"
    seeds: tuple[int, ...]
    fixed: tuple[tuple[str, Any], ...]
    axes: tuple[Axis, ...]
    record: bool
    quick: bool
    has_quick: bool

    @property
    def grid_keys(self) -> list[str]:
        """The varied parameters, in axis order."""
        return [k for a in self.axes for k in a.keys]

    @property
    def n_combinations(self) -> int:
        n = 1
        for a in self.axes:
            n *= len(a.rows)
        return n

    def combinations(self) -> Iterator[tuple[tuple[str, Any], ...]]:
        """The grid's parameter combinations in point order (without seeds)."""
        for steps in itertools.product(*(a.rows for a in self.axes)):
            yield tuple((k, v) for a, row in zip(self.axes, steps) for k, v in zip(a.keys, row))

    def points(self) -> list[Point]:
        """Every point, numbered in point order (seed innermost)."""
        out: list[Point] = []
        for combo in self.combinations():
            for seed in self.seeds:
                out.append(Point(len(out), combo, seed))
        return out

    def overrides(self, point: Point) -> dict[str, Any]:
        """The parameter overrides of ``point``: fixed values, then its grid values."""
        return {**dict(self.fixed), **dict(point.values)}

    def resolved(self) -> dict[str, Any]:
        """The spec with every choice explicit (JSON-safe; stored in the manifest)."""
        return {
            "name": self.name,
            "description": self.description,
            "scenario": self.scenario,
            "count": self.count,
            "count_unit": self.count_unit,
            "seeds": list(self.seeds),
            "record": self.record,
            "quick": self.quick,
            "fixed": dict(self.fixed),
            "axes": [{"keys": list(a.keys), "rows": [list(r) for r in a.rows]} for a in self.axes],
            "grid_keys": self.grid_keys,
            "points": self.n_combinations * len(self.seeds),
        }


# ---------------------------------------------------------------------------------------------- parsing
class _Check:
    """Raises SpecError naming the file and the key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, msg: str) -> SpecError:
        return SpecError(f"{self.source}: {path}: {msg}" if path else f"{self.source}: {msg}")

    def table(self, value: Any, path: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "expected a table")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.fail(
                        f"{path}.{k}" if path else k, f"unknown key: allowed {', '.join(allowed)}"
                    )
        return value

    def int_(self, value: Any, path: str, lo: int, hi: int, what: str = "an integer") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(path, f"expected {what} in {lo} .. {hi}, got {value!r}")
        return value


def _is_kind(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _param_types(task: Any) -> dict[str, type]:
    """Every parameter of ``task`` (a scenario's fields and its platform's) with its value type."""
    return {k: type(v) for k, v in task.resolve({}).items()}


def load_spec(path: str | Path, *, quick: bool = False) -> Spec:
    """Read and validate the spec file ``path`` (with its ``[quick]`` variant applied if ``quick``)."""
    source = str(path)
    p = Path(path)
    text = read_text_capped(p, MAX_SPEC_BYTES, SpecError, "spec file")  # /dev/zero, a bomb: refused
    return parse_spec(text, source, quick=quick, default_name=p.stem)


def parse_spec(text: str, source: str = "<spec>", *, quick: bool = False, default_name: str = "") -> Spec:
    """Validate spec ``text``; ``source`` names it in error messages (see the module docstring)."""
    from cmdqv_lab.experiments.tasks import get_task

    ck = _Check(source)
    if len(text) > MAX_SPEC_BYTES:
        raise InputTooLargeError(f"{source}: larger than the {MAX_SPEC_BYTES >> 20} MiB limit for a spec")
    data = loads_toml(text, source, SpecError)
    ck.table(data, "", SPEC_KEYS)

    name = data.get("name", default_name or Path(source).stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ck.fail("name", f"expected letters, digits, '.', '_' or '-' (at most 100), got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str) or "\n" in description:
        raise ck.fail("description", "expected a one-line string")
    if "scenario" not in data:
        raise ck.fail("scenario", "required: the name of a scenario (see `cmdqv-lab simulate --list`)")
    if not isinstance(data["scenario"], str):
        raise ck.fail("scenario", f"expected a string, got {data['scenario']!r}")
    try:
        scn = get_task(data["scenario"])
    except ParamError as e:
        raise ck.fail("scenario", str(e)) from None
    types = _param_types(scn)

    q: dict[str, Any] = {}
    has_quick = "quick" in data
    if has_quick:
        q = ck.table(data["quick"], "quick", QUICK_KEYS)
    if quick and not has_quick:
        raise ck.fail("quick", "this spec has no [quick] table, so it has no quick variant")
    if not quick:
        if has_quick:  # a broken quick variant is reported with the spec, not when first used
            parse_spec(text, source, quick=True, default_name=default_name)
        q = {}

    # count, seeds, record
    cpath = "quick.count" if "count" in q else "count"
    if cpath == "count" and "count" not in data:
        raise ck.fail("count", f"required: the number of {scn.count} per point")
    count = ck.int_(q.get("count", data.get("count")), cpath, 1, 10**12, "a positive integer")
    seeds = _seeds(ck, q, "quick.") if any(k in q for k in ("seeds", "replicates", "first_seed")) else None
    if seeds is None:
        seeds = _seeds(ck, data, "")
    record = data.get("record", False)
    if not isinstance(record, bool):
        raise ck.fail("record", f"expected true or false, got {record!r}")

    # fixed parameters
    fixed: dict[str, Any] = {}
    fixed_where: dict[str, str] = {}
    for prefix, table in (("fixed", data.get("fixed", {})), ("quick.fixed", q.get("fixed", {}))):
        for k, v in ck.table(table, prefix).items():
            _check_param(ck, scn, types, k, f"{prefix}.{k}")
            if not _is_kind(v, types[k]):
                raise ck.fail(f"{prefix}.{k}", f"expected {_KIND[types[k]][0]}, got {v!r}")
            fixed[k] = float(v) if types[k] is float else v
            fixed_where[k] = f"{prefix}.{k}"

    where: dict[str, str] = {}  # grid parameter -> key path, for messages
    axes = _axes(ck, scn, types, data, q, where, len(seeds))
    for k, path in where.items():
        if k in fixed:
            raise ck.fail(path, f"also set in {fixed_where[k]}: give it once")
    where = {**fixed_where, **where}
    n_points = len(seeds)
    for a in axes:
        n_points *= len(a.rows)
    if n_points > MAX_POINTS:
        raise ck.fail("grid", f"{n_points} points exceed the limit of {MAX_POINTS}")

    spec = Spec(
        source=source,
        text=text,
        name=name,
        description=description,
        scenario=scn.name,
        count=count,
        count_unit=scn.count,
        seeds=tuple(seeds),
        fixed=tuple(fixed.items()),
        axes=tuple(axes),
        record=record,
        quick=quick,
        has_quick=has_quick,
    )
    _check_combinations(ck, scn, spec, where)
    return spec


def _seeds(ck: _Check, table: Mapping[str, Any], prefix: str) -> list[int]:
    has_seeds, has_reps = "seeds" in table, "replicates" in table
    if has_seeds == has_reps:
        raise ck.fail(f"{prefix}seeds", "give exactly one of seeds = [...] or replicates = N")
    if has_seeds:
        if "first_seed" in table:
            raise ck.fail(f"{prefix}first_seed", "only allowed with replicates")
        seeds = table["seeds"]
        if not isinstance(seeds, list) or not seeds or len(seeds) > MAX_SEEDS:
            raise ck.fail(f"{prefix}seeds", f"expected a non-empty list of at most {MAX_SEEDS} integers")
        for s in seeds:
            ck.int_(s, f"{prefix}seeds", 0, 2**63 - 1, "non-negative integers")
        if len(set(seeds)) != len(seeds):
            raise ck.fail(f"{prefix}seeds", "a seed appears twice")
        return list(seeds)
    n = ck.int_(table["replicates"], f"{prefix}replicates", 1, MAX_SEEDS, "a positive integer")
    first = ck.int_(table.get("first_seed", 0), f"{prefix}first_seed", 0, 2**62, "a non-negative integer")
    return list(range(first, first + n))


def _check_param(ck: _Check, scn: Any, types: Mapping[str, type], key: str, path: str) -> None:
    """Unknown parameters are reported with the task's own message (from its resolve)."""
    if key in types:
        return
    try:
        scn.resolve({key: None})
    except ParamError as e:
        raise ck.fail(path, str(e)) from None
    raise ck.fail(path, f"unknown parameter {key!r} for scenario {scn.name}")  # pragma: no cover


def _values(ck: _Check, types: Mapping[str, type], key: str, values: Any, path: str) -> list[Any]:
    kind = types[key]
    if not isinstance(values, list) or not values or not all(_is_kind(v, kind) for v in values):
        raise ck.fail(path, f"expected a non-empty list of {_KIND[kind][1]}")
    return [float(v) for v in values] if kind is float else list(values)


def _axes(
    ck: _Check,
    scn: Any,
    types: Mapping[str, type],
    data: Mapping[str, Any],
    q: Mapping[str, Any],
    where: dict[str, str],
    n_seeds: int = 1,
) -> list[Axis]:
    """The grid's axes; sizes, types and duplicates checked in time linear in the spec's length."""
    grid = ck.table(data.get("grid", {}), "grid")
    qgrid = ck.table(q.get("grid", {}), "quick.grid")
    product: dict[str, list[Any]] = {}
    for k, v in grid.items():
        if k == "zip":
            continue
        _check_param(ck, scn, types, k, f"grid.{k}")
        product[k] = _values(ck, types, k, v, f"grid.{k}")
        where[k] = f"grid.{k}"
    for k, v in qgrid.items():
        if k == "zip":
            continue
        if k not in product:
            raise ck.fail(f"quick.grid.{k}", "not a product key of [grid]: quick may only narrow the grid")
        product[k] = _values(ck, types, k, v, f"quick.grid.{k}")
        where[k] = f"quick.grid.{k}"
    _check_size(ck, [len(vs) for vs in product.values()], n_seeds, "grid")
    axes = []
    for k, vs in product.items():
        i = _first_duplicate([(v,) for v in vs])
        if i is not None:
            raise ck.fail(where[k], f"value {vs[i]!r} appears twice")
        axes.append(Axis((k,), tuple((v,) for v in vs)))

    zprefix, zips = ("quick.grid.zip", qgrid["zip"]) if "zip" in qgrid else ("grid.zip", grid.get("zip", []))
    if not isinstance(zips, list):
        raise ck.fail(zprefix, "expected zip groups: [[grid.zip]] tables of equal-length lists")
    for gi, group in enumerate(zips):
        gpath = f"{zprefix}[{gi}]"
        ck.table(group, gpath)
        if not group:
            raise ck.fail(gpath, "an empty zip group")
        cols: dict[str, list[Any]] = {}
        for k, v in group.items():
            path = f"{gpath}.{k}"
            _check_param(ck, scn, types, k, path)
            if k in where and k not in cols:
                raise ck.fail(path, f"{k} is already varied by {where[k]}")
            cols[k] = _values(ck, types, k, v, path)
            where[k] = path
        first = next(iter(cols))
        for k, vs in cols.items():
            if len(vs) != len(cols[first]):
                raise ck.fail(
                    f"{gpath}.{k}",
                    f"has {len(vs)} values but {gpath}.{first} has {len(cols[first])}: zip lists need equal lengths",
                )
        rows = list(zip(*cols.values()))
        _check_size(ck, [len(a.rows) for a in axes] + [len(rows)], n_seeds, gpath)
        i = _first_duplicate(rows)
        if i is not None:
            raise ck.fail(gpath, f"row {i} {dict(zip(cols, rows[i]))} appears twice")
        axes.append(Axis(tuple(cols), tuple(rows)))
    if not axes:
        raise ck.fail("grid", "empty grid: give at least one parameter with a list of values")
    return axes


def _first_duplicate(rows: list[tuple[Any, ...]]) -> int | None:
    """Index of the first row equal (same types and values) to an earlier one, in linear time.

    >>> _first_duplicate([(1,), (1.0,), (True,), (2,)]), _first_duplicate([(1, "a"), (2, "b"), (1, "a")])
    (None, 2)
    """
    seen: set[tuple[Any, ...]] = set()
    for i, r in enumerate(rows):
        key = tuple((type(v).__name__, v) for v in r)
        if key in seen:
            return i
        seen.add(key)
    return None


def _check_size(ck: _Check, lengths: list[int], n_seeds: int, path: str) -> None:
    """Refuse a grid of more than MAX_POINTS points before anything is expanded."""
    n = n_seeds
    for k in lengths:
        n *= k
        if n > MAX_POINTS:
            raise ck.fail(path, f"more than {MAX_POINTS} points (the limit): make the grid smaller")


def _check_combinations(ck: _Check, scn: Any, spec: Spec, where: Mapping[str, str]) -> None:
    """Resolve and build (no simulation) every distinct combination; name the key on failure.

    Entity counts and the engine's memory are checked as :func:`~cmdqv_lab.scenarios.base.simulate`
    checks them, the entities before anything is built (the task's ``prepare``).
    """
    for combo in spec.combinations():
        overrides = {**dict(spec.fixed), **dict(combo)}
        try:
            scn.prepare(overrides, spec.seeds[0], spec.count)
        except CmdqvError as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            key = _blamed_key(msg, overrides)
            if len(combo) > 1:
                msg += " [in combination " + ", ".join(f"{k}={v}" for k, v in combo) + "]"
            err = ck.fail(where.get(key or "", "grid"), msg)
            if e.exit_code != err.exit_code:  # too large for the engine or the machine: keep its class
                raise type(e)(str(err)) from None
            raise err from None


def _blamed_key(msg: str, overrides: Mapping[str, Any]) -> str | None:
    """The parameter a ParamError message starts with (``cpus=0 is out of range ...``), if any."""
    m = re.match(r"^(?:unknown parameter )?'?([A-Za-z_][A-Za-z0-9_]*)'?[= ]", msg)
    if m and m.group(1) in overrides:
        return m.group(1)
    return None
