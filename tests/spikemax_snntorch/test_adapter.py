"""The snnTorch adapter: same numbers as the core, snnTorch's conventions, registration, a network that learns.

tox runs this folder in the snnTorch environments (`pytest tests/spikemax_snntorch`).
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from spikemax_plugins import functional, metrics

from .. import adapter_support as helpers
from ..adapter_support import NUM_CLASSES, NUM_INPUTS, assert_same, loss_cases

# Without snnTorch (the core and Norse environments, or a plain run without the extra) the whole file skips.
snn = pytest.importorskip("snntorch", reason="the snnTorch adapter tests need snnTorch")
import snntorch.functional as SF  # noqa: E402
import snntorch.utils  # noqa: E402
import spikemax_snntorch  # noqa: E402
from snntorch.functional.loss import LossFunctions  # noqa: E402

REGISTERED = {SF: ("spikemax_g_loss", "spikemax_s_loss", "accuracy_over_time", "time_to_decision")}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def snntorch_options(core_options: dict) -> dict:
    """Core keyword options -> the snnTorch factory's: num_classes=None becomes population_code=False."""
    options = dict(core_options)
    num_classes = options.pop("num_classes")
    options["population_code"] = num_classes is not None
    options["num_classes"] = num_classes if num_classes is not None else False
    return options


@pytest.fixture
def restore_registration():
    """Leaves snntorch.functional registered as after ``import spikemax_snntorch``, whatever the test did."""
    yield
    spikemax_snntorch.unregister()
    spikemax_snntorch.register()


# --- same numbers as the core ------------------------------------------------------------------------------


@pytest.mark.parametrize("sliding", [False, True], ids=["spikemax_g_loss", "spikemax_s_loss"])
@given(data=st.data())
def test_snntorch_loss_equals_core(sliding, data):
    spikes, target, options = data.draw(loss_cases(sliding=sliding))
    make_loss, core_loss = (
        (SF.spikemax_s_loss, functional.spikemax_s) if sliding else (SF.spikemax_g_loss, functional.spikemax_g)
    )
    assert_same(make_loss(**snntorch_options(options))(spikes, target), core_loss(spikes, target, **options))


def test_snntorch_loss_gradient_and_soft_target_equal_core():
    spikes = torch.rand(6, 3, 8, dtype=torch.float64)
    soft_target = torch.tensor(
        [[0.7, 0.1, 0.1, 0.1], [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64
    )
    options = {"mode": "probability", "temperature": 0.5, "smoothing": 0.5}
    adapter_loss = SF.spikemax_s_loss(window=3, population_code=True, num_classes=4, **options)
    helpers.assert_same_loss_and_gradient(
        lambda spikes: adapter_loss(spikes, soft_target),
        lambda spikes: functional.spikemax_s(spikes, soft_target, window=3, num_classes=4, **options),
        spikes,
    )


def test_snntorch_num_classes_without_population_code_is_ignored_as_in_snntorch():
    # snnTorch's own losses read num_classes only with population_code=True; with 6 outputs that means 6 classes.
    spikes = torch.rand(5, 4, 6)
    target = torch.tensor([0, 5, 2, 3])
    assert_same(SF.spikemax_g_loss(num_classes=3)(spikes, target), functional.spikemax_g(spikes, target))


def test_snntorch_metrics_equal_core_with_population_code():
    generator = torch.Generator().manual_seed(1)
    spikes = torch.bernoulli(torch.full((12, 16, 3 * NUM_CLASSES), 0.3), generator=generator)
    target = torch.randint(0, NUM_CLASSES, (16,), generator=generator)
    assert_same(
        SF.accuracy_over_time(spikes, target, population_code=True, num_classes=NUM_CLASSES),
        metrics.accuracy_over_time(spikes, target, num_classes=NUM_CLASSES),
    )
    assert_same(
        SF.time_to_decision(spikes, population_code=True, num_classes=NUM_CLASSES),
        metrics.time_to_decision(spikes, num_classes=NUM_CLASSES),
    )
    assert_same(SF.accuracy_over_time(spikes, target), metrics.accuracy_over_time(spikes, target))
    assert_same(SF.time_to_decision(spikes), metrics.time_to_decision(spikes))


def test_snntorch_final_accuracy_matches_snntorch_accuracy_rate_without_ties():
    # Graded spikes never tie, so the last step of accuracy_over_time is snnTorch's accuracy_rate (population code).
    generator = torch.Generator().manual_seed(2)
    spikes = torch.rand(7, 64, 2 * NUM_CLASSES, generator=generator)
    target = torch.randint(0, NUM_CLASSES, (64,), generator=generator)
    ours = SF.accuracy_over_time(spikes, target, True, NUM_CLASSES)[-1].item()
    assert ours == pytest.approx(SF.accuracy_rate(spikes, target, True, NUM_CLASSES))
    assert 0.0 < ours < 1.0


# --- snnTorch's conventions ----------------------------------------------------------------------------------


def test_snntorch_losses_are_snntorch_loss_objects_with_a_name():
    for name, loss_fn in [("spikemax_g_loss", SF.spikemax_g_loss()), ("spikemax_s_loss", SF.spikemax_s_loss(4))]:
        assert isinstance(loss_fn, LossFunctions)
        assert loss_fn.__name__ == name
        assert loss_fn.reduction == "mean" and loss_fn.weight is None
        assert loss_fn.population_code is False and loss_fn.num_classes is False


def test_snntorch_loss_arguments_start_like_snntorch_ce_count_loss():
    snntorch_arguments = list(inspect.signature(SF.ce_count_loss).parameters)
    assert snntorch_arguments == ["population_code", "num_classes", "reduction", "weight"]
    assert list(inspect.signature(SF.spikemax_g_loss).parameters)[:4] == snntorch_arguments
    # Positionally, as snnTorch's examples write it: 3 neurons for each of 4 classes.
    spikes, target = torch.rand(5, 2, 12), torch.tensor([3, 0])
    expected = functional.spikemax_g(spikes, target, num_classes=4)
    assert_same(SF.spikemax_g_loss(True, 4)(spikes, target), expected)
    assert_same(SF.spikemax_s_loss(5, 1, True, 4)(spikes, target), expected)


@pytest.mark.parametrize("population_code, num_classes, num_outputs", [(False, False, 4), (True, 4, 12)])
def test_snntorch_softmax_mode_at_temperature_one_is_snntorch_ce_count_loss(population_code, num_classes, num_outputs):
    generator = torch.Generator().manual_seed(3)
    spikes = torch.bernoulli(torch.full((10, 8, num_outputs), 0.3), generator=generator)
    target = torch.randint(0, 4, (8,), generator=generator)
    ours = SF.spikemax_g_loss(population_code, num_classes, mode="softmax")(spikes, target)
    torch.testing.assert_close(ours, SF.ce_count_loss(population_code, num_classes)(spikes, target))


@pytest.mark.parametrize("factory", [SF.spikemax_g_loss, lambda **kwargs: SF.spikemax_s_loss(2, **kwargs)])
def test_snntorch_population_code_without_num_classes_is_a_clear_error(factory):
    with pytest.raises(ValueError, match=r"population_code=True needs num_classes.*got num_classes=False"):
        factory(population_code=True)


def test_snntorch_metrics_population_code_without_num_classes_is_a_clear_error():
    spikes = torch.rand(3, 2, 4)
    with pytest.raises(ValueError, match="population_code=True needs num_classes"):
        SF.time_to_decision(spikes, population_code=True)
    with pytest.raises(ValueError, match="population_code=True needs num_classes"):
        SF.accuracy_over_time(spikes, torch.tensor([0, 1]), population_code=True)


def test_snntorch_core_validation_reaches_the_user():
    with pytest.raises(ValueError, match="window must be >= 1 and <= 3"):
        SF.spikemax_s_loss(window=4)(torch.rand(3, 2, 4), torch.tensor([0, 1]))


def test_snntorch_backprop_bptt_cannot_run_our_losses_as_documented():
    # The adapter's docstring and the README say so; if a new snnTorch accepts them, update both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # snntorch.backprop announces its own deprecation
        from snntorch import backprop
    network = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    data = [(torch.rand(5, 2, 4), torch.tensor([0, 1]))]
    optimizer = torch.optim.Adam(network.parameters())
    with pytest.raises((UnboundLocalError, TypeError), match="loss_spk|criterion"):
        backprop.BPTT(network, data, optimizer, SF.spikemax_g_loss(), time_var=True)


# --- registration ------------------------------------------------------------------------------------------


def test_snntorch_import_registers_every_name():
    helpers.assert_import_registered(spikemax_snntorch, REGISTERED)


def test_snntorch_register_twice_is_harmless():
    helpers.assert_register_is_idempotent(spikemax_snntorch, REGISTERED)


def test_snntorch_unregister_removes_only_our_names(restore_registration):
    helpers.assert_unregister_removes_only_ours(spikemax_snntorch, REGISTERED, {SF: "ce_count_loss"})


def test_snntorch_register_never_overwrites_a_snntorch_name(restore_registration):
    helpers.assert_never_overwrites(spikemax_snntorch, REGISTERED, SF, "time_to_decision")


def test_snntorch_reload_replaces_our_stale_names_silently(restore_registration):
    helpers.assert_reload_replaces_stale_names(spikemax_snntorch, REGISTERED)


def test_snntorch_missing_host_raises_import_error_naming_the_extra():
    helpers.assert_missing_host_names_the_extra(
        "spikemax_snntorch", "snntorch", "snntorch", "spikemax_snntorch needs snnTorch"
    )


def test_snntorch_adapter_never_imports_norse():
    helpers.assert_never_imports("spikemax_snntorch", "norse")


# --- a small snn.Leaky network learns with each loss -----------------------------------------------------


def leaky_network() -> nn.Module:
    return nn.Sequential(
        nn.Linear(NUM_INPUTS, 32),
        snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(32, NUM_CLASSES),
        snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )


def leaky_output_spikes(network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """snnTorch's loop: reset the hidden state, step through time, stack the output spikes to [T, B, C]."""
    snntorch.utils.reset(network)
    return torch.stack([network(step)[0] for step in inputs])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "make_loss",
    [
        # The weight stays on the CPU: the loss must move it to the spikes' device.
        pytest.param(lambda: SF.spikemax_g_loss(weight=torch.ones(NUM_CLASSES)), id="spikemax_g_loss"),
        pytest.param(lambda: SF.spikemax_s_loss(window=8, stride=2), id="spikemax_s_loss"),
    ],
)
def test_snntorch_leaky_network_learns(make_loss, device):
    result = helpers.train_and_evaluate(
        leaky_network, leaky_output_spikes, make_loss(), helpers.separable_spikes(), device
    )
    print(f"final loss {result.losses[-1]:.3f}, test accuracy {result.test_accuracy:.3f}")
    helpers.assert_learned(result)


# --- options checked when built (issue 11), layouts, early exit -------------------------------------------------


@pytest.mark.parametrize(
    "factory, options, error, words",
    [
        (SF.spikemax_g_loss, {"weight": [1.0, 2.0]}, TypeError, ["weight", "torch.Tensor", "list"]),
        (SF.spikemax_g_loss, {"weight": torch.tensor([1.0, -1.0])}, ValueError, ["weight", ">= 0", "-1"]),
        (SF.spikemax_g_loss, {"mode": "bad"}, ValueError, ["mode", "'probability'", "'bad'"]),
        (SF.spikemax_g_loss, {"temperature": 0.0}, ValueError, ["temperature", ">= 0.0001"]),
        (SF.spikemax_g_loss, {"reduction": "avg"}, ValueError, ["reduction", "'avg'"]),
        (lambda **kw: SF.spikemax_s_loss(window=0, **kw), {}, ValueError, ["window", ">= 1", "got 0"]),
        (lambda **kw: SF.spikemax_s_loss(window=2.5, **kw), {}, TypeError, ["window", "int", "float"]),
        (lambda **kw: SF.spikemax_s_loss(window=3, stride=0, **kw), {}, ValueError, ["stride", ">= 1"]),
        (SF.spikemax_g_loss, {"time_dim": 3}, ValueError, ["time_dim", "[-3, 2]"]),
    ],
)
def test_snntorch_options_are_checked_when_the_loss_is_built(factory, options, error, words):
    with pytest.raises(error) as raised:
        factory(**options)
    for word in words:
        assert word in str(raised.value), f"{word!r} not in {raised.value}"


def test_snntorch_loss_takes_batch_first_spikes_with_time_dim():
    spikes, target = torch.rand(6, 3, 4), torch.tensor([0, 3, 1])
    assert_same(SF.spikemax_s_loss(2, time_dim=1)(spikes.transpose(0, 1), target), functional.spikemax_s(
        spikes, target, window=2))


def _snntorch_wired_network() -> nn.Module:
    return nn.Sequential(
        helpers.wire_classes(nn.Linear(NUM_INPUTS, NUM_CLASSES)),
        snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )


def _snntorch_recording(network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    for module in network.modules():  # snntorch.utils.reset sees direct children only
        snntorch.utils.reset(module)
    with torch.no_grad():
        return torch.stack([network(step)[0] for step in inputs])


def test_snntorch_early_exit_inference_without_training():
    helpers.assert_early_exit_runs_without_training(
        spikemax_snntorch.run_early_exit,
        helpers.CountingNetwork(_snntorch_wired_network()),
        _snntorch_recording,
        seed=3,
    )


def test_snntorch_early_exit_resets_a_network_nested_in_another_module():
    from spikemax_plugins import early_exit

    task = helpers.separable_spikes(seed=4)
    nested = helpers.CountingNetwork(_snntorch_wired_network())  # the neurons sit two levels down
    # Exit at the first step with a unique leader: the exit step moves if any membrane starts charged.
    rule = early_exit.ExitRule(
        checkpoints=list(range(20)), thresholds=torch.full((20,), 1.0), max_set_size=1, score="margin",
        smoothing=1.0, num_classes=NUM_CLASSES, num_steps=20,
    )
    from_rest = early_exit.evaluate(rule, _snntorch_recording(nested, task.test_inputs))
    for _ in range(2):  # the second run starts where the first left its membranes, unless reset
        report = spikemax_snntorch.run_early_exit(nested, task.test_inputs, rule)
        assert torch.equal(report.exit_step, from_rest.exit_step)


def test_snntorch_early_exit_refuses_what_is_not_a_network():
    with pytest.raises(TypeError, match=r"net must be a torch.nn.Module"):
        spikemax_snntorch.run_early_exit(lambda x: x, torch.zeros(3, 2, 4), None)


def test_snntorch_metrics_take_time_dim():
    generator = torch.Generator().manual_seed(3)
    spikes = (torch.rand(6, 4, 3, generator=generator) < 0.4).float()
    targets = torch.tensor([0, 1, 2, 0])
    batch_first = spikes.permute(1, 0, 2)  # [B, T, C]
    assert torch.equal(SF.accuracy_over_time(batch_first, targets, time_dim=1),
                       metrics.accuracy_over_time(spikes, targets))
    assert torch.equal(SF.time_to_decision(batch_first, time_dim=1), metrics.time_to_decision(spikes))
