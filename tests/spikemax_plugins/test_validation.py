"""Bad input raises ValueError/TypeError naming the argument and the expected vs actual value."""

import math

import pytest
import torch

import spikemax_plugins as smx

SPIKES = torch.zeros(6, 3, 4)
TARGET = torch.tensor([0, 1, 3])


def _with(**overrides):
    arguments = {"spikes": SPIKES, "target": TARGET}
    arguments.update(overrides)
    return arguments


ALL_LOSSES = [
    pytest.param(lambda **kw: smx.spikemax_g(kw.pop("spikes"), kw.pop("target"), **kw), id="spikemax_g"),
    pytest.param(
        lambda **kw: smx.spikemax_s(kw.pop("spikes"), kw.pop("target"), **{"window": 2, **kw}), id="spikemax_s"
    ),
    pytest.param(
        lambda **kw: smx.mse_count(kw.pop("spikes"), kw.pop("target"), true_rate=1.0, false_rate=0.0, **kw),
        id="mse_count",
    ),
]

# (arguments, exception, words the message must contain)
BAD_INPUTS = [
    pytest.param(_with(spikes=SPIKES[0]), ValueError, ["spikes", "[T, B, N]", "(3, 4)"], id="rank-2"),
    pytest.param(_with(spikes=SPIKES[None]), ValueError, ["spikes", "[T, B, N]", "(1, 6, 3, 4)"], id="rank-4"),
    pytest.param(_with(spikes=SPIKES.long()), TypeError, ["spikes", "floating", "torch.int64"], id="int-spikes"),
    pytest.param(_with(spikes=SPIKES.numpy()), TypeError, ["spikes", "Tensor", "ndarray"], id="numpy-spikes"),
    pytest.param(_with(spikes=torch.zeros(0, 3, 4)), ValueError, ["spikes", "T = 0"], id="no-steps"),
    pytest.param(
        _with(spikes=torch.zeros(6, 0, 4), target=torch.zeros(0, dtype=torch.long)),
        ValueError,
        ["spikes", "B = 0"],
        id="empty-batch",
    ),
    pytest.param(_with(target=TARGET[:2]), ValueError, ["target", "[B] = [3]", "(2,)"], id="batch-mismatch"),
    pytest.param(_with(target=torch.tensor([0, 1, 4])), ValueError, ["target", "[0, 3]", "4"], id="target-too-large"),
    pytest.param(_with(target=torch.tensor([0, -1, 2])), ValueError, ["target", "[0, 3]", "-1"], id="target-negative"),
    pytest.param(
        _with(target=torch.tensor([True, False, True])), TypeError, ["target", "torch.bool"], id="bool-target"
    ),
    pytest.param(
        _with(target=torch.full((3, 5), 0.2)), ValueError, ["target", "[B, C] = [3, 4]", "(3, 5)"], id="soft-shape"
    ),
    pytest.param(_with(target=torch.full((3, 4), 0.3)), ValueError, ["soft target", "sum to 1", "1.2"], id="soft-sum"),
    pytest.param(
        _with(target=torch.tensor([[1.5, -0.5, 0, 0]] * 3)),
        ValueError,
        ["soft target", ">= 0", "-0.5"],
        id="soft-negative",
    ),
    pytest.param(
        _with(spikes=SPIKES - 0.5), ValueError, ["spikes must be >= 0", "got a spike count of -"], id="negative-spikes"
    ),
    pytest.param(_with(spikes=SPIKES + math.nan), ValueError, ["spikes", "finite", "NaN"], id="nan-spikes"),
    pytest.param(_with(spikes=SPIKES + math.inf), ValueError, ["spikes", "finite", "inf"], id="inf-spikes"),
    pytest.param(_with(weight=torch.ones(3)), ValueError, ["weight", "[C] = [4]", "(3,)"], id="weight-length"),
    pytest.param(_with(weight=torch.ones(4, dtype=torch.long)), TypeError, ["weight", "torch.int64"], id="int-weight"),
    pytest.param(
        _with(num_classes=3), ValueError, ["N = 4", "divisible", "num_classes = 3"], id="population-indivisible"
    ),
    pytest.param(_with(num_classes=1), ValueError, ["num_classes", ">= 2", "1"], id="one-class"),
    pytest.param(_with(reduction="avg"), ValueError, ["reduction", "'mean'", "'avg'"], id="reduction"),
    pytest.param(
        _with(target=torch.tensor([0, 1, 3], device="meta")), ValueError, ["target", "meta", "cpu"], id="target-device"
    ),
]


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("arguments, exception, words", BAD_INPUTS)
def test_bad_input_is_refused_with_a_clear_message(loss, arguments, exception, words):
    with pytest.raises(exception) as error:
        loss(**dict(arguments))
    for word in words:
        assert word in str(error.value), f"{word!r} not in {error.value}"


SPIKEMAX_ONLY = [
    pytest.param({"mode": "logit"}, ValueError, ["mode", "'probability'", "'logit'"], id="mode"),
    pytest.param({"temperature": 0.0}, ValueError, ["temperature", ">= 0.0001 and <= 10000", "0.0"], id="temp-zero"),
    pytest.param({"temperature": math.inf}, ValueError, ["temperature", "finite", "inf"], id="temperature-inf"),
    pytest.param({"smoothing": -1.0}, ValueError, ["smoothing", ">= 1e-30", "or exactly 0", "-1.0"], id="smoothing"),
    pytest.param({"label_smoothing": 1.5}, ValueError, ["label_smoothing", "<= 1", "1.5"], id="label-smoothing"),
    pytest.param({"temperature": "1"}, TypeError, ["temperature", "real number", "str"], id="temperature-type"),
]


@pytest.mark.parametrize("arguments, exception, words", SPIKEMAX_ONLY)
def test_bad_spikemax_options(arguments, exception, words):
    for loss in (smx.spikemax_g, lambda s, t, **kw: smx.spikemax_s(s, t, window=2, **kw)):
        with pytest.raises(exception) as error:
            loss(SPIKES, TARGET, **arguments)
        for word in words:
            assert word in str(error.value)


@pytest.mark.parametrize(
    "window, stride, exception, words",
    [
        (0, 1, ValueError, ["window", ">= 1", "got 0"]),
        (7, 1, ValueError, ["window", "<= 6", "7"]),
        (2, 0, ValueError, ["stride", ">= 1", "0"]),
        (2.0, 1, TypeError, ["window", "int", "float"]),
        (None, 1, TypeError, ["window", "None"]),
    ],
)
def test_bad_window_or_stride(window, stride, exception, words):
    with pytest.raises(exception) as error:
        smx.spikemax_s(SPIKES, TARGET, window=window, stride=stride)
    for word in words:
        assert word in str(error.value)


def test_bad_rates():
    with pytest.raises(ValueError, match=r"true_rate must be finite and >= 0 and <= 1e\+06 .*, got -0.1"):
        smx.mse_count(SPIKES, TARGET, true_rate=-0.1, false_rate=0.0)


def test_metrics_validate_too():
    with pytest.raises(ValueError, match=r"spikes must be >= 0"):
        smx.predict(SPIKES - 1)
    with pytest.raises(TypeError, match=r"integer class indices"):
        smx.accuracy(SPIKES, torch.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"target class indices must be in \[0, 3\]"):
        smx.accuracy_over_time(SPIKES, torch.tensor([0, 9, 1]))
    with pytest.raises(ValueError, match=r"fan_out must have one entry per layer \(2\), got 1"):
        smx.synaptic_operations([SPIKES, SPIKES], [3])
    with pytest.raises(ValueError, match=r"layer_spikes\[1\] must share T and B"):
        smx.synaptic_operations([SPIKES, torch.zeros(5, 3, 2)], [3, 1])
    with pytest.raises(TypeError, match=r"layer_spikes must be a sequence \(list or tuple\) of spike tensors"):
        smx.synaptic_operations(SPIKES, [3])


def test_negative_spikes_are_read_from_the_counts_the_loss_uses():
    """The check reads the counts the loss depends on: window counts see a negative spike that the total hides."""
    spikes = torch.zeros(6, 3, 4)
    spikes[0, :, 0] = 2.0
    spikes[3, :, 0] = -1.0  # class 0's total count is 1, its window [3, 3] count is -1
    assert torch.isfinite(smx.spikemax_g(spikes, TARGET))
    with pytest.raises(ValueError, match=r"spikes must be >= 0 \(spike counts\), got a spike count of -1$"):
        smx.spikemax_s(spikes, TARGET, window=1)
