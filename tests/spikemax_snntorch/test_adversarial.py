"""Adversarial properties of the snnTorch adapter: options validated when a loss is built (naming the option),
calls checked against the NumPy reference through the core's oracle, and ``run_early_exit`` against the rule
semantics. snnTorch is imported inside the ``sf`` fixture: without it these tests skip."""

from __future__ import annotations

import numpy as np
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
    check_spike_tensor,
    check_target_tensor,
    check_target_values,
    check_time_dim_option,
    running_grouped,
)
from ..spikemax_plugins.adversarial.support import (
    INDEX_DTYPES,
    NAN,
    VALID,
    Faults,
    classify,
    expect_clear_error,
    mixed,
    record_valid,
    seeds,
    spike_values,
)


@pytest.fixture(scope="module")
def sf():
    pytest.importorskip("snntorch", reason="the snnTorch adapter tests need snnTorch")
    import snntorch.functional as snntorch_functional
    import spikemax_snntorch  # noqa: F401  (registers the names)

    return snntorch_functional


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


@given(case=early_exit_runs(), as_tuple=st.booleans())
def test_snntorch_run_early_exit_adversarial(sf, case, as_tuple):
    import spikemax_snntorch

    values, rule, time_dim, target, breakage = case
    inputs, rule_arg, time_dim, target, faults = early_exit_case(values, rule, time_dim, target, breakage)
    net = _Replay(as_tuple)
    net_arg = (lambda x: x) if breakage == "net" else net
    outcome, report = classify("adapters/snntorch/run_early_exit", lambda: spikemax_snntorch.run_early_exit(
        net_arg, inputs, rule_arg, target=target, time_dim=time_dim), faults, values_checked=True)
    if outcome == VALID:
        check_early_exit_report(report, rule, values, target, net.calls)


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
