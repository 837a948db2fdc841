"""Chart builders, asserted through ``chart.to_dict()``: encodings, slider parameters, data sizes."""

from __future__ import annotations

import re
import sys
from typing import Any

import altair as alt
import numpy as np
import polars as pl
import pytest

from cmdqv_lab import plots
from cmdqv_lab.errors import FrameError
from cmdqv_lab.plots import theme
from cmdqv_lab.plots.display import VEGALITE_MIME, chart_bundle, to_spec


def rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """All inline data rows of a spec (Altair puts them in top-level ``datasets``)."""
    (data,) = spec["datasets"].values()
    return list(data)


def layer_marks(spec: dict[str, Any]) -> list[str]:
    return [lay["mark"]["type"] if isinstance(lay["mark"], dict) else lay["mark"] for lay in spec["layer"]]


@pytest.fixture(autouse=True)
def builders_give_altair_channel_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chart built in these tests fails if one of our builders hands Altair a channel as a
    string or dict: Altair then rebuilds a table of its whole schema to find the class, 3 ms each
    (see :mod:`cmdqv_lab.plots.encoding`). The tests' own charts may."""
    from altair.utils import schemapi

    original = schemapi._FromDict.__init__

    def checked(self: Any, *args: Any) -> None:
        here = sys._getframe(1)
        while here is not None:
            assert "cmdqv_lab/plots/" not in here.f_code.co_filename.replace("\\", "/"), (
                f"a channel given as a string or dict at {here.f_code.co_filename}:{here.f_lineno}"
            )
            here = here.f_back  # type: ignore[assignment]
        original(self, *args)

    monkeypatch.setattr(schemapi._FromDict, "__init__", checked)


@pytest.mark.parametrize(
    "kw",
    [
        {"x": "a:Q", "y": "b:Q"},
        {"x": {"field": "a", "type": "quantitative", "scale": {"type": "log", "nice": False}, "title": "A"}},
        {
            "color": {"field": "c", "type": "nominal", "title": "C"},
            "shape": {"field": "c", "type": "nominal"},
        },
        {"color": {"value": "#000000"}, "strokeDash": {"value": [4, 2]}, "y2": "b:Q", "y": "a:Q"},
        {"tooltip": ["a:Q", {"field": "c", "type": "nominal"}, alt.Tooltip("b:Q")], "text": "c:N"},
        {"xOffset": "c:N", "x": alt.X("a:Q"), "opacity": {"value": 0.5}},
    ],
)
def test_channel_objects_give_the_spec_altair_would_build(kw: dict[str, Any]) -> None:
    from cmdqv_lab.plots.encoding import channels

    df = pl.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": ["p", "q"]})
    ours = alt.Chart(df).mark_point().encode(**channels(**kw)).to_dict()
    assert ours == alt.Chart(df).mark_point().encode(**kw).to_dict()


@pytest.fixture
def replicates() -> pl.DataFrame:
    out = []
    for policy, k in (("shared", 1.0), ("vcmdq", 2.0)):
        for cpus in (1, 2, 4, 8):
            for seed in range(3):
                out.append({"policy": policy, "cpus": cpus, "seed": seed, "ops_per_s": k * cpus + seed})
    out.append({"policy": "ecmdq", "cpus": 1, "seed": 0, "ops_per_s": 5.0})  # a single replicate
    return pl.DataFrame(out)


def test_throughput_mean_line_and_ci_band(replicates: pl.DataFrame) -> None:
    spec = plots.throughput_vs_cpus(replicates).to_dict()
    assert layer_marks(spec) == ["area", "line", "point"]
    band, line, points = spec["layer"]
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == ("lo", "hi")
    assert line["encoding"]["y"]["field"] == points["encoding"]["y"]["field"] == "mean"
    for layer in (band, line, points):
        assert layer["encoding"]["x"] == {
            "field": "cpus",
            "type": "quantitative",
            "title": "CPUs",
            "scale": {"zero": False},
        }
    # one legend with colour and shape together: only the points carry color+shape; the band
    # (fill) and the line (stroke) are coloured by the same field without a legend
    assert band["encoding"]["fill"] == {"field": "policy", "type": "nominal", "legend": None}
    assert line["encoding"]["stroke"] == {"field": "policy", "type": "nominal", "legend": None}
    assert points["encoding"]["color"]["field"] == points["encoding"]["shape"]["field"] == "policy"
    assert "color" not in band["encoding"] and "color" not in line["encoding"]
    data = rows(spec)
    assert len(data) == 2 * 4 + 1  # one row per (policy, cpus), not per seed
    vcmdq4 = next(r for r in data if r["policy"] == "vcmdq" and r["cpus"] == 4)
    assert vcmdq4["mean"] == pytest.approx(9.0) and vcmdq4["n"] == 3  # 8, 9, 10
    assert 0 < vcmdq4["lo"] < 9.0 < vcmdq4["hi"]  # positive values: the band is on a log scale
    single = next(r for r in data if r["policy"] == "ecmdq")
    assert single["lo"] is None and single["hi"] is None  # no band for n = 1
    assert "band: 95% confidence interval on a log scale" in spec["title"]["subtitle"]
    assert spec["title"]["subtitle"].startswith("model prediction")  # the default kind, said


def test_throughput_band_never_crosses_zero_and_says_what_it_is() -> None:
    df = pl.DataFrame({"cpus": [1, 1, 1], "ops_per_s": [1.0, 50.0, 1000.0], "policy": "a"})
    spec = plots.throughput_vs_cpus(df).to_dict()
    (row,) = rows(spec)
    assert row["lo"] > 0  # a t interval on these values would reach far below zero
    counts = pl.DataFrame({"cpus": [1, 1], "ops_per_s": [0.0, 4.0], "policy": "a"})
    sub = plots.throughput_vs_cpus(counts).to_dict()["title"]["subtitle"]
    assert "lowest to highest seed" in sub
    one = plots.throughput_vs_cpus(counts.head(1)).to_dict()
    assert "one run per point: no interval" in one["title"]["subtitle"]
    assert layer_marks(one) == ["line", "point"]  # no band layer at all


def test_throughput_kinds_are_drawn_apart() -> None:
    df = pl.DataFrame(
        {"cpus": [2, 2, 64], "ops_per_s": [4.5e5, 4.4e5, 5e4], "policy": "lock-free",
         "kind": ["measured", "fitted", "predicted"]}
    )  # fmt: skip
    spec = plots.throughput_vs_cpus(df, kind="kind").to_dict()
    line = next(lay for lay in spec["layer"] if lay["mark"]["type"] == "line")
    assert line["encoding"]["strokeDash"]["scale"]["domain"] == ["fitted", "predicted"]
    assert line["encoding"]["strokeDash"]["scale"]["range"] == [[1, 0], [6, 3]]
    measured = spec["layer"][-1]
    assert measured["mark"]["filled"] is False and "kind == 'measured'" in measured["transform"][0]["filter"]
    assert "measured: large hollow markers" in spec["title"]["subtitle"]
    with pytest.raises(FrameError, match="not one of measured"):
        plots.throughput_vs_cpus(df.with_columns(kind=pl.lit("guess")), kind="kind")


def test_throughput_refuses_more_series_than_colours_and_splits_panels() -> None:
    df = pl.DataFrame({"cpus": [1] * 10, "ops_per_s": [1.0] * 10, "policy": [f"p{i}" for i in range(10)]})
    with pytest.raises(FrameError, match="10 series in one panel exceed 8"):
        plots.throughput_vs_cpus(df)
    spec = plots.throughput_vs_cpus(df.with_columns(half=pl.col("policy") < "p5"), panel="half").to_dict()
    assert len(spec["hconcat"]) == 2


def test_throughput_custom_columns_clashing_names_and_log_axis() -> None:
    # x="n" clashes with the summary's replicate count "n": the builder renames it, keeps the title
    df = pl.DataFrame({"n": [1, 1, 16, 16], "iops": [1.0, 2.0, 3.0, 5.0]})
    spec = plots.throughput_vs_cpus(df, x="n", y="iops", color=None, log_x=True).to_dict()
    x = spec["layer"][1]["encoding"]["x"]
    assert x["scale"] == {"type": "log", "nice": False} and x["title"] == "n" and x["field"] == "n_"
    assert not {"color", "stroke", "fill"} & {*spec["layer"][1]["encoding"], *spec["layer"][0]["encoding"]}
    assert spec["layer"][1]["encoding"]["y"]["title"] == "iops"
    assert {(r["n_"], r["n"], r["mean"]) for r in rows(spec)} == {(1, 2, 1.5), (16, 2, 4.0)}


def test_throughput_chart_draws_one_legend_with_colours_and_shapes(replicates: pl.DataFrame) -> None:
    """Rendered: one legend (not a colour and a shape legend), whose symbols are coloured."""
    from cmdqv_lab.plots.display import spec_to_svg

    svg = spec_to_svg(plots.throughput_vs_cpus(replicates).to_dict())
    assert svg.count('class="mark-group role-legend"') == 1
    legend = svg[svg.index('class="mark-group role-legend"') :]
    fills = re.findall(r'role-legend-symbol"[^>]*><path [^>]*fill="(#[0-9a-fA-F]{3,6})"', legend)
    assert len(fills) == 3 and len(set(fills)) == 3, fills  # shared, vcmdq, ecmdq: three colours


def test_latency_percentiles_values_and_order() -> None:
    df = pl.DataFrame({"latency_ns": list(range(1, 101)) * 2, "policy": ["a"] * 100 + ["b"] * 100})
    spec = plots.latency_percentiles(df).to_dict()
    assert layer_marks(spec) == ["line", "point"]
    line = spec["layer"][0]
    assert line["encoding"]["x"]["sort"] == ["p50", "p90", "p99", "p99.9"]
    assert line["encoding"]["y"]["scale"] == {"type": "log"}
    a = {r["percentile"]: r["value"] for r in rows(spec) if r["policy"] == "a"}
    assert a["p50"] == pytest.approx(50.5) and a["p99"] == pytest.approx(99.01)
    assert len(rows(spec)) == 8


def test_latency_percentiles_with_replicates_draws_ci_rules() -> None:
    df = pl.DataFrame(
        {"latency_ns": np.arange(1, 601, dtype=float), "policy": "a", "seed": np.arange(600) % 3}
    )
    spec = plots.latency_percentiles(df, replicate="seed", q=(0.5, 0.99)).to_dict()
    assert layer_marks(spec) == ["rule", "line", "point"]
    assert all(r["n"] == 3 for r in rows(spec))


def test_latency_percentiles_draws_no_rule_without_an_interval() -> None:
    """A group seen in one replicate has no interval: its rows must not reach the rule layer
    (a rule with a null end makes Vega log "Expected length, NaN" and draw nothing)."""
    df = pl.DataFrame(
        {"latency_ns": np.arange(1, 401, dtype=float), "policy": ["a"] * 200 + ["b"] * 200,
         "seed": [0] * 200 + [0, 1] * 100}
    )  # fmt: skip
    spec = plots.latency_percentiles(df, replicate="seed", q=(0.5, 0.99)).to_dict()
    rule = spec["layer"][0]
    assert rule["mark"]["type"] == "rule"
    ruled = spec["datasets"][rule["data"]["name"]]
    assert {r["policy"] for r in ruled} == {"b"} and all(r["lo"] is not None for r in ruled)


def test_latency_percentile_intervals_never_reach_zero() -> None:
    """Two replicates far apart: a t interval would reach below zero; on a log scale it does not,
    so the log axis and the rule both stay."""
    df = pl.DataFrame({"latency_ns": [1.0] * 50 + [1000.0] * 50, "policy": "a", "seed": [0] * 50 + [1] * 50})
    spec = plots.latency_percentiles(df, replicate="seed", q=(0.5,)).to_dict()
    assert spec["layer"][1]["encoding"]["y"]["scale"]["type"] == "log"
    (rule_row,) = spec["datasets"][spec["layer"][0]["data"]["name"]]
    assert rule_row["lo"] > 0


def test_latency_percentiles_zero_values_disable_log_axis() -> None:
    spec = plots.latency_percentiles(pl.DataFrame({"latency_ns": [0, 0, 5], "policy": "a"})).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["scale"] == {}


def test_latency_cdf_is_bounded_and_exact_at_the_ends() -> None:
    n = 1_000_000
    rng = np.random.default_rng(1)
    df = pl.DataFrame(
        {"latency_ns": rng.exponential(1000.0, n), "policy": np.where(np.arange(n) % 2, "x", "y")}
    )
    spec = plots.latency_cdf(df, max_points=200).to_dict()
    data = rows(spec)
    for grp in ("x", "y"):
        pts = [r for r in data if r["policy"] == grp]
        assert len(pts) <= 201
        cdf = [r["cdf"] for r in pts]
        assert cdf == sorted(cdf) and cdf[-1] == 1.0 and cdf[0] == pytest.approx(2 / n)
        vals = df.filter(pl.col("policy") == grp)["latency_ns"]
        assert pts[0]["latency_ns"] == vals.min() and pts[-1]["latency_ns"] == vals.max()
        # the tail is kept: some points beyond p99.9
        assert sum(r["cdf"] > 0.999 for r in pts) >= 10
    assert spec["mark"] == {"type": "line", "interpolate": "step-after", "strokeDash": [6, 3]}
    assert spec["encoding"]["y"]["field"] == "cdf"


def test_latency_cdf_small_frame_keeps_every_point_and_ccdf() -> None:
    df = pl.DataFrame({"latency_ns": [3, 1, 2, 2], "policy": "a"})
    spec = plots.latency_cdf(df, complementary=True).to_dict()
    data = rows(spec)
    assert [(r["latency_ns"], r["cdf"], r["ccdf"]) for r in data] == [
        (1, 0.25, 1.0),
        (2, 0.5, 0.75),
        (2, 0.75, 0.5),
        (3, 1.0, 0.25),
    ]
    assert spec["encoding"]["y"]["field"] == "ccdf" and spec["encoding"]["y"]["scale"] == {"type": "log"}


def test_occupancy_drops_repeats_and_downsamples_to_envelope() -> None:
    df = pl.DataFrame({"t_ns": [0, 10, 20, 30, 40], "occupancy": [1, 1, 3, 3, 2], "queue": "q"})
    spec = plots.occupancy_over_time(df).to_dict()
    assert [(r["t_ns"], r["occupancy"]) for r in rows(spec)] == [(0, 1), (20, 3), (40, 2)]
    assert spec["mark"]["interpolate"] == "step-after"

    n = 100_000
    big = pl.DataFrame({"t_ns": np.arange(n), "occupancy": np.arange(n) % 97, "queue": "q0"})
    spec = plots.occupancy_over_time(big, max_points=500).to_dict()
    data = rows(spec)
    assert len(data) <= 500
    assert max(r["occupancy"] for r in data) == 96  # the envelope keeps the peaks
    assert "downsampled" in spec["title"]["subtitle"]


def test_batch_timeline_bars_per_cpu_in_phase_order() -> None:
    df = pl.DataFrame(
        {
            "cpu": [0, 0, 0, 1],
            "op_id": [1, 1, 1, 2],
            "phase": ["write", "reserve", "custom", "doorbell"],
            "start_ns": [1010, 1000, 1030, 1005],
            "end_ns": [1030, 1010, 1040, 1020],
        }
    )
    spec = plots.batch_timeline(df).to_dict()
    enc = spec["encoding"]
    assert spec["mark"]["type"] == "bar"
    assert (enc["x"]["field"], enc["x2"]["field"], enc["y"]["field"]) == ("start", "end", "cpu")
    assert enc["color"]["scale"]["domain"] == ["reserve", "write", "doorbell", "custom"]
    assert min(r["start"] for r in rows(spec)) == 0  # relative to the first start


def test_batch_timeline_refuses_inverted_intervals_and_big_frames() -> None:
    bad = pl.DataFrame({"cpu": [0], "op_id": [1], "phase": ["write"], "start_ns": [10], "end_ns": [5]})
    with pytest.raises(FrameError, match="end_ns < start_ns"):
        plots.batch_timeline(bad)
    big = pl.DataFrame(
        {"cpu": [0] * 3, "op_id": [1] * 3, "phase": ["w"] * 3, "start_ns": [0] * 3, "end_ns": [1] * 3}
    )
    with pytest.raises(FrameError, match="max_rows=2"):
        plots.batch_timeline(big, max_rows=2)


def test_hazard_counts_sums_and_fills_zeros() -> None:
    df = pl.DataFrame(
        {"policy": ["p1", "p1", "p1", "p2"], "hazard": ["ill", "ill", "sync", "ill"], "count": [2, 3, 1, 0]}
    )
    spec = plots.hazard_counts(df).to_dict()
    got = {(r["policy"], r["hazard"]): r["count"] for r in rows(spec)}
    assert got == {("p1", "ill"): 5, ("p1", "sync"): 1, ("p2", "ill"): 0, ("p2", "sync"): 0}
    assert layer_marks(spec) == ["bar", "text"]
    bars, labels = spec["layer"]
    assert bars["encoding"]["xOffset"]["field"] == "hazard" and bars["encoding"]["color"]["field"] == "hazard"
    assert bars["encoding"]["x"]["field"] == "policy" and labels["encoding"]["text"]["field"] == "count"


@pytest.mark.parametrize(
    ("builder", "kwargs"),
    [
        (plots.throughput_vs_cpus, {}),
        (plots.latency_percentiles, {}),
        (plots.latency_cdf, {}),
        (plots.occupancy_over_time, {}),
        (plots.batch_timeline, {}),
        (plots.hazard_counts, {}),
    ],
)
def test_missing_columns_raise_frame_error(builder: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(FrameError, match=r"missing column"):
        builder(pl.DataFrame({"unrelated": [1]}), **kwargs)


# ---------------------------------------------------------------------------------- explorer
def sweep(queues: tuple[int, ...] = (1, 2, 4, 8)) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"queues": q, "cpus": c, "policy": p, "ops_per_s": float(q * c + i)}
            for q in queues
            for c in (1, 2, 4)
            for i, p in enumerate(("a", "b"))
        ]
    )


def test_explorer_radio_buttons_for_uneven_values() -> None:
    """Uneven values get radio buttons showing the values, never a slider over positions."""
    spec = plots.explorer(sweep(), "cpus", "ops_per_s", "policy", "queues").to_dict()
    (param,) = spec["params"]
    assert param["bind"] == {"input": "radio", "options": [1, 2, 4, 8], "name": "queues"}
    assert param["value"] == 1
    (filt,) = spec["transform"]
    assert filt["filter"] == f"(datum['queues'] === {param['name']})"
    data = rows(spec)
    assert len(data) == 24  # the whole sweep is embedded; the filter picks a slice in the browser
    assert spec["title"]["text"]["expr"].endswith('queues = " + ' + param["name"])
    # fixed domains: moving the slider does not rescale the axes
    assert layer_marks(spec) == ["line", "point"]
    for layer in spec["layer"]:
        assert layer["encoding"]["y"]["scale"]["domain"] == [0, 33.0]


def test_explorer_slider_over_values_for_even_integers() -> None:
    spec = plots.explorer(sweep((2, 4, 6)), "cpus", "ops_per_s", None, "queues", initial=4).to_dict()
    (param,) = spec["params"]
    assert param["bind"] == {
        "input": "range",
        "min": 2,
        "max": 6,
        "step": 2,
        "name": "queues",
    }  # values, not positions
    assert param["value"] == 4
    assert spec["transform"][0]["filter"] == f"(datum['queues'] === {param['name']})"
    assert "__slider" not in rows(spec)[0]


def test_explorer_dropdown_for_strings() -> None:
    spec = plots.explorer(sweep(), "cpus", "ops_per_s", "queues", "policy", control="select").to_dict()
    (param,) = spec["params"]
    assert param["bind"] == {"input": "select", "options": ["a", "b"], "name": "routing policy"}
    assert param["value"] == "a"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_rows": 10}, "exceed max_rows=10"),
        ({"control": "range", "slider_field": "policy"}, "evenly spaced integer"),
        ({"control": "knob"}, "control='knob'"),
        ({"kind": "guess"}, "kind 'guess' is not one of"),
        ({"initial": 3}, "initial=3"),
        ({"mark": "area"}, "mark='area'"),
    ],
)
def test_explorer_refuses_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args = {"x": "cpus", "y": "ops_per_s", "color": None, "slider_field": "queues"} | kwargs
    with pytest.raises(FrameError, match=match):
        plots.explorer(sweep(), **args)


def test_explorer_refuses_too_many_slider_positions() -> None:
    df = pl.DataFrame({"x": range(300), "y": range(300), "s": [i * i for i in range(300)]})
    with pytest.raises(FrameError, match="300 distinct s values"):
        plots.explorer(df, "x", "y", None, "s")


# ---------------------------------------------------------------------------------- theme & display
def test_theme_applied_by_to_spec_whatever_is_enabled() -> None:
    chart = plots.hazard_counts(pl.DataFrame({"policy": ["a"], "hazard": ["h"], "count": [1]}))
    with alt.theme.enable("default"):
        spec = to_spec(chart)
        plain = chart.to_dict()
    assert spec["config"]["range"]["category"] == list(theme.PALETTE)
    assert spec["config"]["background"] == "#ffffff"
    assert "range" not in plain.get("config", {})


def test_theme_survives_a_registration_that_another_enable_block_undid() -> None:
    """Leaving an ``alt.theme.enable`` block restores Altair's registry, dropping a theme registered
    inside it; :func:`to_spec` registers it again rather than remembering it registered."""
    chart = plots.hazard_counts(pl.DataFrame({"policy": ["a"], "hazard": ["h"], "count": [1]}))
    if theme.THEME_NAME in alt.theme.names():
        alt.theme.unregister(theme.THEME_NAME)
    with alt.theme.enable("default"):
        assert to_spec(chart)["config"]["background"] == "#ffffff"
    assert theme.THEME_NAME not in alt.theme.names()  # undone on leaving the block
    assert to_spec(chart)["config"]["range"]["category"] == list(theme.PALETTE)


def test_chart_bundle_is_valid_nbformat_and_renders_svg() -> None:
    import nbformat

    chart = plots.throughput_vs_cpus(pl.DataFrame({"cpus": [1, 2], "ops_per_s": [1.0, 2.0], "policy": "a"}))
    bundle = chart_bundle(chart)
    assert list(bundle) == [VEGALITE_MIME, "image/svg+xml", "text/plain"]
    assert bundle[VEGALITE_MIME]["$schema"].endswith(f"/{alt.SCHEMA_VERSION}.json")
    assert (
        bundle["image/svg+xml"].lstrip().startswith("<svg")
        and "ops/s (all CPUs) vs CPUs" in bundle["image/svg+xml"]
    )
    assert "ops/s (all CPUs) vs CPUs" in bundle["text/plain"]
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("display_data", data=bundle)])
    )
    nbformat.validate(nb)


def test_altair_mimetype_renderer_output_is_rejected_by_nbformat() -> None:
    """The reason show() exists (see cmdqv_lab.plots.display); fails if Altair fixes its mime type."""
    import nbformat
    from altair.vegalite.v6.display import VEGALITE_MIME_TYPE

    chart = alt.Chart(pl.DataFrame({"a": [1]})).mark_point().encode(x="a:Q")
    with alt.renderers.enable("mimetype"):
        data, _meta = chart._repr_mimebundle_()
    assert VEGALITE_MIME_TYPE in data and not VEGALITE_MIME_TYPE.endswith("+json")
    with pytest.raises(nbformat.ValidationError):
        nbformat.v4.new_output("display_data", data=data)


def test_enable_makes_bare_charts_display_our_bundle() -> None:
    chart = alt.Chart(pl.DataFrame({"a": [1]})).mark_point().encode(x="a:Q")
    old = alt.renderers.active
    try:
        plots.enable()
        data = chart._repr_mimebundle_()
        bundle = data[0] if isinstance(data, tuple) else data
        assert VEGALITE_MIME in bundle and "image/svg+xml" in bundle
    finally:
        alt.renderers.enable(old)


def test_save_svg_and_png(tmp_path: Any) -> None:
    chart = plots.latency_cdf(pl.DataFrame({"latency_ns": [1, 2, 3], "policy": "a"}))
    svg = plots.save_svg(chart, tmp_path / "sub" / "c.svg")
    text = svg.read_text()
    assert text.startswith("<svg") and 'fill="#ffffff"' in text.replace("white", "#ffffff")
    png1 = plots.save_png(chart, tmp_path / "c1.png", scale=1)
    png2 = plots.save_png(chart, tmp_path / "c2.png", scale=2)
    head1, head2 = png1.read_bytes()[:24], png2.read_bytes()[:24]
    assert head1[:8] == b"\x89PNG\r\n\x1a\n"
    w1, w2 = int.from_bytes(head1[16:20], "big"), int.from_bytes(head2[16:20], "big")
    assert w2 == 2 * w1
    for scale, png in ((1, png1), (2, png2)):  # from the SVG at hand (the report's figures): the same bytes
        from_svg = plots.save_png(chart, tmp_path / "s.png", scale=scale, svg=text)
        assert from_svg.read_bytes() == png.read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_prediction_ranges_are_drawn_only_where_given_and_named_in_the_subtitle() -> None:
    from cmdqv_lab.plots.charts import throughput_vs_cpus

    df = pl.DataFrame({"cpus": [2, 4, 32, 64], "v": [1.0, 2.0, 3.0, 4.0], "s": "a",
                       "kind": ["measured", "fitted", "predicted", "predicted"],
                       "lo": [None, None, 2.5, 3.0], "hi": [None, None, 3.5, 5.0]})  # fmt: skip
    spec = throughput_vs_cpus(df, y="v", color="s", kind="kind", ranges=("lo", "hi")).to_dict()
    rules = [ly for ly in spec["layer"] if ly["mark"]["type"] == "rule"]
    assert len(rules) == 1
    data = spec["datasets"][rules[0]["data"]["name"]]
    assert [(d["cpus"], d["range_low"], d["range_high"]) for d in data] == [(32, 2.5, 3.5), (64, 3.0, 5.0)]
    assert "not a confidence interval" in spec["title"]["subtitle"]
    plain = throughput_vs_cpus(df, y="v", color="s", kind="kind").to_dict()
    assert not [ly for ly in plain["layer"] if ly["mark"]["type"] == "rule"]
    assert "assumptions" not in plain["title"]["subtitle"]
