"""Widget explorers without a browser: build them, set widget values, run, inspect the state.

No kernel and no event loop run here, so a change runs at once unless a test injects a scheduler
(the kernel path, with its asyncio debounce and real comm messages, is in test_widgets_kernel.py).
Counts are small: each simulation takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import ipywidgets as w
import pytest

from cmdqv_lab import widgets as W
from cmdqv_lab.errors import FrameError, ParamError
from cmdqv_lab.plots.display import VEGALITE_MIME, to_spec
from cmdqv_lab.scenarios.host import SUBMITS
from cmdqv_lab.widgets import runs as R
from cmdqv_lab.widgets.controls import Control, make_widget, param_spec, parse_values, sweep_values

EXCLUSIVE_MSG = "submit=exclusive needs one queue per CPU"


def host(**kw: Any) -> W.Explorer:
    return W.explore_host(**{"count": 400, "cpus": 4, **kw})


class FakeScheduler:
    """Stands in for the kernel's asyncio loop: keeps scheduled calls until flushed."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> Any:
        cancelled = [False]
        self.pending.append((delay, fn, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def live(self) -> list[Callable[[], None]]:
        return [fn for _, fn, c in self.pending if not c[0]]

    def flush(self) -> None:
        calls, self.pending = self.live(), []
        for fn in calls:
            fn()


# ------------------------------------------------------------------------------ controls
@pytest.mark.parametrize(
    ("scenario", "control", "kind"),
    [
        ("host-map-unmap", Control("cpus", lo=1, hi=64), w.SelectionSlider),
        ("host-map-unmap", Control("cpus", lo=1, hi=16), w.IntSlider),
        ("host-map-unmap", Control("submit"), w.Dropdown),
        ("host-map-unmap", Control("platform"), w.Dropdown),
        ("host-map-unmap", Control("tlbi_service_ns", lo=10, hi=10_000), w.FloatLogSlider),
        ("host-map-unmap", Control("line_xfer_ns"), w.FloatSlider),
        ("host-map-unmap", Control("line_xfer_ns", lo=1, hi=1000, log=False), w.FloatSlider),
        ("host-map-unmap", Control("hw_sync_insert"), w.Checkbox),
        ("host-map-unmap", Control("tlbis", values=(1, 4, 16)), w.SelectionSlider),
        ("open-queue", Control("rate_mcmd_s"), w.FloatLogSlider),
        ("open-queue", Control("log2size"), w.IntSlider),
        ("open-queue", Control("service_dist"), w.Dropdown),
    ],
)
def test_widget_kind_follows_metadata(scenario: str, control: Control, kind: type) -> None:
    widget = make_widget(param_spec(scenario, control.name), control)
    assert type(widget) is kind
    if hasattr(widget, "continuous_update"):
        assert widget.continuous_update is False


def test_widget_ranges_defaults_and_labels() -> None:
    log = make_widget(
        param_spec("host-map-unmap", "tlbi_service_ns"), Control("tlbi_service_ns", lo=10, hi=1e4)
    )
    assert (log.min, log.max, log.value) == (1.0, 4.0, 250.0)
    lin = make_widget(
        param_spec("host-map-unmap", "line_xfer_ns"), Control("line_xfer_ns", label="CAS one way")
    )
    assert (lin.min, lin.max, lin.step, lin.value, lin.description) == (0.0, 1000.0, 1.0, 35.0, "CAS one way")
    cpus = make_widget(param_spec("host-map-unmap", "cpus"), Control("cpus", lo=1, hi=100, value=12))
    assert cpus.value == 12 and [v for _, v in cpus.options] == [1, 2, 4, 8, 12, 16, 32, 64, 100]
    sub = make_widget(param_spec("host-map-unmap", "submit"), Control("submit"))
    assert tuple(sub.options) == SUBMITS and sub.value == "linux-lockfree"
    assert "submission algorithm" in sub.tooltip and sub.tooltip.endswith("; choice)")  # doc and provenance


@pytest.mark.parametrize(
    ("scenario", "control", "message"),
    [
        (
            "open-queue",
            Control("tlbi_service_ns"),
            "unknown parameter 'tlbi_service_ns' for scenario open-queue",
        ),
        ("host-map-unmap", Control("cpus", lo=0, hi=8), "cpus=0 is out of range: allowed 1 .. 4000 CPUs"),
        ("host-map-unmap", Control("cpus", lo=8, hi=2), "control cpus: lo=8 is above hi=2"),
        ("host-map-unmap", Control("line_xfer_ns", hi=100, log=True), "a log slider needs lo > 0"),
        (
            "host-map-unmap",
            Control("submit", value="fast"),
            "submit='fast' is not allowed: one of linux-lockfree",
        ),
    ],
)
def test_bad_controls_raise_param_error(scenario: str, control: Control, message: str) -> None:
    with pytest.raises(ParamError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        make_widget(param_spec(scenario, control.name), control)
    assert "\n" not in str(info.value)


def test_sweep_values_and_value_lists() -> None:
    assert sweep_values(param_spec("host-map-unmap", "submit"), Control("submit")) == list(SUBMITS)
    assert sweep_values(param_spec("host-map-unmap", "vcmdqs"), Control("vcmdqs", lo=1, hi=128)) == [
        1, 2, 4, 8, 16, 32, 64, 128,
    ]  # fmt: skip
    assert sweep_values(param_spec("host-map-unmap", "hw_sync_insert"), Control("hw_sync_insert")) == [
        False,
        True,
    ]
    assert parse_values(param_spec("host-map-unmap", "cpus"), "4, 1 4 2") == [4, 1, 2]
    with pytest.raises(ParamError, match="no values to compare"):
        parse_values(param_spec("host-map-unmap", "cpus"), " , ")
    with pytest.raises(ParamError, match=r"tlbi_service_ns=-1 is out of range"):
        parse_values(param_spec("host-map-unmap", "tlbi_service_ns"), "10, -1")


def test_every_explorer_slider_waits_for_release() -> None:
    for ex in (
        host(),
        W.explore_open_queue(count=500),
        W.explore_host(count=400, compare="submit", x="cpus"),
    ):
        ws = [b.widget for b in ex.controls.values()] + [v.widget for v in (ex.x, ex.compare) if v]
        ws.append(ex.seeds)
        for widget in ws:
            if hasattr(widget, "continuous_update"):
                assert widget.continuous_update is False, widget.description


# ------------------------------------------------------------------------------ runs
def test_explorer_opens_with_a_result_chart_and_summary() -> None:
    ex = host()
    assert ex.runs_done == 1 and ex.error is None
    r = ex.result
    assert r is not None and r.params["cpus"] == 4 and r.metrics["ops"] == 400
    spec = ex.chart.to_dict()
    assert spec["mark"]["type"] == "line" and spec["encoding"]["x"]["field"] == "latency_ns"
    rows = next(iter(spec["datasets"].values()))
    assert 2 <= len(rows) <= 301 and rows[-1]["cdf"] == 1.0
    (out,) = ex.output.outputs
    assert out["output_type"] == "display_data" and VEGALITE_MIME in out["data"]
    assert ">ops_per_s</th>" in ex.summary.value and "1 simulation of 400 ops" in ex.status.value
    assert ex.progress.layout.visibility == "hidden"
    assert (
        ex._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
    )


def test_changing_a_widget_reruns_once_with_the_new_value() -> None:
    ex = host()
    ex.controls["cpus"].widget.value = 8
    assert ex.runs_done == 2 and ex.result is not None and ex.result.params["cpus"] == 8
    ex.controls["tlbi_service_ns"].widget.value = 1000.0
    assert ex.runs_done == 3 and ex.result.params["tlbi_service_ns"] == 1000.0
    ex.seeds.value = 3
    assert ex.runs_done == 4 and [r.seed for r in ex.last.results] == [0, 1, 2]
    ex.count.value = 1000
    assert ex.runs_done == 5 and ex.result.metrics["ops"] == 1000


def test_set_changes_several_values_with_one_run() -> None:
    ex = host()
    ex.set(cpus=16, submit="spinlock", queues="vcmdq", vcmdqs=4, seeds=2)
    assert ex.runs_done == 2
    p = ex.result.params
    assert (p["cpus"], p["submit"], p["queues"], p["vcmdqs"]) == (16, "spinlock", "vcmdq", 4)
    assert ex.controls["vcmdqs"].widget.value == 4
    with pytest.raises(ParamError, match="no control 'cpu' in this explorer"):
        ex.set(cpu=2)


def test_dragging_without_release_does_not_run() -> None:
    # With continuous_update=False the browser sends nothing while the handle moves; the kernel
    # sees one value on release. Here: nothing sent -> no run; a release -> one run.
    ex = host()
    widget = ex.controls["cpus"].widget
    assert widget.continuous_update is False
    assert ex.runs_done == 1
    widget.value = 32
    assert ex.runs_done == 2


def test_debounce_coalesces_changes_into_one_run() -> None:
    sched = FakeScheduler()
    ex = host(scheduler=sched, debounce_s=0.25)
    assert ex.runs_done == 1  # the opening run is immediate
    ex.controls["cpus"].widget.value = 8
    ex.controls["cpus"].widget.value = 32
    ex.controls["submit"].widget.value = "spinlock"
    assert ex.runs_done == 1 and len(sched.live()) == 1 and sched.pending[-1][0] == 0.25
    sched.flush()
    assert ex.runs_done == 2
    assert (ex.result.params["cpus"], ex.result.params["submit"]) == (32, "spinlock")
    ex.run_button.click()  # the button runs at once, not debounced
    assert ex.runs_done == 3 and not sched.live()


def test_run_on_change_off_marks_stale_until_run() -> None:
    ex = host(run_on_change=False)
    ex.controls["cpus"].widget.value = 2
    assert ex.runs_done == 1 and ex.result.params["cpus"] == 4
    assert "press Run" in ex.status.value and ex.run_button.button_style == "warning"
    ex.run_button.click()
    assert ex.runs_done == 2 and ex.result.params["cpus"] == 2 and ex.run_button.button_style == ""
    ex.controls["cpus"].widget.value = 8
    ex.auto.value = True  # switching run-on-change back on runs the stale settings
    assert ex.runs_done == 3 and ex.result.params["cpus"] == 8


def test_bad_combination_is_one_line_and_keeps_previous_chart() -> None:
    ex = host()
    before, chart = ex.last, ex.chart
    ex.controls["submit"].widget.value = "exclusive"  # four CPUs on the one main queue
    assert ex.error is not None and ex.error.startswith(EXCLUSIVE_MSG) and "\n" not in ex.error
    assert "Traceback" not in ex.status.value and EXCLUSIVE_MSG in ex.status.value
    assert "previous run" in ex.status.value
    assert ex.last is before and ex.chart is chart and ex.runs_done == 1
    ex.controls["queues"].widget.value = "ecmdq"
    assert ex.error is None and ex.runs_done == 2 and ex.result.params["submit"] == "exclusive"


def test_unexpected_exception_shows_traceback_in_output() -> None:
    calls = []

    def broken(runs: R.RunSet) -> alt.Chart:
        calls.append(runs)
        if len(calls) > 1:
            raise RuntimeError("chart bug")
        return R.default_chart(runs)

    ex = host(chart=broken)
    ex.controls["cpus"].widget.value = 8  # from a widget: shown, not raised
    assert ex.error == "internal error: RuntimeError: chart bug"
    (out,) = ex.output.outputs
    assert out["output_type"] == "error" and any("chart bug" in line for line in out["traceback"])
    with pytest.raises(RuntimeError, match="chart bug"):
        ex.run()  # called from code: raised as usual


# ------------------------------------------------------------------------------ progress
def test_progress_bar_advances_per_simulation_and_hides_after() -> None:
    ex = host(seeds=3, progress_after_s=0.0, run=False)
    seen: list[tuple[int, str]] = []
    ex.progress.observe(lambda c: seen.append((c["new"], ex.progress.layout.visibility)), names="value")
    ex.run()
    assert ex.progress_shown
    assert [v for v, _ in seen if v > 0] == [1, 2, 3] and all(vis == "visible" for _, vis in seen)
    assert ex.progress.max == 3 and ex.progress.value == 3 and ex.progress.description == "3/3"
    assert ex.progress.layout.visibility == "hidden"


def test_progress_bar_only_for_runs_expected_to_be_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = host(run=False)
    monkeypatch.setattr(R, "engine_ready", lambda: True)
    monkeypatch.setitem(R._RATES, "host-map-unmap", 1e-9)  # fast: no bar
    ex.run()
    assert not ex.progress_shown
    shown: list[str] = []
    ex.progress.layout.observe(lambda c: shown.append(c["new"]), names="visibility")
    monkeypatch.setitem(R._RATES, "host-map-unmap", 1.0)  # 1 s per op: 400 s expected
    monkeypatch.setattr(R, "learn_rate", lambda *a: None)
    ex.run()
    assert ex.progress_shown and shown == ["visible", "hidden"]
    assert R.estimate_s("host-map-unmap", 400, 1) == pytest.approx(400.0)


def test_progress_shows_when_the_first_runs_reveal_a_slow_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = host(seeds=3, run=False, progress_after_s=0.5)
    monkeypatch.setattr(R, "engine_ready", lambda: True)
    monkeypatch.setitem(R._RATES, "host-map-unmap", 1e-12)  # the estimate says fast ...
    monkeypatch.setattr(R, "learn_rate", lambda *a: None)

    class Clock:  # ... but each simulation takes one "second"
        t = 0.0

        def perf_counter(self) -> float:
            self.t += 1.0
            return self.t

    monkeypatch.setattr(R, "time", Clock())
    seen: list[str] = []
    ex.progress.layout.observe(lambda c: seen.append(c["new"]), names="visibility")
    ex.run()
    assert ex.progress_shown and seen == ["visible", "hidden"]  # shown after the first simulation


# ------------------------------------------------------------------------------ comparison
def test_compare_policies_along_cpus() -> None:
    ex = W.explore_host(
        compare=("submit", ["linux-lockfree", "spinlock"]), x=("cpus", [1, 2, 4]), seeds=2, count=300
    )
    assert ex.error is None and ex.warning is None
    assert len(ex.last.results) == 12 and ex.last.x == "cpus" and ex.last.series == "submit"
    spec = ex.chart.to_dict()
    line = spec["layer"][1]
    assert line["encoding"]["x"]["field"] == "cpus" and line["encoding"]["stroke"]["field"] == "submit"
    assert spec["layer"][2]["encoding"]["color"]["field"] == "submit"  # the points carry the legend
    assert line["encoding"]["y"]["title"] == "ops/s (all CPUs)"  # words, not the column name
    assert line["encoding"]["x"]["scale"] == {"zero": False}  # 1..4: linear
    rows = next(iter(spec["datasets"].values()))
    assert sorted((r["submit"], r["cpus"], r["n"]) for r in rows)[0] == ("linux-lockfree", 1, 2)
    assert len(rows) == 6
    summary = R.summary_frame(ex.last)
    assert summary.height == 6 and summary["seeds"].to_list() == [2] * 6
    assert summary["ops_per_s_ci"].null_count() == 0
    assert ex.summary_box.selected_index is None  # six rows: collapsed under the chart
    assert ex.metric.layout.display == "" and "op_latency_ns_p99" in ex.metric.options
    runs = ex.runs_done
    ex.metric.value = "op_latency_ns_p99"  # re-chart only
    assert ex.runs_done == runs and ex.error is None
    assert ex.chart.to_dict()["layer"][1]["encoding"]["y"]["title"] == "p99 op latency (ns)"


def test_unknown_metric_is_one_line_until_a_valid_one_is_chosen() -> None:
    ex = W.explore_host(x=("cpus", [1, 2]), metric="ops_per_sec", count=300)
    assert ex.error is not None and ex.error.startswith("throughput_vs_cpus: missing column 'ops_per_sec'")
    assert ex.chart is None and ex.last is not None and "ops_per_sec" in ex.metric.options
    ex.metric.value = "ops_per_s"
    assert ex.error is None and ex.runs_done == 1 and "2 simulations" in ex.status.value
    assert ex.chart.to_dict()["layer"][1]["encoding"]["y"]["title"] == "ops/s (all CPUs)"


def test_compare_values_are_edited_in_widgets() -> None:
    ex = W.explore_host(compare="submit", x=("cpus", [1, 2]), count=300)
    assert isinstance(ex.compare.widget, w.SelectMultiple) and isinstance(ex.x.widget, w.Text)
    assert ex.x.widget.continuous_update is False and "cpus" not in ex.controls
    ex.compare.widget.value = ("spinlock", "atomic-add")
    assert {p["submit"] for p in ex.last.points} == {"spinlock", "atomic-add"}
    ex.x.widget.value = "2, 8"
    assert sorted({p["cpus"] for p in ex.last.points}) == [2, 8]
    ex.x.widget.value = "2, eight"
    assert ex.error == "cpus='eight' is not an integer: allowed 1 .. 4000 CPUs"
    ex.compare.widget.value = ()
    assert ex.error == "compare: select at least one value of submit"


def test_compare_skips_failing_configurations_with_a_warning() -> None:
    ex = W.explore_host(compare="submit", x=("cpus", [1, 4]), count=300)
    assert ex.error is None and ex.warning is not None
    assert ex.warning.startswith("1 configuration(s) failed, e.g. submit=exclusive, cpus=4: " + EXCLUSIVE_MSG)
    assert {tuple(p.values()) for p in ex.last.points} == {(s, c) for s in SUBMITS for c in (1, 4)} - {
        ("exclusive", 4)
    }
    assert len(ex.last.failures) == 1
    ex.compare.widget.value = ("exclusive",)
    ex.x.widget.value = "4, 8"  # every configuration fails: an error line, not a warning
    assert (
        ex.error
        == "submit=exclusive, cpus=4: " + EXCLUSIVE_MSG + ": use queues=ecmdq or vcmdqs>=4 (got queues=main)"
    )


def test_compare_series_only_draws_one_cdf_per_value() -> None:
    ex = W.explore_open_queue(compare="service_dist", count=2000)
    spec = ex.chart.to_dict()
    assert spec["encoding"]["color"]["field"] == "service_dist"
    assert {r["service_dist"] for r in next(iter(spec["datasets"].values()))} == {
        "deterministic",
        "exponential",
    }
    assert ex.metric.layout.display == "none"
    assert ex.notes_html.value.count("theory") == 2 and "M/M/1" in ex.notes_html.value


def test_comparison_limits_and_axis_rules() -> None:
    ex = W.explore_host(x=("cpus", [1, 2, 4, 8]), compare="submit", seeds=20, max_sims=50, count=300)
    n_submit = len(W.param_spec("host-map-unmap", "submit").info.choices or ())
    assert ex.error is not None and ex.error.startswith(
        f"{80 * n_submit} simulations ({4 * n_submit} configurations x 20 seeds) exceed"
    )
    assert ex.last is None
    with pytest.raises(ParamError, match="the x axis needs a numeric parameter"):
        W.explore_host(x="submit")
    with pytest.raises(ParamError, match="cpus cannot be both x and compare"):
        W.explore_host(x="cpus", compare="cpus")
    with pytest.raises(ParamError, match="queues is both fixed and controlled"):
        W.explore_host(fixed={"queues": "ecmdq"})


# ------------------------------------------------------------------------------ generic and presets
def test_explore_any_scenario_controls_its_own_parameters() -> None:
    ex = W.Explorer("open-queue", count=500)  # what explore() gives a scenario without a preset
    assert list(ex.controls) == ["rate_mcmd_s", "service_ns", "service_dist", "burst", "log2size"]
    assert list(W.explore("open-queue", count=500).controls) == [
        "rate_mcmd_s",
        "service_ns",
        "service_dist",
        "burst",
    ]
    ex = W.explore(
        "host-map-unmap", ["cpus", "tlbis"], fixed={"queues": "ecmdq", "submit": "exclusive"}, count=300
    )
    assert list(ex.controls) == ["cpus", "tlbis"] and ex.error is None
    assert ex.result.params["queues"] == "ecmdq" and ex.result.metrics["commands"] == 300 * 2
    ex.controls["tlbis"].widget.value = 3
    assert ex.result.metrics["commands"] == 300 * 4
    with pytest.raises(ParamError, match="unknown scenario 'guest-nothing'"):
        W.explore("guest-nothing")
    with pytest.raises(ParamError, match="unknown argument 'cpu' for host-map-unmap"):
        W.explore_host(cpu=4)


def test_scenarios_sized_by_their_input_open_without_a_count() -> None:
    # trace-replay's default count is 0 (the whole trace): the explorer caps it instead of failing
    ex = W.explore("trace-replay", ["submit"], fixed={"trace": "linux6.1-smp1-lazy"})
    assert ex.error is None and ex.result.metrics["ops"] > 0
    assert W.explore("host-dma-map", ["threads"]).result.metrics["ops"] == 10_000


def test_open_queue_explorer_shows_queueing_theory() -> None:
    ex = W.explore_open_queue(rate_mcmd_s=8, service_ns=100, count=20_000)
    assert "M/D/1, ρ = 0.80) mean queue wait 200 ns" in ex.notes_html.value
    sim = ex.result.metrics["queue_wait_ns"]["mean"]
    assert f"simulated {R.fmt(sim)} ns" in ex.notes_html.value
    ex.controls["rate_mcmd_s"].widget.value = 20.0
    assert "unstable" in ex.notes_html.value


def test_custom_chart_gets_the_runset_and_records() -> None:
    got: list[R.RunSet] = []

    def per_cpu(runs: R.RunSet) -> alt.Chart:
        got.append(runs)
        ops = runs.ops().group_by("cpu").len()
        return alt.Chart(ops).mark_bar().encode(x="cpu:O", y="len:Q")

    ex = host(chart=per_cpu)
    assert got[-1].results[0] is ex.result and ex.record
    rows = next(iter(ex.chart.to_dict()["datasets"].values()))
    assert sorted(r["cpu"] for r in rows) == [0, 1, 2, 3] and sum(r["len"] for r in rows) == 400


def test_redraws_skip_the_schema_check_only_for_our_own_charts() -> None:
    """A redraw exports our chart builders' spec without Altair's check (the tests and the report
    check them); the spec shown is still valid Vega-Lite and themed. A caller's chart function
    is checked, so its mistake is an error naming the property at the explorer, not a blank chart."""
    from altair.utils.schemapi import SchemaValidationError
    from altair.vegalite.v6.schema.core import TopLevelSpec

    ex = host()
    assert not ex._check_chart
    spec = ex.output.outputs[0]["data"][VEGALITE_MIME]
    TopLevelSpec.validate(spec)
    assert spec == to_spec(ex.chart) and spec["config"]["background"] == "#ffffff"

    def bad(runs: R.RunSet) -> alt.Chart:
        return alt.Chart(runs.ops()).mark_bar().encode(x=alt.X("cpu:O", axis={"labelAngel": 45}))

    with pytest.raises(SchemaValidationError, match="labelAngel"):
        host(chart=bad)  # from code: raised (from a widget: shown where the chart was)


def test_runset_without_records_refuses_per_op_charts() -> None:
    ex = W.explore_host(x=("cpus", [1, 2]), count=300)
    assert not ex.record
    with pytest.raises(FrameError, match="needs per-op records"):
        ex.last.ops()
    assert ex.last.metrics().select("cpus", "ops").rows() == [(1, 300), (2, 300)]
    ex.x.widget.value = "1, 32"  # a wide range: log axis
    assert ex.chart.to_dict()["layer"][1]["encoding"]["x"]["scale"]["type"] == "log"


def test_platform_choice_loads_preset_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cmdqv_lab.platform as plat

    (tmp_path / "d06.toml").write_text('[preset]\nname = "d06"\n[values]\ntlbi_service_ns = 300.0\n')
    (tmp_path / "fast.toml").write_text('[preset]\nname = "fast"\n[values]\ntlbi_service_ns = 100.0\n')
    monkeypatch.setattr(plat, "PARAMS_DIR", tmp_path)
    ex = host()
    assert ex.controls["platform"].widget.options == ("d06", "fast")
    tlbi = ex.controls["tlbi_service_ns"]
    assert tlbi.value == 300.0 and "tlbi_service_ns" not in ex.overrides()
    ex.controls["platform"].widget.value = "fast"
    assert tlbi.value == 100.0 and ex.runs_done == 2  # one run, with the new preset's values
    assert ex.result.params["tlbi_service_ns"] == 100.0
    tlbi.widget.value = 1000.0  # an edit is an override on top of the preset
    assert ex.overrides()["tlbi_service_ns"] == 1000.0 and ex.result.params["tlbi_service_ns"] == 1000.0
    cmp = W.explore_host(
        compare="platform", count=300
    )  # untouched platform controls: each preset's own value
    assert sorted(
        (p["platform"], r.params["tlbi_service_ns"]) for r, p in zip(cmp.last.results, cmp.last.points)
    ) == [
        ("d06", 300.0),
        ("fast", 100.0),
    ]


def test_changes_during_a_run_lead_to_one_more_run() -> None:
    def nudge(runs: R.RunSet) -> alt.Chart:
        if ex.runs_done == 1:  # while the first run is still busy, a value changes
            ex.controls["cpus"].widget.value = 2
        return R.default_chart(runs)

    ex = host(run=False, chart=nudge)
    ex.run()
    assert ex.runs_done == 2 and ex.result.params["cpus"] == 2


def test_sweeping_a_platform_cost_uses_its_control_range() -> None:
    ex = W.explore_host(x="tlbi_service_ns", count=300)
    assert "tlbi_service_ns" not in ex.controls and ex.x.widget.value == "10, 56, 320, 1800, 10000"
    got = [r.params["tlbi_service_ns"] for r in ex.last.results]
    assert got == [10.0, 56.0, 320.0, 1800.0, 10000.0]
    ops = ex.last.metrics()["ops_per_s"].to_list()
    assert ops[0] > ops[-1]  # a 10 us TLBI bounds throughput far below a 10 ns one


# ------------------------------------------------------------------------ op count, interval, "more ops"
def _rel_half(status: str) -> float:
    """The ``±X%`` of a status line as a fraction."""
    import re

    m = re.search(r"±([0-9.]+)% \(95% CI, ([^)]*)\)", status)
    assert m, status
    return float(m.group(1)) / 100


def test_status_shows_op_count_and_batch_means_interval_of_one_run() -> None:
    ex = W.explore_host(cpus=2, count=1000)
    assert "1 simulation of 1,000 ops" in ex.status.value
    assert (
        "op_latency_ns_mean ±" in ex.status.value and "batch means, 10 batches of 100 ops" in ex.status.value
    )
    # the interval is the batch-means one computed from the run's own op records
    expected = R.batch_half(ex.last.results[0].ops, "op_latency_ns_mean")
    assert expected is not None and expected > 0
    assert abs(_rel_half(ex.status.value) / expected - 1) < 0.05  # the status gives two digits


def test_more_ops_button_reruns_with_the_next_count_and_narrows_the_interval() -> None:
    ex = W.explore_host(cpus=4, count=1000)
    before = _rel_half(ex.status.value)
    assert ex.more.description == "more ops" and ex.more in ex.widget.children[2].children
    ex.more.click()
    assert ex.count.value == 2000 and ex.runs_done == 2
    assert ex.result.metrics["ops"] == 2000 and "of 2,000 ops" in ex.status.value
    ex.set(count=20_000)
    assert _rel_half(ex.status.value) < before  # ten times the ops: a narrower interval
    ex.count.value = ex.count.options[-1][1]
    ex.more_ops()  # the largest count: nothing larger, no run
    assert ex.runs_done == 4


def test_sweep_interval_is_over_seeds_and_says_how_to_get_one() -> None:
    cpus = Control("cpus", values=(1, 4))
    one = W.explore("host-map-unmap", ["tlbis"], x=cpus, count=300)
    assert "ops_per_s: no interval from one seed, set seeds ≥ 2" in one.status.value
    two = W.explore("host-map-unmap", ["tlbis"], x=cpus, count=300, seeds=2)
    assert "ops_per_s ±" in two.status.value and "over 2 seeds" in two.status.value
    s = R.summary_frame(two.last, ["ops_per_s"])
    widest = ((s["ops_per_s_ci"]) / s["ops_per_s"]).max()
    assert abs(_rel_half(two.status.value) / widest - 1) < 0.05


def test_unchanged_simulations_come_from_the_cache_with_the_same_results() -> None:
    ex = W.explore_host(cpus=2, count=500)
    first = ex.result.metrics
    ex.set(seeds=3)  # seed 0 is unchanged: only seeds 1 and 2 run
    assert ex.cache.hits == 1 and len(ex.last.results) == 3
    ex.set(cpus=3)
    ex.set(cpus=2, seeds=1)  # back to the first configuration: nothing runs
    assert ex.cache.hits == 2 and ex.result.metrics == first
    fresh = W.explore_host(cpus=2, count=500)
    assert fresh.cache.hits == 0 and fresh.result.metrics == first
