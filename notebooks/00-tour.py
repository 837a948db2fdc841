# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (cmdqv-lab)
#     language: python
#     name: cmdqv-lab
# ---

# %% [markdown]
# # A tour of cmdqv-lab
#
# cmdqv-lab answers design questions about Arm SMMUv3 command queues (the Linux `arm-smmu-v3`
# CMDQ, SMMUv3.3 ECMDQ and NVIDIA's Tegra241 CMDQV) with numbers. The questions come from the 2021
# review of the Tegra241 CMDQV patches, where Robin Murphy asked whether "replicating the full
# heavyweight cmdq behaviour is the right way to go" and whether "we really are addressing the
# right bottlenecks", and Nicolin Chen answered that "we'd have to provide some solid perf data".
# The other notebooks each take one question (Q1-Q10 from the seed thread, Q11 on from later
# mails) and answer it with a sweep and a number the run computes; notebook 09 shows how far the timing model can be trusted.
#
# Sources: the [seed thread](../docs/sources.md#seed-thread), [C1 (Garry 2020)](../docs/sources.md#c1-garry-2020)
# for the D06 calibration, the [captured Linux 6.1 traces](../docs/sources.md#traces-linux6.1); every source
# the project relies on is listed in [the bibliography](../docs/sources.md).
#
# This tour walks the toolkit end to end, each step in a few lines:
#
# 1. a command, encoded exactly as the 16-byte queue entry;
# 2. the **functional model** consuming a batch with an illegal command, and Linux's recovery;
# 3. a **real command stream** captured from Linux 6.1 under QEMU;
# 4. the **correctness checker** on mixed guest batches (first-opcode routing vs scanning);
# 5. one **timing** run with its parameter table;
# 6. a small **sweep** with a chart and a slider explorer;
# 7. where `cmdqv-lab report` and `cmdqv-lab reproduce` fit.
#
# Everything printed below is computed by this run.

# %% tags=["parameters"]
smoke = False

# %%
# ruff: noqa: E402  (a notebook imports after its parameters cell)
import time

import numpy as np
import polars as pl

from cmdqv_lab import plots, widgets
from cmdqv_lab.analysis.calibrate import CalibrationSpec
from cmdqv_lab.analysis.host import c1_kind
from cmdqv_lab.checker.check import check, compare
from cmdqv_lab.checker.scenarios import load_source
from cmdqv_lab.device.cmdq import CError
from cmdqv_lab.device.cmdqv import Cmdqv, CmdqvParams
from cmdqv_lab.device.commands import Command, Opcode, encode_batch, fields_of, sync_command
from cmdqv_lab.device.regs import CMDQ_CONS_ERR
from cmdqv_lab.device.smmu import SMMU
from cmdqv_lab.driver.recovery import (
    arm_smmu_cmdq_build_sync_cmd,
    arm_smmu_gerror_handler,
    guest_handle_vevent,
    sync_msi_done,
    tegra241_cmdqv_isr,
)
from cmdqv_lab.errors import CmdqvError
from cmdqv_lab.experiments.published import sweep_frame
from cmdqv_lab.platform import platform_table
from cmdqv_lab.report import param_table, result_table
from cmdqv_lab.scenarios import simulate
from cmdqv_lab.workloads.qemu_trace import parse_trace
from cmdqv_lab.workloads.replay import trace_path

plots.enable()
t_start = time.perf_counter()
print(f"smoke={smoke}")

# %% [markdown]
# ## 1. A command
#
# A command is two little-endian 64-bit words; the opcode is `dword0[7:0]`. Field positions follow
# the SMMUv3 specification and Linux's `arm-smmu-v3.h`. Here is the invalidation a strict-mode
# `dma_unmap` of one 4 KiB page issues: `CMD_TLBI_NH_VA` for ASID 2, leaf, 4 KiB granule (TG=1),
# level-3 entry (TTL=3).

# %%
tlbi = Command(Opcode.CMD_TLBI_NH_VA, asid=2, addr=0xFFFF2000, tg=1, ttl=3, leaf=1)
print(tlbi)
raw = tlbi.to_bytes()
print(f"{len(raw)} bytes: {raw.hex()}")
dw0, dw1 = (int(x) for x in tlbi.encode())
print(f"dword0 = {dw0:#018x}  (opcode {dw0 & 0xFF:#04x})\ndword1 = {dw1:#018x}")
assert Command.decode(tlbi.encode()) == tlbi
result_table(
    pl.DataFrame(
        [
            {"field": f.name, "where": f.describe(), "value": tlbi.get(f.name)}
            for f in fields_of(Opcode.CMD_TLBI_NH_VA)
        ]
    ),
    "CMD_TLBI_NH_VA: fields and their bit positions",
)

# %% [markdown]
# ## 2. The functional model: an illegal command and Linux's recovery
#
# The SMMU's main queue receives a batch whose second entry carries an opcode the architecture
# does not define. The consumer executes the first TLBI, stops with CONS *at* the bad entry,
# sets `CONS.ERR = ILL` and toggles `GERROR.CMDQ_ERR`. Linux's handler
# (`arm_smmu_gerror_handler` -> `__arm_smmu_cmdq_skip_err`) overwrites the slot with a CMD_SYNC and
# acknowledges by writing `GERRORN = GERROR`; the queue resumes at the same index, so the commands
# behind it, and whoever waits on the final SYNC, still complete.

# %%
smmu = SMMU()
batch = encode_batch(Opcode.CMD_TLBI_NH_VA, asid=[2, 2, 2], addr=[0x1000, 0x2000, 0x3000], tg=1, leaf=1)
batch[1, 0] = (int(batch[1, 0]) & ~0xFF) | 0x7F  # an opcode no SMMU defines
# the CMD_SYNC Linux writes at slot 3: with MSI polling, CS=SIG_IRQ and MSIADDR = the SYNC's own slot
batch = np.vstack([batch, arm_smmu_cmdq_build_sync_cmd(smmu.cmdq, 3, msipoll=smmu.msipoll)])
for i, row in enumerate(batch):
    try:
        text = str(Command.decode(row))
    except CmdqvError as e:
        text = f"<{e}>"
    print(f"  [{i}] {int(row[0]):#018x} {int(row[1]):#018x}  {text}")
smmu.cmdq.submit(batch)
done = smmu.cmdq.consume_all()
cons = smmu.cmdq.cons_reg
print(
    f"consumed {done}, stopped={smmu.cmdq.stopped}, CONS index {smmu.cmdq.queue.idx(cons)}, "
    f"CONS.ERR={CError(CMDQ_CONS_ERR.get(cons)).name}, GERROR={smmu.gerror:#x} GERRORN={smmu.gerrorn:#x}"
)
handled = arm_smmu_gerror_handler(smmu)
print(f"gerror handler ran: {handled}; slot 1 now: {Command.decode(smmu.cmdq.queue.read_entry(1))}")
done2 = smmu.cmdq.consume_all()
print(
    f"resumed: consumed {done2} more, stopped={smmu.cmdq.stopped}, GERROR={smmu.gerror:#x} GERRORN={smmu.gerrorn:#x}"
)
print(
    f"the MSI zeroed the SYNC's own slot, so a waiter polling it sees completion: {sync_msi_done(smmu.cmdq, 3)}"
)
log = pl.DataFrame(
    [
        {"seq": e.seq, "event": e.kind, "queue": e.queue, "index": e.index, "opcode": e.opname,
         "detail": ", ".join(f"{k}={v}" for k, v in e.detail.items() if k not in ("executed", "replaced"))}
        for e in smmu.log
    ]
)  # fmt: skip
result_table(log, "Event log of the functional model (main CMDQ)")

# %% [markdown]
# The same rule on a Tegra241 **guest-owned VCMDQ** (Q1/Q5 of the thread): the VINTF rewrites the
# VMID and the StreamID through its SID pairs and accepts only TLBI_NH_ASID, TLBI_NH_VA, ATC_INV and
# CMD_SYNC; a `CMD_CFGI_STE` in the batch is ILL. The host's CMDQV interrupt handler forwards the
# error map to user space (a vEVENT) and the guest's own driver recovers the queue.

# %%
cmdqv = Cmdqv(CmdqvParams(num_vintfs=4, num_vcmdqs=8))
vintf = cmdqv.vintfs[1]
vintf.configure(vmid=7, hyp_own=False)
vintf.set_sid_pair(0, vsid=0x8, psid=0x108)
vq = cmdqv.setup_lvcmdq(q=2, vintf=1, lidx=0, log2size=7)
for cmd in (
    Command(Opcode.CMD_TLBI_NH_ASID, asid=1, vmid=0),
    Command(Opcode.CMD_CFGI_STE, sid=0x8, leaf=1),
    Command(Opcode.CMD_ATC_INV, sid=0x8, size=52),
):
    vq.submit(cmd.encode())
vq.submit(sync_command(cs=0).encode())
n1 = vq.consume_all()
err = vq.log.of("error")[-1]
events = tegra241_cmdqv_isr(cmdqv)
fixed = guest_handle_vevent(cmdqv, events[0])
n2 = vq.consume_all()
executed = [str(Command.decode(e.detail["executed"])) for e in vq.log.of("consume")]
print(f"consumed {n1}, then {err.detail['cerror']} at index {err.index} ({err.opname}); vEVENT {events[0]}")
print(f"guest recovered logical queue(s) {fixed}; consumed {n2} more. Executed, as rewritten by the VINTF:")
for line in executed:
    print("  ", line)

# %% [markdown]
# ## 3. A real command stream
#
# `data/traces` holds Linux 6.1's own command streams, captured by booting Debian's arm64 kernel
# under `qemu-system-aarch64 -M virt,iommu=smmuv3` and reading a virtio-blk disk with
# `dd iflag=direct` (`cmdqv-lab trace capture` rebuilds them). The order and batching of commands
# are the real driver's; the timestamps are emulation time, not hardware timing.

# %%
tr = parse_trace(trace_path("linux6.1-smp4-strict"))
s = tr.summary()
print(
    f"{s['file'].split('/')[-1]}: {s['commands']} commands in {s['doorbells']} doorbells "
    f"(mean batch {s['mean_batch']:.2f}), {s['threads']} vCPU threads, errors {s['errors'] or 'none'}"
)
result_table(
    pl.DataFrame({"opcode": list(s["opcodes"]), "commands": list(s["opcodes"].values())}),
    "Opcodes in the strict 4-vCPU trace",
)
result_table(
    pl.DataFrame(
        {
            "commands per doorbell": [int(k) for k in s["batch_sizes"]],
            "doorbells": list(s["batch_sizes"].values()),
        }
    ),
    "Batch sizes (commands published by one PROD write)",
)
result_table(
    tr.commands.select("seq", "doorbell", "opcode", "asid", "addr", "sid").head(8),
    "The first 8 commands of the trace",
)

# %% [markdown]
# Strict mode: every unmap is its own doorbell of one `CMD_TLBI_NH_VA` + `CMD_SYNC`, and the
# device-attach sequence at the start (CFGI_STE, PREFETCH_CONFIG, TLBI_NH_ASID ...) is the only
# other traffic. Notebook 08 replays these streams through host queue topologies.

# %% [markdown]
# ## 4. The correctness checker: routing mixed guest batches
#
# Q1 of the thread: the 2021 patch chose the queue from `cmds[0]`'s opcode only. The checker routes
# a stream under a policy, replays it through the functional model (VINTFs, VCMDQs, the main
# queue, Linux's recovery) and reads hazards from the event log: `ill` (an unsupported command
# reached a guest-owned VCMDQ), `q2` (an invalidation whose op waits for a CMD_SYNC on *another*
# queue, which covers nothing), `q3`/`unsynced`. Here on the `guest-mixed` stream (two VMs, some
# batches carrying an unsupported command, some ATC_INVs, some lone SYNCs).

# %%
src = load_source("guest-mixed", {"ops": 400 if smoke else 4000}, seed=1)
cmp = compare(src, ["first-opcode", "scan"])
result_table(cmp, "Hazards per routing policy on guest-mixed (functional model)")
hz = cmp.unpivot(
    index="policy", on=["ill", "q2", "q3", "unsynced"], variable_name="hazard", value_name="count"
)
plots.show(plots.hazard_counts(hz, title="guest-mixed: hazards under first-opcode vs scan routing"))
first = check(src, "first-opcode")
h = first.hazards[0]
print(
    f"{len(first.hazards)} hazards under first-opcode; the first one: {h.kind} at {h.where()} ({h.opcode} on {h.queue}): {h.reason}"
)

# %% [markdown]
# ## 5. One timing run
#
# The timing engine runs Linux's `arm_smmu_cmdq_issue_cmdlist` step by step on every CPU (cmpxchg
# reservation, valid bitmap, owner gathering, one PROD doorbell, CMD_SYNC wait) against an SMMU
# that fetches and executes commands. Its costs are a platform preset: here `d06`, fitted to John
# Garry's D06 map+unmap rows (C1). The table says where each value comes from; the
# model is calibrated, not cycle-exact, and notebook 09 varies every *assumption*.

# %%
TOUR_COSTS = ["think_ns", "line_xfer_ns", "cmd_write_ns", "mmio_write_ns", "tlbi_service_ns", "sync_service_ns",
              "fetch_ns", "fetch_line_cmds", "msi_ns"]  # fmt: skip
param_table(
    platform_table("d06").filter(pl.col("name").is_in(TOUR_COSTS)).select("name", "value", "unit", "provenance", "source"),
    "Platform preset d06: the costs of the host map+unmap loop (all rows: notebook 09)",
)
run = simulate(
    "host-map-unmap", {"platform": "d06", "cpus": 16}, seed=1, count=4_000 if smoke else 40_000, record=True
)
m = run.metrics
c1 = {t.label: t.value for t in CalibrationSpec.load("d06").targets}["v5.9-rc1 lock-free, 16 CPUs"]
print(
    f"16 CPUs, shared main cmdq, lock-free: {m['ops_per_s_per_cpu']:,.0f} map+unmap/s per CPU "
    f"(C1 measured {c1:,.0f}), op latency mean {m['op_latency_ns']['mean']:,.0f} ns p99 {m['op_latency_ns']['p99']:,.0f} ns, "
    f"SMMU busy {m['smmu_busy_fraction']:.2f}, cmpxchg success {m['cas_success_ratio']:.2f}, "
    f"{m['doorbells']:,} doorbells for {m['ops']:,} ops ({run.wall_s:.2f} s)"
)

# %%
cm = run.commands
first_cmd = (
    cm.sort("cmd_id")
    .group_by("op_id", maintain_order=True)
    .agg(
        pl.col("cpu").first(),
        pl.col("issue_ps").first(),
        pl.col("reserved_ps").first(),
        pl.col("written_ps").max(),
        pl.col("publish_ps").max(),
        pl.col("consume_start_ps").min(),
        pl.col("complete_ps").max(),
    )
)
ops_done = run.ops.select("op_id", pl.col("complete_ps").alias("op_done_ps"))
mid = first_cmd.join(ops_done, on="op_id").sort("issue_ps")
window = mid.slice(mid.height // 2, 12)
phases = [
    ("reserve", "issue_ps", "reserved_ps"),
    ("write", "reserved_ps", "written_ps"),
    ("doorbell", "written_ps", "publish_ps"),
    ("consume", "publish_ps", "complete_ps"),
    ("wake", "complete_ps", "op_done_ps"),
]
timeline = pl.concat(
    [
        window.select(
            "cpu",
            "op_id",
            pl.lit(name).alias("phase"),
            (pl.col(a) / 1000).alias("start_ns"),
            (pl.col(b) / 1000).alias("end_ns"),
        )
        for name, a, b in phases
    ]
)
plots.show(
    plots.batch_timeline(timeline, title="12 consecutive unmaps at 16 CPUs: reserve, write, doorbell, SMMU, wake")
)
lat = run.ops.select(
    pl.lit("main cmdq, lock-free").alias("policy"), (pl.col("latency_ps") / 1000).alias("latency_ns")
)
plots.show(plots.latency_cdf(lat, log_x=True, title="Op latency at 16 CPUs (D06 preset)", kind="fitted"))

# %% [markdown]
# "doorbell" is the time from writing the entries to the PROD write that publishes them: the wait
# for the previous owner and the gathering of other CPUs' entries into one doorbell. "consume" is
# the wait in the SMMU's queue plus execution, up to the CMD_SYNC's completion.

# %% [markdown]
# ## 6. A sweep and a chart
#
# Sweeps are TOML specs in `data/specs` (a grid, seeds, a `[quick]` variant for smoke runs).
# `sweep_frame` returns the published results in `data/results` if there are any, else runs the
# sweep (or, in smoke mode, its quick variant). This one is Q9's basic question: throughput per CPU
# against CPU count for three submission algorithms on the D06 main cmdq.

# %%
sw = sweep_frame("q9-host-cpus-submit", smoke=smoke)
print(sw.describe())
df = c1_kind(sw.frame).with_columns(pl.col("submit").alias("policy"))
plots.show(
    plots.throughput_vs_cpus(
        df, y="ops_per_s_per_cpu", log_x=True, kind="kind", color_title="submission algorithm",
        y_title="map+unmap per CPU (ops/s)", title="Map+unmap per CPU vs CPUs, D06 main cmdq",
    )
)  # fmt: skip
means = (
    df.group_by("policy", "cpus", maintain_order=True)
    .agg(pl.col("ops_per_s_per_cpu", "smmu_busy_fraction").mean())
    .sort("policy", "cpus")
)
plots.show(
    plots.explorer(
        means,
        "cpus",
        "ops_per_s_per_cpu",
        None,
        "policy",
        control="select",
        log_x=True,
        log_y=True,
        y_title="map+unmap per CPU (ops/s)",
        slider_title="submission algorithm",
        title="Map+unmap per CPU (pick the algorithm)",
    )
)

# %% [markdown]
# In Jupyter, the same question live: sliders and drop-downs that re-simulate when released
# (the static report keeps the slider chart above instead).

# %%
widgets.explore_host(cpus=8, count=5_000)

# %% [markdown]
# ## 7. Reports and reproducibility
#
# * `cmdqv-lab report [--smoke]` executes every `notebooks/NN-topic.py` with papermill and writes
#   an offline HTML site: the index lists each question's one-line answer (recorded by
#   `cmdqv_lab.report.answer` from numbers the run computed), each page its parameter tables, charts
#   and slider explorers. `--smoke` injects `smoke = True` (the cell tagged `parameters`).
# * `cmdqv-lab sweep data/specs/NAME.toml --out data/results/NAME` regenerates a published sweep
#   (`make results` does all of them); its `manifest.json` records the spec, seeds, code version,
#   git commit and content hashes. `cmdqv-lab reproduce` re-runs published sweeps and compares them
#   exactly.
# * `cmdqv-lab calibrate d06|grace` refits a preset and prints its held-out predictions;
#   `cmdqv-lab check`, `cmdqv-lab trace`, `cmdqv-lab plan` and `cmdqv-lab simulate --list` are the
#   other entry points.

# %%
print("Tour summary (computed above)")
print(f"  CMD_TLBI_NH_VA encodes as {raw.hex()}")
print(f"  main CMDQ: ILL stopped the queue after {done} command(s); recovery let {done2} more complete")
print(f"  guest VCMDQ: {err.detail['cerror']} on {err.opname}, forwarded as a vEVENT, recovered by the guest")
print(f"  trace: {s['commands']} commands, {s['doorbells']} doorbells, mean batch {s['mean_batch']:.2f}")
pc = {r["policy"]: r for r in cmp.to_dicts()}
print(
    f"  checker on guest-mixed: first-opcode {pc['first-opcode']['ill']} ILL + {pc['first-opcode']['q2']} Q2 hazards; "
    f"scan {pc['scan']['ill']} + {pc['scan']['q2']}"
)
print(f"  timing: {m['ops_per_s_per_cpu']:,.0f} ops/s per CPU at 16 CPUs on the D06 preset")
print(f"  sweep: {sw.describe()}")
print(f"  notebook run time {time.perf_counter() - t_start:.1f} s")
