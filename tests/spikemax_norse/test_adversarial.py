"""Adversarial properties of the Norse adapter: options validated when a module is built (naming the option),
Norse's (spikes, state) tuples told apart from state NamedTuples, and ``run_early_exit`` against the rule
semantics. Norse is imported inside the ``norse_torch`` fixture: without it these tests skip."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import spikemax_plugins as smx
from spikemax_plugins import early_exit, reference

from ..adapter_support import (
    check_early_exit_report,
    early_exit_case,
    early_exit_runs,
)
from ..spikemax_plugins.adversarial.loss_oracle import (
    LossCall,
    check_loss_result,
    loss_calls,
    loss_oracle,
    module_weight_faults,
)
from ..spikemax_plugins.adversarial.oracles import (
    check_choice_option,
    check_int_option,
    check_num_classes_option,
    check_real_option,
    check_smoothing_option,
    check_time_dim_option,
)
from ..spikemax_plugins.adversarial.support import (
    NAN,
    VALID,
    Faults,
    classify,
    expect_clear_error,
    record_valid,
)


@pytest.fixture(scope="module")
def norse_torch():
    norse = pytest.importorskip("norse.torch", reason="the Norse adapter tests need Norse")
    import spikemax_norse  # noqa: F401

    return norse


# ===================================================================================================== Norse


class _Other(NamedTuple):
    a: torch.Tensor
    b: torch.Tensor | None


@st.composite
def norse_wrapped_spikes(draw, spikes: torch.Tensor):
    """(value passed as spikes, accepted?): the spikes, Norse-style (spikes, state) tuples, and look-alikes."""
    from norse.torch.functional.lif import LIFFeedForwardState, LIFState

    state = LIFFeedForwardState(v=torch.zeros(2), i=torch.zeros(2))
    recurrent = LIFState(z=torch.zeros(2), v=torch.zeros(2), i=torch.zeros(2))
    accepted = [
        ("tensor", spikes),
        ("(spikes, None)", (spikes, None)),
        ("(spikes, LIFFeedForwardState)", (spikes, state)),
        ("(spikes, LIFState)", (spikes, recurrent)),
        ("(spikes, [states])", (spikes, [state, None, recurrent])),
        ("(spikes, nested)", (spikes, [[state], (None, state)])),
        ("(spikes, other NamedTuple)", (spikes, _Other(torch.zeros(1), None))),
        ("(spikes, [])", (spikes, [])),
    ]
    refused = [
        ("LIFFeedForwardState(spikes, ...)", LIFFeedForwardState(v=spikes, i=spikes)),
        ("LIFState", LIFState(z=spikes, v=spikes, i=spikes)),
        ("(spikes,)", (spikes,)),
        ("(spikes, None, None)", (spikes, None, None)),
        ("(state, spikes)", (state, spikes)),
        ("(spikes, spikes)", (spikes, spikes)),
        ("(spikes, [tensor])", (spikes, [spikes])),
        ("(spikes, 3)", (spikes, 3)),
        ("(spikes, 'state')", (spikes, "state")),
        ("[spikes, None]", [spikes, None]),
        ("(list, None)", ([[[0.0]]], None)),
        ("dict", {"spikes": spikes}),
        ("()", ()),
    ]
    if draw(st.integers(0, 2)) == 0:
        name, value = draw(st.sampled_from(refused))
        return name, value, False
    name, value = draw(st.sampled_from(accepted))
    return name, value, True


@pytest.mark.parametrize("entry", ["SpikeMaxGLoss", "SpikeMaxSLoss", "MSECountLoss", "spikemax_g", "spikemax_s"])
@given(data=st.data())
def test_norse_losses_unwrap_only_spikes_state_tuples(norse_torch, entry, data):
    """(5) The Norse losses take a tensor or a Norse module's (spikes, state) tuple; a state NamedTuple (whose
    first field is a voltage) and other look-alikes are refused with a TypeError naming the spikes. Unwrapped
    calls equal the reference (or raise clear errors) as in the core."""
    kind = {"SpikeMaxGLoss": "spikemax_g", "SpikeMaxSLoss": "spikemax_s", "MSECountLoss": "mse_count",
            "spikemax_g": "spikemax_g", "spikemax_s": "spikemax_s"}[entry]
    call: LossCall = data.draw(loss_calls(kind))
    spikes, target, weight = call.spikes.value, call.target.value, call.weight.value
    wrapped_name, wrapped, accepted = data.draw(norse_wrapped_spikes(spikes)) if isinstance(spikes, torch.Tensor) \
        else ("not a tensor", spikes, True)
    oracle = loss_oracle(kind, spikes, target, weight, call.options)
    faults = Faults(list(oracle.faults.structural), list(oracle.faults.value))
    if not accepted:
        faults.structural = [f for f in faults.structural if f.name != "spikes"]
        faults.add("spikes", f"{wrapped_name} is not spikes or (spikes, state)")
    meta = any(isinstance(x, torch.Tensor) and x.is_meta for x in (spikes, target, weight))
    label = f"adapters/norse/{entry}"
    with smx.value_checks(call.checks_on):
        if entry[0].isupper():
            init_faults = Faults(list(oracle.option_faults.structural))
            module_weight_faults(init_faults, weight, oracle.options)
            outcome, module = classify(f"{label}/init", lambda: getattr(norse_torch, entry)(weight=weight,
                                                                                           **call.options),
                                       init_faults, values_checked=call.checks_on and not (
                                           isinstance(weight, torch.Tensor) and weight.is_meta))
            if outcome != VALID:
                return

            def invoke():
                return module(wrapped, target)
        else:
            def invoke():
                return getattr(norse_torch.functional, entry)(wrapped, target, weight=weight, **call.options)
        if not accepted and not oracle.option_faults.structural:
            # Refused wrappers: the error is about the wrapper, whatever else is wrong with the call.
            faults = Faults([f for f in faults.structural if f.name == "spikes"])
        outcome, result = classify(label, invoke, faults, values_checked=call.checks_on and not meta)
    if outcome == VALID:
        check_loss_result(kind, call, oracle, result)


def test_norse_losses_accept_genuine_norse_outputs_and_refuse_recorded_states(norse_torch):
    """Real Norse modules: LIF's (spikes, state), SequentialState's (spikes, [states]) and LIF(record_states=True)'s
    (spikes, recorded states) are accepted; the recorded state NamedTuple on its own is refused."""
    torch.manual_seed(1)
    inputs = torch.rand(6, 3, 4) * 3
    outputs = {
        "LIF": norse_torch.LIF()(inputs),
        "LIFRecurrent": norse_torch.LIFRecurrent(4, 4)(inputs),
        "SequentialState": norse_torch.SequentialState(nn.Linear(4, 4), norse_torch.LIF())(inputs),
        "LIF(record_states=True)": norse_torch.LIF(record_states=True)(inputs),
    }
    target = torch.tensor([0, 1, 3])
    for name, output in outputs.items():
        spikes = output[0]
        expected = reference.spikemax_g(spikes.double().detach().numpy(), target.numpy(), smoothing=0.5)
        got = norse_torch.SpikeMaxGLoss(smoothing=0.5)(output, target)
        assert got.item() == pytest.approx(float(expected), rel=1e-5), name
        record_valid(f"adapters/norse/genuine {name}")
    _, recorded = outputs["LIF(record_states=True)"]
    expect_clear_error("adapters/norse/recorded state alone", lambda: norse_torch.SpikeMaxGLoss()(recorded, target),
                       "spikes")


class _ReplayCell(nn.Module):
    """A Norse-style one-step cell, (output, state) = cell(input, state), whose output is its input."""

    def __init__(self, bad_output: bool = False):
        super().__init__()
        self.calls = 0
        self.bad_output = bad_output

    def forward(self, x, state=None):
        self.calls += 1
        if self.bad_output:
            return x
        return x, (0 if state is None else state + 1)


@given(case=early_exit_runs())
def test_norse_run_early_exit_adversarial(norse_torch, case):
    import spikemax_norse

    values, rule, time_dim, target, breakage = case
    inputs, rule_arg, time_dim, target, faults = early_exit_case(values, rule, time_dim, target, breakage)
    cell = _ReplayCell()
    model = (lambda x, s: (x, s)) if breakage == "net" else cell
    outcome, report = classify("adapters/norse/run_early_exit", lambda: spikemax_norse.run_early_exit(
        model, inputs, rule_arg, target=target, time_dim=time_dim), faults, values_checked=True)
    if outcome == VALID:
        check_early_exit_report(report, rule, values, target, cell.calls)


@pytest.mark.parametrize("model", ["LIF", "SequentialState with LIF", "no tuple"])
def test_norse_run_early_exit_refuses_time_looping_modules_and_bad_cells(norse_torch, model):
    import spikemax_norse

    rule = early_exit.ExitRule(checkpoints=[3], thresholds=[0.5], max_set_size=1, score="probability",
                               smoothing=1.0, num_classes=2, num_steps=4)
    models = {"LIF": norse_torch.LIF(), "no tuple": _ReplayCell(bad_output=True),
              "SequentialState with LIF": norse_torch.SequentialState(nn.Linear(2, 2), norse_torch.LIF())}
    expect_clear_error(f"adapters/norse/run_early_exit {model}", lambda: spikemax_norse.run_early_exit(
        models[model], torch.rand(4, 3, 2), rule), "model")


def test_norse_run_early_exit_on_a_cell_network_equals_evaluate_on_its_recording(norse_torch):
    import spikemax_norse

    torch.manual_seed(2)
    model = norse_torch.SequentialState(nn.Linear(6, 3), norse_torch.LIFCell())
    inputs = torch.rand(12, 5, 6) * 3
    state = None
    steps = []
    with torch.no_grad():
        for step in inputs:
            out, state = model(step, state)
            steps.append(out)
    recording = torch.stack(steps)
    rule = early_exit.ExitRule(checkpoints=[3, 7, 11], thresholds=[1.0, 1.0, 0.5], max_set_size=2,
                               score="margin", smoothing=0.0, num_classes=3, num_steps=12)
    target = torch.tensor([0, 1, 2, 0, 1])
    report = spikemax_norse.run_early_exit(model, inputs, rule, target=target)
    expected = early_exit.evaluate(rule, recording, target)
    assert torch.equal(report.exit_step, expected.exit_step) and torch.equal(report.prediction, expected.prediction)
    assert report.coverage == expected.coverage
    record_valid("adapters/norse/run_early_exit cells")


@pytest.mark.parametrize("option", ["weight", "window", "mode", "temperature", "smoothing", "num_classes",
                                    "time_dim", "reduction", "label_smoothing", "stride"])
@given(value=st.sampled_from([[1.0, 2.0], torch.tensor([1, 2]), torch.tensor([NAN, 1.0]), 0, -1, "bad", True, NAN,
                              None, 1e40]))
def test_norse_modules_validate_options_when_built(norse_torch, option, value):
    """(14) for Norse: SpikeMaxSLoss(option=bad) fails when built, naming the option."""
    options = {"window": 2, option: value}
    faults = Faults()
    parsed_classes = None
    if option == "weight":
        module_weight_faults(faults, value, {"num_classes_ok": True, "num_classes": None})
    elif option in ("window", "stride"):
        check_int_option(faults, option, value, 1)
    elif option == "mode":
        check_choice_option(faults, "mode", value, ("probability", "softmax"))
    elif option == "reduction":
        check_choice_option(faults, "reduction", value, ("mean", "sum", "none"))
    elif option == "temperature":
        check_real_option(faults, "temperature", value, 1e-4, 1e4)
    elif option == "label_smoothing":
        check_real_option(faults, "label_smoothing", value, 0, 1)
    elif option == "smoothing":
        check_smoothing_option(faults, value)
    elif option == "num_classes":
        _, parsed_classes = check_num_classes_option(faults, value)
    else:
        check_time_dim_option(faults, value)
    classify("adapters/norse/SpikeMaxSLoss init", lambda: norse_torch.SpikeMaxSLoss(**options), faults,
             values_checked=True)
