"""The Norse adapter: same numbers as the core, Norse's (spikes, state) outputs, registration, a network that learns.

tox runs this folder in the Norse environments (`pytest tests/spikemax_norse`).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import spikemax_plugins
from spikemax_plugins import functional

from .. import adapter_support as helpers
from ..adapter_support import NUM_CLASSES, NUM_INPUTS, assert_same, loss_cases

# Without Norse (the core and snnTorch environments, or a plain run without the extra) the whole file skips.
norse_torch = pytest.importorskip("norse.torch", reason="the Norse adapter tests need Norse")
import spikemax_norse  # noqa: E402

MODULE_NAMES = ("SpikeMaxGLoss", "SpikeMaxSLoss", "MSECountLoss")
REGISTERED = {norse_torch: MODULE_NAMES, norse_torch.functional: ("spikemax_g", "spikemax_s")}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture
def restore_registration():
    """Leaves norse.torch registered as after ``import spikemax_norse``, whatever the test did."""
    yield
    spikemax_norse.unregister()
    spikemax_norse.register()


def lif_output(spikes: torch.Tensor):
    """A genuine ``(spikes, state)`` tuple as norse.torch.LIF returns it, with the given spikes in front."""
    _, state = norse_torch.LIF()(torch.zeros(1, *spikes.shape[1:]))
    return spikes, state


# --- same numbers as the core ------------------------------------------------------------------------------


@pytest.mark.parametrize("sliding", [False, True], ids=["spikemax_g", "spikemax_s"])
@given(data=st.data())
def test_norse_spikemax_equals_core_for_tensor_and_tuple(sliding, data):
    spikes, target, options = data.draw(loss_cases(sliding=sliding))
    core_loss, loss_module, loss_function = (
        (functional.spikemax_s, spikemax_norse.SpikeMaxSLoss(**options), norse_torch.functional.spikemax_s)
        if sliding
        else (functional.spikemax_g, spikemax_norse.SpikeMaxGLoss(**options), norse_torch.functional.spikemax_g)
    )
    expected = core_loss(spikes, target, **options)
    assert_same(loss_module(spikes, target), expected)
    assert_same(loss_module(lif_output(spikes), target), expected)
    assert_same(loss_function(lif_output(spikes), target, **options), expected)


@given(
    loss_cases(sliding=False),
    st.sampled_from([0.0, 0.2, 0.8]),
    st.sampled_from([0.0, 0.05]),
)
def test_norse_mse_count_equals_core_for_tensor_and_tuple(case, true_rate, false_rate):
    spikes, target, spikemax_options = case
    options = {
        "true_rate": true_rate,
        "false_rate": false_rate,
        "weight": spikemax_options["weight"],
        "num_classes": spikemax_options["num_classes"],
        "reduction": spikemax_options["reduction"],
    }
    expected = functional.mse_count(spikes, target, **options)
    assert_same(spikemax_norse.MSECountLoss(**options)(lif_output(spikes), target), expected)
    assert_same(spikemax_norse.MSECountLoss(**options)(spikes, target), expected)


def test_norse_loss_gradient_through_the_tuple_equals_core():
    spikes = torch.rand(6, 3, 8, dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    options = {"num_classes": 4, "temperature": 0.5, "label_smoothing": 0.1}
    helpers.assert_same_loss_and_gradient(
        lambda spikes: norse_torch.SpikeMaxGLoss(**options)(lif_output(spikes), target),
        lambda spikes: functional.spikemax_g(spikes, target, **options),
        spikes,
    )


# --- Norse's conventions -----------------------------------------------------------------------------------


def test_norse_modules_subclass_the_core_modules_and_keep_weight_a_buffer():
    for name in MODULE_NAMES:
        assert issubclass(getattr(spikemax_norse, name), getattr(spikemax_plugins, name))
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0])
    loss_module = spikemax_norse.SpikeMaxSLoss(window=3, weight=weight)
    assert_same(loss_module.state_dict()["weight"], weight)
    assert "window=3" in repr(loss_module)


def test_norse_sequential_state_output_is_spikes_and_state_and_feeds_the_loss():
    model = norse_torch.SequentialState(nn.Linear(NUM_INPUTS, 8), norse_torch.LIF(), nn.Linear(8, 3), norse_torch.LIF())
    output = model(torch.rand(5, 2, NUM_INPUTS))
    assert isinstance(output, tuple) and len(output) == 2
    assert output[0].shape == (5, 2, 3)
    target = torch.tensor([0, 2])
    assert_same(norse_torch.SpikeMaxGLoss()(output, target), functional.spikemax_g(output[0], target))


@pytest.mark.parametrize(
    "bad_output",
    [(torch.rand(3, 2, 4),), (torch.rand(3, 2, 4), None, None), ("spikes", None)],
    ids=["one_item", "three_items", "no_tensor"],
)
def test_norse_malformed_tuple_is_a_clear_error(bad_output):
    with pytest.raises(TypeError, match=r"spikes must be a tensor or a Norse module's \(spikes, state\) tuple"):
        norse_torch.SpikeMaxGLoss()(bad_output, torch.tensor([0, 1]))


def test_norse_core_validation_reaches_the_user():
    with pytest.raises(ValueError, match="window must be >= 1 and <= 3"):
        norse_torch.functional.spikemax_s(lif_output(torch.rand(3, 2, 4)), torch.tensor([0, 1]), window=4)


# --- registration ------------------------------------------------------------------------------------------


def star_imported_names() -> set[str]:
    namespace: dict = {}
    exec("from norse.torch import *", namespace)
    return set(namespace)


def exported_list() -> list[str] | None:
    """A copy of norse.torch.__all__ (Norse 1.1 has one, 1.0 does not)."""
    exported = getattr(norse_torch, "__all__", None)
    return None if exported is None else list(exported)


def test_norse_import_registers_modules_and_functions():
    helpers.assert_import_registered(spikemax_norse, REGISTERED)
    assert set(MODULE_NAMES) <= star_imported_names()


def test_norse_register_twice_is_harmless():
    exported_before = exported_list()
    helpers.assert_register_is_idempotent(spikemax_norse, REGISTERED)
    assert exported_list() == exported_before


def test_norse_unregister_removes_only_our_names(restore_registration):
    exported_before = exported_list()
    spikemax_norse.unregister()
    assert not set(MODULE_NAMES) & star_imported_names()
    assert "LIF" in star_imported_names()
    spikemax_norse.register()
    assert exported_list() == exported_before
    helpers.assert_unregister_removes_only_ours(
        spikemax_norse, REGISTERED, {norse_torch: "LIF", norse_torch.functional: "lif"}
    )


def test_norse_register_never_overwrites_a_norse_name(restore_registration):
    helpers.assert_never_overwrites(spikemax_norse, REGISTERED, norse_torch, "SpikeMaxGLoss")
    helpers.assert_never_overwrites(spikemax_norse, REGISTERED, norse_torch.functional, "spikemax_s")


def test_norse_reload_replaces_our_stale_names_silently(restore_registration):
    exported_before = exported_list()
    helpers.assert_reload_replaces_stale_names(spikemax_norse, REGISTERED)
    assert exported_list() == exported_before


def test_norse_missing_host_raises_import_error_naming_the_extra():
    helpers.assert_missing_host_names_the_extra("spikemax_norse", "norse", "norse", "spikemax_norse needs Norse")


def test_norse_adapter_never_imports_snntorch():
    helpers.assert_never_imports("spikemax_norse", "snntorch")


# --- a small LIF network learns with each loss -------------------------------------------------------------


def lif_network() -> nn.Module:
    # Norse's defaults (threshold 1, narrow SuperSpike surrogate alpha=100) leave the output silent at the start
    # on this task; a lower threshold, a faster membrane and a wider surrogate make it fire and learn at once.
    parameters = norse_torch.LIFParameters(
        tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.5), alpha=torch.tensor(20.0)
    )
    return norse_torch.SequentialState(
        nn.Linear(NUM_INPUTS, 32),
        norse_torch.LIF(parameters),
        nn.Linear(32, NUM_CLASSES),
        norse_torch.LIF(parameters),
    )


def lif_output_tuple(network: nn.Module, inputs: torch.Tensor):
    return network(inputs)  # (spikes [T, B, C], states): the losses take it as it is


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "make_loss",
    [
        pytest.param(lambda: norse_torch.SpikeMaxGLoss(weight=torch.ones(NUM_CLASSES)), id="SpikeMaxGLoss"),
        pytest.param(lambda: norse_torch.SpikeMaxSLoss(window=8, stride=2), id="SpikeMaxSLoss"),
    ],
)
def test_norse_lif_network_learns(make_loss, device):
    loss_fn = make_loss().to(device)
    result = helpers.train_and_evaluate(lif_network, lif_output_tuple, loss_fn, helpers.separable_spikes(), device)
    print(f"final loss {result.losses[-1]:.3f}, test accuracy {result.test_accuracy:.3f}")
    helpers.assert_learned(result)


# --- which tuples are spikes (issue 11, finding 5); options checked when built; early exit -----------------------


def test_norse_a_recorded_lif_state_is_not_taken_for_spikes():
    spikes, recorded_state = norse_torch.LIF(record_states=True)(torch.rand(6, 2, NUM_CLASSES) * 3)
    assert hasattr(recorded_state, "_fields") and recorded_state[0].shape == (6, 2, NUM_CLASSES)  # (v, i) over time
    with pytest.raises(TypeError, match=r"got a Norse state LIFFeedForwardState\(v, i\): its first field is"):
        norse_torch.SpikeMaxGLoss()(recorded_state, torch.tensor([0, 1]))
    assert_same(norse_torch.SpikeMaxGLoss()((spikes, recorded_state), torch.tensor([0, 1])),
                functional.spikemax_g(spikes, torch.tensor([0, 1])))


@pytest.mark.parametrize(
    "second", [torch.rand(4), "state", 3.0, [torch.rand(2)]], ids=["tensor", "str", "float", "list-of-tensors"]
)
def test_norse_a_second_element_that_is_no_norse_state_is_refused(second):
    with pytest.raises(TypeError, match=r"where state is None, a Norse state NamedTuple or a list of them"):
        norse_torch.SpikeMaxGLoss()((torch.rand(3, 2, 4), second), torch.tensor([0, 1]))


def test_norse_none_and_sequential_state_lists_are_states():
    model = norse_torch.SequentialState(nn.Linear(NUM_INPUTS, 8), norse_torch.LIF(), nn.Linear(8, 4),
                                        norse_torch.LIF())
    spikes, states = model(torch.rand(5, 2, NUM_INPUTS))
    assert isinstance(states, list)
    target = torch.tensor([0, 3])
    for output in ((spikes, states), (spikes, None)):
        assert_same(norse_torch.SpikeMaxGLoss()(output, target), functional.spikemax_g(spikes, target))


@pytest.mark.parametrize(
    "build, error, words",
    [
        (lambda: norse_torch.SpikeMaxGLoss(weight=[1.0, 2.0]), TypeError, ["weight", "torch.Tensor", "list"]),
        (lambda: norse_torch.SpikeMaxGLoss(mode="bad"), ValueError, ["mode", "'bad'"]),
        (lambda: norse_torch.SpikeMaxSLoss(window=0), ValueError, ["window", ">= 1"]),
        (lambda: norse_torch.MSECountLoss(true_rate=-1, false_rate=0), ValueError, ["true_rate", ">= 0"]),
        (lambda: norse_torch.SpikeMaxGLoss(weight=torch.ones(3), num_classes=4), ValueError, ["weight", "[4]"]),
    ],
)
def test_norse_options_are_checked_when_the_module_is_built(build, error, words):
    with pytest.raises(error) as raised:
        build()
    for word in words:
        assert word in str(raised.value), f"{word!r} not in {raised.value}"


def _norse_wired_cells() -> nn.Module:
    parameters = norse_torch.LIFParameters(tau_mem_inv=torch.tensor(100.0), v_th=torch.tensor(0.5))
    return norse_torch.SequentialState(
        helpers.wire_classes(nn.Linear(NUM_INPUTS, NUM_CLASSES), gain=2.0), norse_torch.LIFCell(parameters)
    )


def _norse_recording(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    state, outputs = None, []
    with torch.no_grad():
        for step in inputs:
            output, state = model(step, state)
            outputs.append(output)
    return torch.stack(outputs)


def test_norse_early_exit_inference_without_training():
    helpers.assert_early_exit_runs_without_training(
        spikemax_norse.run_early_exit, helpers.CountingNetwork(_norse_wired_cells()), _norse_recording, seed=5
    )


def test_norse_early_exit_refuses_time_looping_modules():
    from spikemax_plugins import early_exit

    rule = early_exit.ExitRule(checkpoints=[4], thresholds=torch.tensor([0.5]), max_set_size=1,
                               score="probability", smoothing=1.0, num_classes=4, num_steps=5)
    looping = norse_torch.SequentialState(nn.Linear(NUM_INPUTS, 4), norse_torch.LIF())
    with pytest.raises(TypeError, match=r"time-looping Norse modules \(1: LIF\).*LIFCell"):
        spikemax_norse.run_early_exit(looping, torch.rand(5, 2, NUM_INPUTS), rule)
    with pytest.raises(ValueError, match=r"inputs must have the rule's T = 5 steps, got 7"):
        spikemax_norse.run_early_exit(_norse_wired_cells(), torch.rand(7, 2, NUM_INPUTS), rule)


def test_norse_functions_show_the_core_signature():
    import inspect

    for name in ("spikemax_g", "spikemax_s"):
        adapter = inspect.signature(getattr(spikemax_norse, name)).parameters
        core = inspect.signature(getattr(functional, name)).parameters
        assert list(adapter)[2:] == list(core)[2:], name  # every keyword option, in the core's order
        assert all(adapter[key].default == core[key].default for key in list(core)[2:]), name
