"""Shared pytest configuration: hypothesis profiles, the ``cuda`` marker, the adversarial outcome summary."""

import os
import sys

import pytest
import torch
from hypothesis import HealthCheck, settings

# CI runs every property on at least 200 examples; local runs stay quick.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


def pytest_terminal_summary(terminalreporter):
    """After a run that included the adversarial suites: how many drawn calls were valid, clear errors, unchecked."""
    support = sys.modules.get("tests.spikemax_plugins.adversarial.support")
    if support is None:
        return
    lines = support.outcome_lines()
    if lines:
        terminalreporter.section("adversarial outcomes")
        for line in lines:
            terminalreporter.write_line(line)
