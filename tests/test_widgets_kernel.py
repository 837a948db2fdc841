"""An explorer in a real Jupyter kernel, driven the way a browser drives it: by comm messages.

A widget in the browser sends ``{"method": "update", "state": {"value": ...}}`` on its comm when a
slider is released (``continuous_update=False``). Here a kernel client sends those messages
directly, so the kernel-side path is the real one: ipykernel's comm dispatch, the explorer's
debounce on the kernel's asyncio loop, and the progress bar's updates going out on IOPub while
the kernel is busy simulating. No browser is needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SETUP = """
from cmdqv_lab import widgets as W
from cmdqv_lab.widgets.controls import Control
ex = W.explore("host-map-unmap", [Control("tlbis", lo=0, hi=8), "cpus"], count=300, seeds=2,
               debounce_s=0.3, progress_after_s=0.0)
print(json.dumps({"runs": ex.runs_done, "tlbis": ex.controls["tlbis"].widget.model_id,
                  "progress": ex.progress.model_id, "layout": ex.progress.layout.model_id}))
"""


class Kernel:
    def __init__(self) -> None:
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3")
        self.iopub: list[dict[str, Any]] = []

    def execute(self, code: str, timeout: float = 120) -> str:
        msg_id = self.kc.execute(code)
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(1.0, deadline - time.monotonic()))
            self.iopub.append(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)

    def update(self, comm_id: str, **state: Any) -> None:
        """What the browser sends when a widget's value changes."""
        content = {"comm_id": comm_id, "data": {"method": "update", "state": state, "buffer_paths": []}}
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", content))

    def wait_for(self, expr: str, want: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = json.loads(self.execute(f"print(json.dumps({expr}))"))
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.2)

    def comm_states(self, comm_id: str) -> list[dict[str, Any]]:
        return [
            m["content"]["data"]["state"]
            for m in self.iopub
            if m["msg_type"] == "comm_msg"
            and m["content"].get("comm_id") == comm_id
            and m["content"]["data"].get("method") == "update"
        ]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    try:
        k.execute("import json")
        yield k
    finally:
        k.close()


def test_released_sliders_coalesce_into_one_debounced_run(kernel: Kernel) -> None:
    ids = json.loads(kernel.execute(SETUP).strip().splitlines()[-1])
    assert ids["runs"] == 1
    kernel.iopub.clear()
    for v in (1, 2, 3):  # three releases in quick succession
        kernel.update(ids["tlbis"], value=v)
    got = kernel.wait_for('[ex.runs_done, ex.result.params["tlbis"]]', [2, 3])
    assert got == [2, 3]
    # the run's progress went out while the kernel was busy: one step per simulation, then hidden
    values = [s["value"] for s in kernel.comm_states(ids["progress"]) if "value" in s]
    assert values[-2:] == [1, 2]
    vis = [s["visibility"] for s in kernel.comm_states(ids["layout"]) if "visibility" in s]
    assert vis[-2:] == ["visible", "hidden"]


def test_changes_during_a_long_run_end_in_one_more_run(kernel: Kernel) -> None:
    ids = json.loads(kernel.execute(SETUP).strip().splitlines()[-1])
    kernel.execute("ex.set(count=200_000, cpus=64)")  # each simulation now takes a while
    base = json.loads(kernel.execute("print(json.dumps(ex.runs_done))"))
    kernel.update(ids["tlbis"], value=4)
    time.sleep(0.5)  # the debounced run has most likely started: the next changes queue behind it
    for v in (5, 6, 7):
        kernel.update(ids["tlbis"], value=v)
    assert kernel.wait_for('ex.result.params["tlbis"]', 7, timeout=120) == 7
    runs = json.loads(kernel.execute("print(json.dumps(ex.runs_done))")) - base
    assert runs in (1, 2)  # one run for 4 and one for 7 (or just 7, had 4 not started): never 5 or 6
    assert kernel.wait_for("ex.error", None) is None
