"""cmdqv-lab: functional and timing models of Arm SMMUv3 command queues.

The package models the SMMUv3 command queue (CMDQ), the SMMUv3.3 ECMDQ extension and NVIDIA's
Tegra241 CMDQV (VINTF / VCMDQ), the Linux ``arm-smmu-v3`` submission algorithms, and guest
virtualisation paths, so that design questions about them can be answered with numbers.

>>> import cmdqv_lab
>>> cmdqv_lab.__version__
'0.1.0'
"""

from importlib.metadata import PackageNotFoundError, version

from cmdqv_lab._lazy_imports import defer_rfc3987_syntax

defer_rfc3987_syntax()  # jsonschema (Altair, nbformat) imported it eagerly: 2.5 s per process

try:
    __version__ = version("cmdqv-lab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
