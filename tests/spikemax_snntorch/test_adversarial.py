"""Adversarial properties of the snnTorch and Norse adapters: options validated when a loss is built (naming the
option), calls checked against the NumPy reference through the core's oracle, Norse's (spikes, state) tuples
told apart from state NamedTuples, and ``run_early_exit`` against the rule semantics.

Every test name contains "snntorch" or "norse" (tox selects them with ``-k``); each host is imported inside its
tests, so that an environment without one of them skips only that host's tests.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import spikemax_plugins as smx
from spikemax_plugins import early_exit, reference

from ..core.adversarial_support import (
    INDEX_DTYPES,
    NAN,
    VALID,
    Faults,
    check_choice_option,
    check_int_option,
    check_num_classes_option,
    check_real_option,
    check_smoothing_option,
    check_spike_tensor,
    check_target_tensor,
    check_target_values,
    check_time_dim_option,
    classify,
    expect_clear_error,
    mixed,
    np_evaluate,
    record_valid,
    running_grouped,
    seeds,
    spike_values,
)
from ..core.test_adversarial import (
    LossCall,
    check_loss_result,
    exit_rules,
    loss_calls,
    loss_oracle,
    module_weight_faults,
)


@pytest.fixture(scope="module")
def sf():
    pytest.importorskip("snntorch", reason="the snnTorch adapter tests need snnTorch")
    import snntorch.functional as snntorch_functional
    import spikemax_snntorch  # noqa: F401  (registers the names)

    return snntorch_functional


@pytest.fixture(scope="module")
def norse_torch():
    norse = pytest.importorskip("norse.torch", reason="the Norse adapter tests need Norse")
    import spikemax_norse  # noqa: F401

    return norse


# ================================================================================================== snnTorch


@st.composite
def snntorch_loss_builds(draw, sliding: bool):
    """(LossCall with core options, snnTorch keyword arguments): population_code / num_classes in snnTorch's
    convention, every other option as the core's, sometimes adversarial."""
    call: LossCall = draw(loss_calls("spikemax_s" if sliding else "spikemax_g"))
    options = dict(call.options)
    core_classes = options.pop("num_classes")
    # A population_code that is not a bool: test_snntorch_losses_validate_options_when_built[population_code].
    population_code = core_classes is not None
    options["population_code"] = population_code
    options["num_classes"] = False if core_classes is None else core_classes
    options["weight"] = call.weight.value
    return call, options


def snntorch_init_faults(sliding: bool, kwargs: dict) -> tuple[Faults, dict]:
    """Faults of building SF.spikemax_{g,s}_loss(**kwargs), and the core options it stands for."""
    faults = Faults()
    check_choice_option(faults, "mode", kwargs["mode"], ("probability", "softmax"))
    check_real_option(faults, "temperature", kwargs["temperature"], 1e-4, 1e4)
    check_smoothing_option(faults, kwargs["smoothing"])
    check_real_option(faults, "label_smoothing", kwargs["label_smoothing"], 0, 1)
    check_choice_option(faults, "reduction", kwargs["reduction"], ("mean", "sum", "none"))
    check_time_dim_option(faults, kwargs["time_dim"])
    if sliding:
        check_int_option(faults, "window", kwargs["window"], 1)
        check_int_option(faults, "stride", kwargs["stride"], 1)
    core_classes = population_faults(faults, kwargs["population_code"], kwargs["num_classes"])
    parsed = {"num_classes_ok": True, "num_classes": core_classes}
    module_weight_faults(faults, kwargs["weight"], parsed)
    core = {key: kwargs[key] for key in ("mode", "temperature", "smoothing", "label_smoothing", "reduction",
                                         "time_dim")}
    core["num_classes"] = core_classes
    if sliding:
        core["window"], core["stride"] = kwargs["window"], kwargs["stride"]
    return faults, core


def population_faults(faults: Faults, population_code, num_classes) -> int | None:
    """snnTorch's pair: population_code a bool; with it, num_classes an int >= 2 (False / 0 / None: missing);
    without it, num_classes is ignored (as snnTorch does). Returns the core's num_classes."""
    bool_like = population_code is None or isinstance(population_code, bool) or (
        isinstance(population_code, int) and population_code in (0, 1))
    if not bool_like:
        # 0 / 1 / None read as bools are fine; a string, a tensor, a list or a float are not.
        faults.add("population_code", f"{population_code!r} is not a bool")
        try:
            population_code = bool(population_code)
        except RuntimeError:
            return None
    if not population_code:
        return None
    if num_classes is False or num_classes is None or (is_number(num_classes) and num_classes == 0):
        faults.add("num_classes", "population_code=True needs num_classes")
        return None
    _, core_classes = check_num_classes_option(faults, num_classes)
    return core_classes


def is_number(value) -> bool:
    return isinstance(value, (int, float))


@pytest.mark.parametrize("sliding", [False, True], ids=["spikemax_g_loss", "spikemax_s_loss"])
@given(data=st.data())
def test_snntorch_losses_validate_when_built_and_match_the_reference(sf, sliding, data):
    """(14) A bad option fails when SF.spikemax_{g,s}_loss is built, naming it; a built loss called on mixed valid
    and adversarial spikes and targets equals the reference or raises a clear error."""
    call, kwargs = data.draw(snntorch_loss_builds(sliding))
    init_faults, core_options = snntorch_init_faults(sliding, kwargs)
    factory = sf.spikemax_s_loss if sliding else sf.spikemax_g_loss
    label = f"adapters/snntorch/{'spikemax_s_loss' if sliding else 'spikemax_g_loss'}"
    weight = kwargs["weight"]
    weight_meta = isinstance(weight, torch.Tensor) and weight.is_meta
    with smx.value_checks(call.checks_on):
        outcome, loss_fn = classify(f"{label}/init", lambda: factory(**kwargs), init_faults,
                                    values_checked=call.checks_on and not weight_meta)
        if outcome != VALID:
            return
        spikes, target = call.spikes.value, call.target.value
        # snnTorch keeps the weight where it was given; the adapter moves it to the spikes' device (not a meta
        # weight, which has no data: the core then reports the two devices).
        movable = isinstance(weight, torch.Tensor) and not weight.is_meta and isinstance(spikes, torch.Tensor)
        moved = weight.to(spikes.device) if movable else weight
        oracle = loss_oracle("spikemax_s" if sliding else "spikemax_g", spikes, target, moved, core_options)
        meta = any(isinstance(x, torch.Tensor) and x.is_meta for x in (spikes, target))
        outcome, result = classify(label, lambda: loss_fn(spikes, target), oracle.faults,
                                   values_checked=call.checks_on and not meta)
    if outcome == VALID:
        call.weight.value = moved
        if isinstance(weight, torch.Tensor) and moved is not weight:
            call.weight.leaf = None
        check_loss_result("spikemax_s" if sliding else "spikemax_g", call, oracle, result)


@pytest.mark.parametrize("spikes", [[[[1.0, 0.0]]], None, np.zeros((1, 1, 2))], ids=["list", "None", "ndarray"])
@pytest.mark.parametrize("sliding", [False, True], ids=["spikemax_g_loss", "spikemax_s_loss"])
def test_snntorch_weighted_loss_called_on_a_non_tensor(sf, sliding, spikes):
    """A loss built with a weight, called on something that is not a tensor: the same TypeError naming the spikes
    as without a weight (not an AttributeError from moving the weight to ``spk_out.device``)."""
    loss_fn = (sf.spikemax_s_loss(1, weight=torch.ones(2)) if sliding else sf.spikemax_g_loss(weight=torch.ones(2)))
    expect_clear_error("adapters/snntorch/weighted loss on a non-tensor", lambda: loss_fn(spikes, torch.tensor([0])),
                       "spikes", "spk_out")


@pytest.mark.parametrize("sliding", [False, True], ids=["spikemax_g_loss", "spikemax_s_loss"])
@given(classes=st.integers(2, 6), extra=st.sampled_from([-1, 1, 2]))
def test_snntorch_weight_length_is_checked_when_built(sf, sliding, classes, extra):
    """With population_code=True and num_classes=C, a weight of another length is known to be wrong when the loss
    is built; the core's modules (SpikeMaxGLoss(num_classes=C, weight=...)) refuse it there, and (14) asks the
    adapter to validate its options at construction too."""
    weight = torch.ones(max(2, classes + extra))
    if weight.shape[0] == classes:
        weight = torch.ones(classes + 1)
    expect_clear_error("adapters/snntorch/core module weight length",
                       lambda: smx.SpikeMaxGLoss(num_classes=classes, weight=weight), "weight")

    def build():
        if sliding:
            return sf.spikemax_s_loss(2, population_code=True, num_classes=classes, weight=weight)
        return sf.spikemax_g_loss(population_code=True, num_classes=classes, weight=weight)

    expect_clear_error("adapters/snntorch/weight length when built", build, "weight")


@st.composite
def snntorch_metric_calls(draw):
    num_steps, batch_size, classes = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 4))
    group = draw(st.sampled_from([1, 2]))
    values = draw(spike_values((num_steps, batch_size, classes * group), exact=True))
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.bfloat16]))
    spikes = torch.tensor(values, dtype=dtype)
    if draw(st.integers(0, 9)) == 0:
        spikes = draw(st.sampled_from([spikes.tolist(), spikes.long(), spikes[0], spikes.to("meta")]))
    rng = np.random.default_rng(draw(seeds()))
    target = torch.tensor(rng.integers(0, classes, size=batch_size)).to(draw(st.sampled_from(INDEX_DTYPES)))
    if draw(st.integers(0, 9)) == 0:
        target = draw(st.sampled_from([target.float(), target[:-1], torch.full((batch_size,), classes),
                                       target.tolist()]))
    population_code = draw(st.sampled_from([group > 1 or draw(st.booleans())]))  # non-bools: their own test
    num_classes = draw(mixed([classes], [False, 0, True, 1, 2.0], odds=8)) if population_code else draw(
        st.sampled_from([False, 7, "ignored"]))
    return spikes, target, population_code, num_classes


@pytest.mark.parametrize("name", ["accuracy_over_time", "time_to_decision"])
@given(call=snntorch_metric_calls())
def test_snntorch_metrics_adversarial(sf, name, call):
    spikes, target, population_code, num_classes = call
    faults = Faults()
    core_classes = population_faults(faults, population_code, num_classes)
    problem = check_spike_tensor(faults, spikes, 0, not faults.structural, core_classes)
    uses_target = name == "accuracy_over_time"
    if uses_target:
        kind = check_target_tensor(faults, target, spikes, problem, allow_soft=False)
    labels = None
    if not faults.structural and not problem.meta:
        # The metrics check the spikes themselves (no negative spike hides in a population sum) and their counts.
        counts = running_grouped(problem.tbn, problem.classes)
        if not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any() or not np.isfinite(counts).all():
            faults.add_value("spikes", "a NaN, inf or negative spike, or an overflowing count")
        if uses_target:
            labels = check_target_values(faults, target, kind, problem.classes)
    if uses_target:
        def invoke():
            return sf.accuracy_over_time(spikes, target, population_code, num_classes)
    else:
        def invoke():
            return sf.time_to_decision(spikes, population_code, num_classes)
    meta = isinstance(spikes, torch.Tensor) and spikes.is_meta
    outcome, result = classify(f"adapters/snntorch/{name}", invoke, faults, values_checked=not meta)
    if outcome != VALID or meta:
        return
    if uses_target:
        np.testing.assert_allclose(result.numpy(), reference.accuracy_over_time(problem.tbn, labels, problem.classes),
                                   atol=1e-6)
    else:
        np.testing.assert_array_equal(result.numpy(), reference.time_to_decision(problem.tbn, problem.classes))


@pytest.mark.parametrize("name", ["accuracy_over_time", "time_to_decision"])
@pytest.mark.parametrize("population_code", ["False", torch.tensor([1, 0])], ids=repr)
def test_snntorch_metrics_population_code_must_be_a_bool(sf, name, population_code):
    """population_code is documented as a bool; a string such as "False" silently switches population coding on,
    a tensor fails inside Python's truth test. Such values must be refused by name (0, 1 and None may pass)."""
    spikes, target = torch.ones(3, 2, 4), torch.tensor([0, 1])
    call = {"accuracy_over_time": lambda: sf.accuracy_over_time(spikes, target, population_code, 2),
            "time_to_decision": lambda: sf.time_to_decision(spikes, population_code, 2)}[name]
    expect_clear_error(f"adapters/snntorch/{name} population_code", call, "population_code")


class _Replay(nn.Module):
    """A one-step 'network' whose output is its input: run_early_exit on a recording."""

    def __init__(self, as_tuple: bool):
        super().__init__()
        self.as_tuple = as_tuple
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return (x, x * 0) if self.as_tuple else x


@st.composite
def early_exit_runs(draw):
    num_steps, batch_size, classes = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 3))
    values = draw(spike_values((num_steps, batch_size, classes), exact=True, negatives=False, specials=False))
    rule = draw(exit_rules(num_steps, classes, values))
    time_dim = draw(st.sampled_from([0, 1, -1]))
    rng = np.random.default_rng(draw(seeds()))
    target = torch.tensor(rng.integers(0, classes, size=batch_size)) if draw(st.booleans()) else None
    breakage = draw(st.sampled_from([None] * 5 + ["net", "inputs T", "rule", "target", "time_dim"]))
    return values, rule, time_dim, target, breakage


def _early_exit_case(values, rule, time_dim, target, breakage):
    inputs = torch.tensor(np.moveaxis(values, 0, time_dim))
    faults = Faults()
    if breakage == "net":
        faults.add("net", "not a module")
        faults.add("model", "not a module")
    elif breakage == "inputs T":
        inputs = torch.cat([inputs, inputs], dim=time_dim)
        faults.add("inputs", "twice the rule's T")
    elif breakage == "rule":
        rule = rule.to_dict()
        faults.add("rule", "a dict, not an ExitRule")
    elif breakage == "target":
        target = torch.full((values.shape[1],), 9)
        faults.add_value("target", "out of range")
    elif breakage == "time_dim":
        time_dim = 3
        faults.add("time_dim", "out of range")
    return inputs, rule, time_dim, target, faults


def _check_early_exit_report(report, rule, values, target, calls):
    expected = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                           rule.num_classes, values)
    np.testing.assert_array_equal(report.exit_step.numpy(), expected.exit_step)
    np.testing.assert_array_equal(report.prediction.numpy(), expected.prediction)
    np.testing.assert_array_equal(report.prediction_set.numpy(), expected.prediction_set)
    assert report.steps_simulated == int(expected.exit_step.max()) + 1 == calls
    if target is not None:
        assert report.accuracy == pytest.approx((expected.prediction == target.numpy()).mean(), abs=1e-15)


@given(case=early_exit_runs(), as_tuple=st.booleans())
def test_snntorch_run_early_exit_adversarial(sf, case, as_tuple):
    import spikemax_snntorch

    values, rule, time_dim, target, breakage = case
    inputs, rule_arg, time_dim, target, faults = _early_exit_case(values, rule, time_dim, target, breakage)
    net = _Replay(as_tuple)
    net_arg = (lambda x: x) if breakage == "net" else net
    outcome, report = classify("adapters/snntorch/run_early_exit", lambda: spikemax_snntorch.run_early_exit(
        net_arg, inputs, rule_arg, target=target, time_dim=time_dim), faults, values_checked=True)
    if outcome == VALID:
        _check_early_exit_report(report, rule, values, target, net.calls)


def test_snntorch_run_early_exit_on_a_leaky_network_equals_evaluate_on_its_recording(sf):
    """A real snnTorch network: stepping it with run_early_exit decides as evaluate does on the recording of the
    same network run for all T steps (the hidden state is reset first, as documented)."""
    import snntorch
    import snntorch.utils
    import spikemax_snntorch

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 3), snntorch.Leaky(beta=0.8, threshold=0.3, init_hidden=True, output=True))
    inputs = torch.rand(12, 5, 6) * 2
    snntorch.utils.reset(net)
    with torch.no_grad():
        recording = torch.stack([net(step)[0] for step in inputs])
    rule = early_exit.ExitRule(checkpoints=[2, 5, 11], thresholds=[0.7, 0.6, 0.5], max_set_size=1,
                               score="probability", smoothing=1.0, num_classes=3, num_steps=12)
    target = torch.tensor([0, 1, 2, 0, 1])
    report = spikemax_snntorch.run_early_exit(net, inputs, rule, target=target)
    expected = early_exit.evaluate(rule, recording, target)
    assert torch.equal(report.exit_step, expected.exit_step) and torch.equal(report.prediction, expected.prediction)
    assert report.accuracy == expected.accuracy
    record_valid("adapters/snntorch/run_early_exit Leaky")


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
    inputs, rule_arg, time_dim, target, faults = _early_exit_case(values, rule, time_dim, target, breakage)
    cell = _ReplayCell()
    model = (lambda x, s: (x, s)) if breakage == "net" else cell
    outcome, report = classify("adapters/norse/run_early_exit", lambda: spikemax_norse.run_early_exit(
        model, inputs, rule_arg, target=target, time_dim=time_dim), faults, values_checked=True)
    if outcome == VALID:
        _check_early_exit_report(report, rule, values, target, cell.calls)


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


@pytest.mark.parametrize("option", ["weight", "window", "mode", "temperature", "smoothing", "num_classes",
                                    "population_code", "time_dim", "reduction", "label_smoothing", "stride"])
@given(value=st.sampled_from([[1.0, 2.0], torch.tensor([1, 2]), torch.tensor([NAN, 1.0]), 0, -1, "bad", True, NAN,
                              None, 1e40, 3]))
def test_snntorch_losses_validate_options_when_built(sf, option, value):
    """(14) SF.spikemax_s_loss(option=bad) fails when built, naming the option (population_code=True is set when
    num_classes is the option under test, so that snnTorch does not ignore it)."""
    kwargs = {"window": 2, "stride": 1, "population_code": False, "num_classes": False, "reduction": "mean",
              "weight": None, "mode": "probability", "temperature": 1.0, "smoothing": 1.0, "label_smoothing": 0.0,
              "time_dim": 0}
    kwargs[option] = value
    if option == "num_classes":
        kwargs["population_code"] = True
    faults, _ = snntorch_init_faults(True, kwargs)
    classify("adapters/snntorch/spikemax_s_loss init option", lambda: sf.spikemax_s_loss(**kwargs), faults,
             values_checked=True)


def test_snntorch_and_norse_registration_points_at_the_adapters(sf, norse_torch):
    import spikemax_norse
    import spikemax_snntorch

    assert sf.spikemax_g_loss is spikemax_snntorch.spikemax_g_loss
    assert sf.spikemax_s_loss is spikemax_snntorch.spikemax_s_loss
    assert norse_torch.SpikeMaxGLoss is spikemax_norse.SpikeMaxGLoss
    assert norse_torch.functional.spikemax_s is spikemax_norse.spikemax_s
