"""``cmdqv-lab trace``: summarise and capture QEMU SMMUv3 traces.

``trace summary FILE`` prints commands, opcodes (spec names), doorbells, the batch-size histogram,
distinct ASIDs and SIDs and the duration, as a table or (``--json``) as one JSON object.
``trace capture`` boots Debian's arm64 kernel under QEMU and records a new trace
(:mod:`cmdqv_lab.workloads.capture`). Errors print one line and exit with status 2.

>>> from click.testing import CliRunner
>>> r = CliRunner().invoke(trace, ["summary", "--help"])
>>> r.exit_code, "--json" in r.output
(0, True)
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["format_summary", "trace"]


@click.group("trace")
def trace() -> None:
    """Summarise and capture QEMU SMMUv3 command-queue traces (log backend, plain or gzip)."""


def _ids(values: list[int], hexa: bool = False, limit: int = 12) -> str:
    shown = [f"0x{v:x}" if hexa else str(v) for v in values[:limit]]
    more = f" ... ({len(values)} distinct)" if len(values) > limit else ""
    return (", ".join(shown) or "none") + more


def format_summary(s: dict[str, Any]) -> str:
    """The readable table of ``cmdqv-lab trace summary`` (``s`` is :meth:`Trace.summary`)."""
    dur = "n/a (no timestamps)" if s["duration_s"] is None else f"{s['duration_s']:.3f} s (host time)"
    skipped = sum(s["skipped"].values())
    malformed = sum(s["malformed"].values())
    rows = [
        ("file", s["file"]),
        ("format", s["format"]),
        ("lines", f"{s['lines']}  (skipped {skipped}, malformed {malformed})"),
        ("commands", str(s["commands"])),
        ("doorbells", f"{s['doorbells']}  (mean batch {s['mean_batch'] or 0:.2f} commands)"),
        ("duration", dur),
        ("threads", str(s["threads"])),
        ("ASIDs", _ids(s["asids"])),
        ("VMIDs", _ids(s["vmids"])),
        ("SIDs", _ids(s["sids"], hexa=True)),
    ]
    if s["errors"]:
        rows.append(("errors", ", ".join(f"{k} {v}" for k, v in s["errors"].items())))
    out = [f"{k:<10} {v}" for k, v in rows]
    width = max([len(k) for k in (*s["opcodes"], *s["skipped"], *s["malformed"])] + [8])
    out.append("opcodes")
    out += [f"  {k:<{width}} {v:>9}" for k, v in s["opcodes"].items()]
    out.append("batch sizes (commands per doorbell: doorbells)")
    out += [f"  {k:>{width}} {v:>9}" for k, v in s["batch_sizes"].items()]
    if skipped or malformed:
        out.append("skipped / malformed lines")
        out += [f"  {k:<{width}} {v:>9}" for k, v in {**s["skipped"], **s["malformed"]}.items()]
    return "\n".join(out)


@trace.command("summary")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--lenient", is_flag=True, help="Skip and count malformed lines instead of failing.")
def summary_cmd(file: Path, as_json: bool, lenient: bool) -> None:
    """Counts of a trace FILE: commands, opcodes, doorbells, batch sizes, ASIDs, SIDs, duration."""
    from cmdqv_lab.workloads.qemu_trace import parse_trace

    s = parse_trace(file, lenient=lenient).summary()
    click.echo(json.dumps(s, indent=2) if as_json else format_summary(s))


@trace.command("capture")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Trace file (NAME.log.gz) or directory; provenance goes to NAME.json beside it.",
)
@click.option("--vcpus", type=int, default=1, show_default=True, help="Guest vCPUs (-smp).")
@click.option(
    "--mode",
    type=click.Choice(["strict", "lazy"]),
    default="strict",
    show_default=True,
    help="IOTLB invalidation: strict (iommu.strict=1) or lazy flush queues (iommu.strict=0).",
)
@click.option(
    "--block-size",
    "block_sizes",
    multiple=True,
    default=["4k", "64k"],
    show_default=True,
    help="dd block size; repeat for several phases.",
)
@click.option("--bytes", "size", default="1M", show_default=True, help="Bytes each job reads per block size.")
@click.option(
    "--io",
    type=click.Choice(["direct", "buffered"]),
    default="direct",
    show_default=True,
    help="direct: dd iflag=direct; buffered: through the page cache (dropped first).",
)
@click.option("--jobs", type=int, default=1, show_default=True, help="Parallel dd processes per phase.")
@click.option("--memory", "memory_mib", type=int, default=512, show_default=True, help="Guest RAM in MiB.")
@click.option("--cpu", default="cortex-a57", show_default=True, help="QEMU CPU model.")
@click.option(
    "--events",
    type=click.Choice(["cmdq", "all"]),
    default="cmdq",
    show_default=True,
    help="Trace events: cmdq (command queue only, small files) or all smmuv3_*.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds before a hung guest is killed.",
)
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite of the arm64 packages.")
@click.option("--mirror", default="http://deb.debian.org/debian", show_default=True, help="Debian mirror.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Package cache [default: $CMDQV_LAB_CACHE or $XDG_CACHE_HOME/cmdqv-lab].",
)
@click.option("--qemu", default="qemu-system-aarch64", show_default=True, help="QEMU binary.")
@click.option(
    "--kernel-deb",
    type=click.Path(path_type=Path),
    default=None,
    help="Use this linux-image-*-arm64 .deb instead of downloading.",
)
@click.option(
    "--busybox-deb",
    type=click.Path(path_type=Path),
    default=None,
    help="Use this busybox-static arm64 .deb instead of downloading.",
)
@click.option(
    "--install/--no-install",
    default=True,
    show_default=True,
    help="Install qemu-system-arm with apt-get if missing (root only).",
)
@click.option("--refresh", is_flag=True, help="Refresh the cached arm64 package lists.")
@click.option(
    "--keep-workdir", is_flag=True, help="Keep initramfs, console log and raw trace (NAME.log.gz.work/)."
)
def capture_cmd(out: Path, block_sizes: tuple[str, ...], size: str, cache_dir: Path | None, qemu: str,
                kernel_deb: Path | None, busybox_deb: Path | None, install: bool, refresh: bool,
                keep_workdir: bool, suite: str, mirror: str, **spec: Any) -> None:  # fmt: skip
    """Boot Debian's arm64 kernel under qemu-system-aarch64 -M virt,iommu=smmuv3 and record a trace.

    The guest reads a virtio-blk-pci disk behind the SMMU (iommu_platform=on) with dd, then powers
    off; the trace is written gzip-compressed with a provenance JSON beside it.
    """
    from cmdqv_lab.workloads.capture import CaptureSpec, capture_trace, parse_size

    cs = CaptureSpec(
        block_sizes=tuple(parse_size(b) for b in block_sizes), bytes_per_job=parse_size(size), **spec
    )
    prov = capture_trace(
        cs, out, cache=cache_dir, suite=suite, mirror=mirror, qemu=qemu, install=install,
        kernel_deb=kernel_deb, busybox_deb=busybox_deb, refresh=refresh, keep_workdir=keep_workdir,
        invocation=shlex.join(["cmdqv-lab", *sys.argv[1:]]),
        log=lambda msg: click.echo(f"capture: {msg}", err=True),
    )  # fmt: skip
    s = prov["summary"]
    click.echo(
        f"{prov['trace']}: {prov['bytes']} bytes, {prov['lines']} lines, {s['commands']} commands in"
        f" {s['doorbells']} doorbells; guest {prov['guest_seconds']} s, capture {prov['capture_seconds']} s"
    )
