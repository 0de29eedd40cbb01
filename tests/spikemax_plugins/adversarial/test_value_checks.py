"""Adversarial value-check switch: non-bools refused, the context nests and restores after errors, and with the
checks off no call reads a value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import early_exit, streaming

from .support import (
    expect_clear_error,
    record_valid,
)

# ==================================================================================== value_checks switch


@given(value=st.sampled_from([1, 0, None, "yes", 1.0, np.bool_(True), [True]]))
def test_value_check_switch_refuses_non_bools(value):
    expect_clear_error("core/value_checks/set", lambda: smx.set_value_checks(value), "enabled")
    expect_clear_error("core/value_checks/context", lambda: smx.value_checks(value), "enabled")
    assert smx.value_checks_enabled()


@given(pattern=st.lists(st.booleans(), min_size=1, max_size=5), fail_at=st.integers(0, 5))
def test_value_checks_context_nests_and_restores_after_errors(pattern, fail_at):
    """Nested value_checks blocks (and the decorator form) restore the previous setting, even after an error."""

    def nest(depth):
        if depth == len(pattern):
            return
        with smx.value_checks(pattern[depth]):
            assert smx.value_checks_enabled() is pattern[depth]
            if depth == fail_at:
                raise KeyError("boom")
            nest(depth + 1)
            assert smx.value_checks_enabled() is pattern[depth]

    with pytest.raises(KeyError) if fail_at < len(pattern) else _nothing():
        nest(0)
    assert smx.value_checks_enabled() is True

    @smx.value_checks(False)
    def decorated(depth):
        assert smx.value_checks_enabled() is False
        return decorated(depth - 1) if depth else depth

    decorated(3)
    assert smx.value_checks_enabled() is True


NO_READ_CALLS = {
    "spikemax_g": lambda s, t: smx.spikemax_g(s, t, weight=torch.ones(3), smoothing=0.0),
    "spikemax_s": lambda s, t: smx.spikemax_s(s, t, window=2, weight=torch.ones(3)),
    "mse_count": lambda s, t: smx.mse_count(s, t, true_rate=1.0, false_rate=0.0, weight=torch.ones(3)),
    "SpikeMaxGLoss": lambda s, t: smx.SpikeMaxGLoss(weight=torch.ones(3))(s, t),
    "spike_counts": lambda s, t: smx.spike_counts(s),
    "predict": lambda s, t: smx.predict(s),
    "accuracy": lambda s, t: smx.accuracy(s, t),
    "accuracy_over_time": lambda s, t: smx.accuracy_over_time(s, t),
    "time_to_decision": lambda s, t: smx.time_to_decision(s),
    "synaptic_operations": lambda s, t: smx.synaptic_operations([s], [torch.ones(3)], until=t),
    "confidence": lambda s, t: early_exit.confidence(s),
    "SpikeAccuracy": lambda s, t: streaming.SpikeAccuracy().update(s, t),
}


@pytest.mark.parametrize("name", sorted(NO_READ_CALLS))
def test_value_checks_off_read_no_values(name):
    """With set_value_checks(False) no function reads a value back to the host (the point of the switch on a GPU):
    here, on the CPU, every way of reading one (.item(), .tolist(), bool(), the package's _read) raises."""
    from spikemax_plugins import _validation, _value_checks

    spikes = torch.rand(4, 2, 3)
    target = torch.tensor([0, 2])

    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} read a value with the value checks off")

    with pytest.MonkeyPatch.context() as patch, smx.value_checks(False):
        # _read lives in _value_checks, and callers also reach it as _validation._read: both are refused.
        patch.setattr(_value_checks, "_read", refuse)
        patch.setattr(_validation, "_read", refuse)
        patch.setattr(_value_checks, "_exact_range", refuse)
        patch.setattr(torch.Tensor, "item", refuse)
        patch.setattr(torch.Tensor, "tolist", refuse)
        patch.setattr(torch.Tensor, "__bool__", refuse)
        NO_READ_CALLS[name](spikes, target)
    record_valid("core/value_checks off: no reads")


class _nothing:  # noqa: N801
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
