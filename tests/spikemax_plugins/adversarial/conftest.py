"""Every adversarial test ends with the value checks on (a test that turns them off must restore them)."""

import pytest

import spikemax_plugins as smx


@pytest.fixture(autouse=True)
def _value_checks_restored():
    yield
    assert smx.value_checks_enabled(), "a test left the value checks off"
