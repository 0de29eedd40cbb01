"""spikemax_norse.stream_early_exit: continuous batching over Norse cell models decides exactly as the full
recording does (``early_exit.evaluate``); a reused row starts from the cells' initial state (``v = v_leak``)."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from spikemax_plugins import early_exit

from .. import stream_support as harness
from ..stream_support import NUM_CLASSES, NUM_FEATURES, NUM_SAMPLES

norse = pytest.importorskip("norse.torch", reason="the Norse adapter tests need Norse")
import spikemax_norse  # noqa: E402

HIDDEN, V_LEAK = 8, 0.5


def _class_bias(linear: nn.Linear, gain: float = 2.0) -> nn.Linear:
    """Scale the weights up and make inputs of class c drive the neurons of class c."""
    rows, columns = linear.weight.shape
    with torch.no_grad():
        linear.weight.mul_(gain).add_((torch.arange(rows)[:, None] % NUM_CLASSES == torch.arange(columns) % NUM_CLASSES)
                                      * gain)
    return linear


def make_model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "feed-forward":  # the first cell leaks towards 0.5, not 0: its initial voltage is 0.5
        leaky = norse.LIFParameters(v_leak=torch.tensor(V_LEAK))
        model = norse.SequentialState(_class_bias(nn.Linear(NUM_FEATURES, HIDDEN)), norse.LIFCell(leaky),
                                      _class_bias(nn.Linear(HIDDEN, NUM_CLASSES)), norse.LIFCell())
    elif kind == "nested":
        leaky = norse.LIFParameters(v_leak=torch.tensor(V_LEAK))
        inner = norse.SequentialState(_class_bias(nn.Linear(NUM_FEATURES, HIDDEN)), norse.LIFCell(leaky))
        model = norse.SequentialState(inner, _class_bias(nn.Linear(HIDDEN, NUM_CLASSES)), norse.LIFCell())
    elif kind == "recurrent":
        model = norse.SequentialState(_class_bias(nn.Linear(NUM_FEATURES, HIDDEN)),
                                      norse.LIFRecurrentCell(HIDDEN, NUM_CLASSES))
        with torch.no_grad():
            model[1].input_weights.mul_(2.0)
    elif kind == "single cell":  # 6 output neurons, 2 a class
        model = norse.LIFBoxCell()
    else:
        raise AssertionError(kind)
    # float32: Norse 1.0.0 keeps its neuron parameters outside the module's buffers, so .double() leaves v_leak
    # (and with it the state and the spikes) in float32.
    return model


def make_data(kind: str, seed: int = 0):
    inputs, target = harness.make_data(seed, dtype=torch.float32)
    return (inputs * 6.0 if kind == "single cell" else inputs), target


def recording(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The full recording ``[T, B, N]``: ``model(inputs[t], state)`` from ``state=None``."""
    state, outputs = None, []
    with torch.no_grad():
        for step in inputs:
            output, state = model(step, state)
            outputs.append(output)
    return torch.stack(outputs)


def streamer(model: nn.Module):
    return lambda inputs, rule, **options: spikemax_norse.stream_early_exit(model, inputs, rule, **options)


KINDS = ["feed-forward", "nested", "recurrent", "single cell"]


@pytest.mark.parametrize("kind", KINDS)
def test_stream_equals_the_full_recording(kind):
    model = make_model(kind)
    inputs, target = make_data(kind)
    harness.assert_stream_equals_recording(streamer(model), recording(model, inputs), inputs, target)


@pytest.mark.parametrize("kind", ["feed-forward", "recurrent"])
def test_a_reused_row_starts_from_the_initial_state(kind):
    model = make_model(kind)
    inputs, target = make_data(kind, seed=1)
    harness.assert_order_does_not_matter(streamer(model), inputs, target)


def test_reset_rows_writes_each_cells_initial_state_v_leak_included():
    model = make_model("feed-forward")
    slots = spikemax_norse._NorseSlots(model)
    inputs, _ = make_data("feed-forward")
    for step in inputs[:4]:
        slots.step(step)
    before = slots.state
    assert before[0] is None and before[2] is None  # the Linear layers
    assert not torch.equal(before[1].v, torch.full_like(before[1].v, V_LEAK))
    slots.reset_rows(torch.tensor([1, 3]))
    reset, kept = [1, 3], [0, 2, 4, 5, 6, 7, 8, 9]
    for layer, v_leak in ((1, V_LEAK), (3, 0.0)):
        for field, old in zip(slots.state[layer], before[layer], strict=True):
            assert field.dtype == torch.float32 and field.shape == old.shape
            assert torch.equal(field[kept], old[kept])
        assert torch.equal(slots.state[layer].v[reset], torch.full((2, old.shape[1]), v_leak, dtype=torch.float32))
        assert torch.equal(slots.state[layer].i[reset], torch.zeros(2, old.shape[1], dtype=torch.float32))
    after_reset = slots.state
    slots.keep_rows(torch.tensor([0, 3]))
    assert torch.equal(slots.state[1].v, after_reset[1].v[[0, 3]])
    assert slots.state[0] is None
    slots.close()
    assert not model[1]._forward_pre_hooks


def test_the_hooks_are_removed_even_when_the_stream_fails():
    model = make_model("feed-forward")
    inputs, _ = make_data("feed-forward")
    with pytest.raises(ValueError, match="slots must be >= 1"):
        spikemax_norse.stream_early_exit(model, inputs, harness.hand_rule(), slots=0)
    assert not model[1]._forward_pre_hooks and not model[3]._forward_pre_hooks


def test_core_argument_errors_reach_the_user_unchanged():
    inputs, target = make_data("feed-forward")
    harness.assert_core_errors_surface(streamer(make_model("feed-forward")), inputs, target)


def test_stream_refuses_what_it_cannot_step():
    inputs, _ = make_data("feed-forward")
    rule = harness.hand_rule()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        spikemax_norse.stream_early_exit(lambda x, s: (x, s), inputs, rule, slots=2)
    looping = norse.SequentialState(nn.Linear(NUM_FEATURES, NUM_CLASSES), norse.LIF())
    with pytest.raises(TypeError, match=r"time-looping Norse modules \(1: LIF\)"):
        spikemax_norse.stream_early_exit(looping, inputs, rule, slots=2)
    # SequentialState passes a state to torch's RNNs, whose hidden state is [layers, B, H]: not ours to reset
    rnn = norse.SequentialState(nn.Linear(NUM_FEATURES, NUM_CLASSES), nn.RNN(NUM_CLASSES, NUM_CLASSES))
    with pytest.raises(TypeError, match=r"model.1 \(RNN\) is not a Norse cell"):
        spikemax_norse.stream_early_exit(rnn, inputs.float(), rule, slots=2)

def test_stream_refuses_a_sequential_state_that_returns_every_layer():
    if "return_hidden" not in inspect.signature(norse.SequentialState).parameters:
        pytest.skip("this Norse version's SequentialState has no return_hidden (added after Norse 1.0.0)")
    inputs, _ = make_data("feed-forward")
    hidden = norse.SequentialState(nn.Linear(NUM_FEATURES, NUM_CLASSES), norse.LIFCell(), return_hidden=True)
    with pytest.raises(TypeError, match="return_hidden=True"):
        spikemax_norse.stream_early_exit(hidden, inputs, harness.hand_rule(), slots=2)


def test_stream_takes_batch_first_inputs_with_time_dim():
    model = make_model("recurrent")
    inputs, target = make_data("recurrent")
    rule = harness.hand_rule()
    expected = early_exit.evaluate(rule, recording(model, inputs), target)
    report = spikemax_norse.stream_early_exit(model, inputs.movedim(0, 1), rule, slots=3, target=target, time_dim=1)
    harness.assert_same_decisions(report, expected)
    assert report.sample_steps_simulated < NUM_SAMPLES * inputs.shape[0]


@pytest.mark.cuda
def test_stream_on_cuda_equals_the_full_recording():
    model = make_model("feed-forward").cuda()
    inputs, target = make_data("feed-forward")
    inputs, target = inputs.cuda(), target.cuda()
    rule = harness.hand_rule()
    expected = early_exit.evaluate(rule, recording(model, inputs), target)
    for slots in (3, NUM_SAMPLES + 5):
        report = spikemax_norse.stream_early_exit(model, inputs, rule, slots=slots, target=target)
        harness.assert_same_decisions(report, expected)
        assert report.exit_step.device.type == "cuda"
