"""``time_dim``: every loss, metric, module and early-exit function takes spikes in any layout (issue 13)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

import spikemax_plugins as smx
from spikemax_plugins import early_exit

from .strategies import spike_problems

# layout name -> (permutation of a time-first [T, B, N] tensor, time_dim)
LAYOUTS = {
    "lava-dl [B, N, T]": ((1, 2, 0), -1),
    "batch-first [B, T, N]": ((1, 0, 2), 1),
    "time-first [T, B, N]": ((0, 1, 2), 0),
}

RULE = early_exit.ExitRule(
    checkpoints=[1, 4, 7], thresholds=torch.tensor([0.6, 0.5, 0.4]), max_set_size=1, score="probability",
    smoothing=1.0, num_classes=3, num_steps=8,
)

# name -> f(spikes, target, time_dim): every public function, module and early-exit entry point.
CALLS = {
    "spikemax_g": lambda s, y, d: smx.spikemax_g(s, y, time_dim=d, reduction="none"),
    "spikemax_g smoothing 0": lambda s, y, d: smx.spikemax_g(s, y, time_dim=d, smoothing=0.0, reduction="none"),
    "spikemax_s": lambda s, y, d: smx.spikemax_s(s, y, window=3, stride=2, time_dim=d, reduction="none"),
    "mse_count": lambda s, y, d: smx.mse_count(s, y, true_rate=0.5, false_rate=0.1, time_dim=d, reduction="none"),
    "SpikeMaxGLoss": lambda s, y, d: smx.SpikeMaxGLoss(time_dim=d, reduction="sum")(s, y),
    "SpikeMaxSLoss": lambda s, y, d: smx.SpikeMaxSLoss(window=2, time_dim=d)(s, y),
    "MSECountLoss": lambda s, y, d: smx.MSECountLoss(true_rate=0.5, false_rate=0.0, time_dim=d)(s, y),
    "spike_counts": lambda s, y, d: smx.spike_counts(s, time_dim=d),
    "predict": lambda s, y, d: smx.predict(s, time_dim=d),
    "accuracy": lambda s, y, d: smx.accuracy(s, y, time_dim=d),
    "accuracy_over_time": lambda s, y, d: smx.accuracy_over_time(s, y, time_dim=d),
    "time_to_decision": lambda s, y, d: smx.time_to_decision(s, time_dim=d),
    "synaptic_operations": lambda s, y, d: smx.synaptic_operations([s, s], [2.0, 3.0], time_dim=d),
    "calibrate": lambda s, y, d: early_exit.calibrate(s, y, method="accuracy", alpha=0.1, time_dim=d).thresholds,
    "evaluate": lambda s, y, d: early_exit.evaluate(RULE, s, y, time_dim=d).exit_step,
    "run": lambda s, y, d: early_exit.run(lambda x: x, s, RULE, time_dim=d).prediction,
}


def _time_first_problem():
    generator = torch.Generator().manual_seed(1)
    spikes = (torch.rand(8, 5, 3, generator=generator, dtype=torch.float64) < 0.4).double()
    return spikes, torch.tensor([0, 2, 1, 1, 0])


@pytest.mark.parametrize("layout", [name for name in LAYOUTS if not name.startswith("time-first")])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_function_gives_the_time_first_result_in_other_layouts(name, layout):
    spikes, target = _time_first_problem()
    permutation, time_dim = LAYOUTS[layout]
    expected = CALLS[name](spikes, target, 0)
    actual = CALLS[name](spikes.permute(*permutation), target, time_dim)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@given(problem=spike_problems(max_steps=12, max_batch=5, max_classes=6), window=st.integers(1, 12))
def test_gradients_flow_back_in_the_caller_layout(problem, window):
    spikes = problem.torch_spikes()
    window = min(window, spikes.shape[0])
    lava = spikes.permute(1, 2, 0).clone().requires_grad_()  # [B, N, T], as lava-dl produces it
    time_first = spikes.clone().requires_grad_()
    smx.spikemax_s(lava, problem.torch_target(), window=window, num_classes=problem.num_classes, time_dim=-1).backward()
    smx.spikemax_s(time_first, problem.torch_target(), window=window, num_classes=problem.num_classes).backward()
    assert lava.grad.shape == lava.shape
    torch.testing.assert_close(lava.grad, time_first.grad.permute(1, 2, 0))


def test_confidence_comes_back_in_the_input_layout():
    spikes, _ = _time_first_problem()
    expected = early_exit.confidence(spikes)  # [T, B, C]
    torch.testing.assert_close(early_exit.confidence(spikes.permute(1, 2, 0), time_dim=-1), expected.permute(1, 2, 0))
    torch.testing.assert_close(early_exit.confidence(spikes.permute(1, 0, 2), time_dim=1), expected.permute(1, 0, 2))


class LargeOutputSpy(TorchDispatchMode):
    """Records the aten operations that allocate an output of at least ``numel`` elements (views do not count)."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel = numel
        self.operations: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        inputs = [value for value in (*args, *(kwargs or {}).values()) if isinstance(value, torch.Tensor)]
        storages = {value.untyped_storage().data_ptr() for value in inputs}
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            new = isinstance(tensor, torch.Tensor) and tensor.untyped_storage().data_ptr() not in storages
            if new and tensor.numel() >= self.numel:
                self.operations.append(str(func))
        return output


@pytest.mark.parametrize(
    "name", ["spikemax_g", "mse_count", "SpikeMaxGLoss", "spike_counts", "predict", "accuracy"]
)
def test_whole_window_functions_never_copy_the_spikes_to_change_layout(name):
    generator = torch.Generator().manual_seed(2)
    lava = (torch.rand(64, 10, 200, generator=generator) < 0.2).float()  # [B, C, T]
    target = torch.randint(0, 10, (64,), generator=generator)
    with LargeOutputSpy(lava.numel()) as spy:
        CALLS[name](lava, target, -1)
    assert spy.operations == []  # the time sum reads the strided view; nothing of size B * C * T is made


def test_batch_first_spikes_get_a_layout_hint():
    spikes = torch.rand(32, 100, 10)  # [B, T, N] passed as if it were [T, B, N]
    with pytest.raises(ValueError, match=r"must be \[B\] = \[100\].*dimension 0 has the target's length 32: if the "
                                         r"spikes are \[B, T, N\] \(time_dim=1\) or \[B, N, T\] \(time_dim=2\)"):
        smx.spikemax_g(spikes, torch.zeros(32, dtype=torch.long))
    torch.testing.assert_close(
        smx.spikemax_g(spikes, torch.zeros(32, dtype=torch.long), time_dim=1),
        smx.spikemax_g(spikes.transpose(0, 1), torch.zeros(32, dtype=torch.long)),
    )


@pytest.mark.parametrize("time_dim, error", [(3, ValueError), (-4, ValueError), (1.0, TypeError), (True, TypeError)])
def test_bad_time_dim_is_refused_by_name(time_dim, error):
    with pytest.raises(error, match=r"time_dim must be"):
        smx.spikemax_g(torch.rand(4, 2, 3), torch.tensor([0, 1]), time_dim=time_dim)
    with pytest.raises(error, match=r"time_dim must be"):
        smx.SpikeMaxGLoss(time_dim=time_dim)
