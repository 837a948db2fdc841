"""The ``cmdqv-lab`` command line (built on click).

Subcommands live in their own modules and are imported only when invoked, so ``--help`` is fast
and a subcommand's heavy imports (numba, polars) never slow down the others. Expected mistakes
(:class:`~cmdqv_lab.errors.CmdqvError`, bad options) print one line on stderr and exit with status 2;
there is no traceback for them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from cmdqv_lab import __version__
from cmdqv_lab.errors import CmdqvError, environment_error

#: name -> (module:attribute, one-line help). A subcommand whose module is absent is not listed.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("cmdqv_lab.cli_simulate:simulate", "Run a timing scenario and print its metrics."),
    "describe": (
        "cmdqv_lab.cli_simulate:describe",
        "Explain a scenario's parameters: meaning, unit, range, value per preset, provenance.",
    ),
    "trace": (
        "cmdqv_lab.workloads.trace_cli:trace",
        "Summarise and capture QEMU SMMUv3 traces (replay: simulate -s trace-replay).",
    ),
    "check": (
        "cmdqv_lab.checker.cli:check",
        "Check a command stream for ILL and SYNC hazards under a policy.",
    ),
    "plan": ("cmdqv_lab.virt.plan_cli:plan_cmd", "Plan VINTF / SID-pair capacity for VMs and devices."),
    "sweep": ("cmdqv_lab.experiments.cli:sweep", "Run a parameter sweep spec (local processes or dask)."),
    "reproduce": ("cmdqv_lab.experiments.cli:reproduce", "Re-run published results and compare them."),
    "results": ("cmdqv_lab.cli_results:results", "Show a sweep's results as a table, or export them."),
    "report": ("cmdqv_lab.report.cli:report", "Execute the notebooks and build the offline report."),
    "params": ("cmdqv_lab.cli_params:params", "Print a platform preset's parameter table with provenance."),
    "calibrate": ("cmdqv_lab.cli_params:calibrate", "Refit a platform preset to its calibration rows."),
}


def _available(target: str) -> bool:
    module = target.split(":", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (target, _) in SUBCOMMANDS.items() if _available(target))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None or not _available(entry[0]):
            return None
        module, attr = entry[0].split(":")
        cmd = getattr(importlib.import_module(module), attr)
        if not isinstance(cmd, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{entry[0]} is not a click command")
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="cmdqv-lab")
def cli() -> None:
    """cmdqv-lab: functional and timing models of SMMUv3 command queues, ECMDQ and Tegra241 CMDQV.

    Functional models are spec-exact; timing models are calibrated queueing models, not
    cycle-exact simulations. Every subcommand has --help.
    """


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: one-line errors with exit status 2 for expected mistakes."""
    try:
        rv = cli.main(args=argv, prog_name="cmdqv-lab", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            sys.exit(rv)  # a command's ctx.exit(code) / return code
        return rv
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("cmdqv-lab: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "cmdqv-lab"
        msg = e.format_message().replace("\n", " ")
        click.echo(f"{where}: error: {msg}", err=True)
        sys.exit(e.exit_code)
    except CmdqvError as e:
        click.echo(f"cmdqv-lab: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:  # pragma: no cover - e.g. piping into head
        sys.exit(0)
    except (OSError, MemoryError) as e:  # a full disk, a read-only directory, out of memory: not bugs
        env = environment_error(e)
        if env is None:
            raise
        click.echo(f"cmdqv-lab: error: {str(env).splitlines()[0]}", err=True)
        sys.exit(env.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
