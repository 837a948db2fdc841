"""Workloads: the command streams the models are driven with.

A workload is a stream of SMMUv3 commands grouped the way software published them (batches,
doorbells, CPUs, VMs). Two kinds live here:

- real traces: :mod:`cmdqv_lab.workloads.qemu_trace` parses QEMU SMMUv3 trace logs into polars
  frames, :mod:`cmdqv_lab.workloads.capture` records new ones by booting Debian's arm64 kernel
  under ``qemu-system-aarch64 -M virt,iommu=smmuv3``, and :mod:`cmdqv_lab.workloads.trace_cli`
  is the ``cmdqv-lab trace`` command;
- synthetic generators (added by other modules of this package).

Each module is self-contained; importing this package imports none of them.
"""
