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


# Property tests are reproducible: Hypothesis derives its examples from the test itself, not from a
# random seed, so CI and a developer see the same cases (override with HYPOTHESIS_PROFILE=explore).
import os  # noqa: E402

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
