"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE_TRACE = ROOT / "data" / "traces" / "qemu-smmuv3-linux6.1-smp2-strict.log.gz"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def sample_trace() -> Path:
    return SAMPLE_TRACE
