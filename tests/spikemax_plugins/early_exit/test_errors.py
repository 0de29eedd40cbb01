"""Bad arguments to every early-exit entry point are refused with a clear message; boundary values are accepted."""

import math

import pytest
import torch

from spikemax_plugins import early_exit as ee

# -------------------------------------------------------------------------------------------------- validation

SPIKES = (torch.rand(6, 40, 3, generator=torch.Generator().manual_seed(0)) < 0.4).double()
TARGET = torch.arange(40) % 3
RULE = ee.ExitRule(
    checkpoints=[1, 5],
    thresholds=[0.5, 0.5],
    max_set_size=1,
    score="probability",
    smoothing=1.0,
    num_classes=3,
    num_steps=6,
)


def _calibrate(**changes):
    arguments = {"spikes": SPIKES, "target": TARGET, "method": "accuracy", "alpha": 0.1, **changes}
    return lambda: ee.calibrate(arguments.pop("spikes"), arguments.pop("target"), **arguments)


def _finished_state():
    state = RULE.start(40)
    for step in SPIKES:
        state.update(step)
    return state


# (call, exception, words the message must contain)
BAD_CALLS = [
    pytest.param(_calibrate(method="conformal", alpha=0.0), ValueError, ["alpha", "0.0"], id="conformal-alpha-0"),
    pytest.param(_calibrate(method="conformal", alpha=1.0), ValueError, ["alpha", "(0, 1)", "1.0"], id="conformal-1"),
    pytest.param(_calibrate(method="conformal", alpha=-0.5), ValueError, ["alpha", "-0.5"], id="conformal-neg"),
    pytest.param(_calibrate(method="conformal", alpha=math.nan), ValueError, ["alpha", "nan"], id="conformal-nan"),
    pytest.param(_calibrate(alpha=-0.1), ValueError, ["alpha", "[0, 1)", "-0.1"], id="accuracy-alpha-neg"),
    pytest.param(_calibrate(alpha=1.0), ValueError, ["alpha", "[0, 1)", "1.0"], id="accuracy-alpha-1"),
    pytest.param(_calibrate(alpha=math.inf), ValueError, ["alpha", "inf"], id="accuracy-alpha-inf"),
    pytest.param(_calibrate(alpha="0.1"), TypeError, ["alpha", "str"], id="alpha-type"),
    pytest.param(_calibrate(method="bogus"), ValueError, ["method", "'bogus'"], id="method"),
    pytest.param(_calibrate(score="softmax"), ValueError, ["score", "'softmax'"], id="calibrate-score"),
    pytest.param(
        lambda: ee.confidence(SPIKES, score="softmax"), ValueError, ["score", "'softmax'"], id="confidence-score"
    ),
    pytest.param(_calibrate(target=TARGET[:5]), ValueError, ["target", "[B] = [40]", "(5,)"], id="batch-mismatch"),
    pytest.param(_calibrate(checkpoints=[0, 6]), ValueError, ["checkpoints", "[0, 5]", "[0, 6]"], id="ckpt-range"),
    pytest.param(_calibrate(checkpoints=[-1, 5]), ValueError, ["checkpoints", "[0, 5]", "-1"], id="ckpt-negative"),
    pytest.param(_calibrate(checkpoints=[3, 1]), ValueError, ["checkpoints", "increasing", "[3, 1]"], id="unsorted"),
    pytest.param(_calibrate(checkpoints=[2, 2]), ValueError, ["checkpoints", "increasing", "[2, 2]"], id="repeated"),
    pytest.param(_calibrate(checkpoints=[]), ValueError, ["checkpoints", "at least one"], id="ckpt-empty"),
    pytest.param(_calibrate(checkpoints=3), TypeError, ["checkpoints", "int"], id="ckpt-not-sequence"),
    pytest.param(_calibrate(max_set_size=4), ValueError, ["max_set_size", "<= 3", "4"], id="max-set-size"),
    pytest.param(
        _calibrate(spikes=SPIKES[:, :0], target=TARGET[:0]),
        ValueError,
        ["calibration set is empty", "B = 0"],
        id="empty-accuracy",
    ),
    pytest.param(
        _calibrate(spikes=SPIKES[:, :0], target=TARGET[:0], method="conformal"),
        ValueError,
        ["calibration set is empty", "B = 0"],
        id="empty-conformal",
    ),
    pytest.param(
        # n >= K / alpha - 1 = 4 / 0.1 - 1 = 39 samples are needed with the 4 default checkpoints.
        _calibrate(spikes=SPIKES[:, :38], target=TARGET[:38], method="conformal"),
        ValueError,
        ["too small", "alpha = 0.1", "K = 4", "n = 38", "n >= 39"],
        id="too-small",
    ),
    pytest.param(
        # K = 6 checkpoints, alpha = 0.25: n >= 6 / 0.25 - 1 = 23.
        _calibrate(
            spikes=SPIKES[:, :22], target=TARGET[:22], method="conformal", alpha=0.25, checkpoints=[0, 1, 2, 3, 4]
        ),
        ValueError,
        ["too small", "K = 6", "n = 22", "n >= 23"],
        id="too-small-user-checkpoints",
    ),
    pytest.param(lambda: ee.evaluate(RULE, SPIKES[:5]), ValueError, ["spikes", "T = 6", "5"], id="evaluate-T"),
    pytest.param(lambda: ee.evaluate(RULE, SPIKES[:, :, :2]), ValueError, ["N = 2", "C = 3"], id="evaluate-N"),
    pytest.param(
        lambda: ee.evaluate(RULE, SPIKES, TARGET[:3]), ValueError, ["target", "[B] = [40]", "(3,)"], id="ev-B"
    ),
    pytest.param(lambda: ee.evaluate(RULE, -SPIKES), ValueError, ["spikes", ">= 0"], id="evaluate-negative"),
    pytest.param(lambda: ee.run(lambda x: x, SPIKES[:4], RULE), ValueError, ["inputs", "T = 6", "4"], id="run-T"),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(39, 3)), ValueError, ["step_spikes", "B = 40", "(39, 3)"], id="upd-B"
    ),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(40, 4)), ValueError, ["step_spikes", "C = 3", "(40, 4)"], id="upd-N"
    ),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(1, 40, 3)), ValueError, ["step_spikes", "(1, 40, 3)"], id="upd-3d"
    ),
    pytest.param(
        lambda: RULE.start(40).update(torch.zeros(40, 3, dtype=torch.long)), TypeError, ["step_spikes"], id="upd-int"
    ),
    pytest.param(lambda: RULE.start(40).update(SPIKES.numpy()[0]), TypeError, ["step_spikes"], id="update-numpy"),
    pytest.param(
        lambda: RULE.start(40).update(-torch.ones(40, 3)), ValueError, ["step_spikes", ">= 0"], id="update-negative"
    ),
    pytest.param(
        lambda: _finished_state().update(SPIKES[0]), RuntimeError, ["already received all T = 6"], id="update-after-T"
    ),
    pytest.param(lambda: RULE.start(40).report(), RuntimeError, ["not every sample has exited"], id="report-early"),
    pytest.param(lambda: RULE.start(0), ValueError, ["batch_size", "0"], id="start-empty"),
]


@pytest.mark.parametrize(("call", "exception", "words"), BAD_CALLS)
def test_bad_input_is_refused_with_a_clear_message(call, exception, words):
    with pytest.raises(exception) as error:
        call()
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_boundaries_that_are_accepted():
    # alpha = 0 is the accuracy method's lower end; the smallest conformal calibration set is accepted.
    assert ee.calibrate(SPIKES, TARGET, method="accuracy", alpha=0).alpha == 0
    assert ee.calibrate(SPIKES[:, :39], TARGET[:39], method="conformal", alpha=0.1).calibration_size == 39
    # Missing T - 1 is appended.
    assert ee.calibrate(SPIKES, TARGET, method="accuracy", alpha=0.1, checkpoints=[1, 3]).checkpoints == [1, 3, 5]
