"""Shared by the snnTorch and Norse adapter tests; imports neither host.

- :func:`loss_cases`: random spikes, targets and core loss options (every option of spikemax_g / spikemax_s).
- :func:`separable_spikes`: a synthetic task a small SNN learns in a few dozen steps.
- :func:`train_and_evaluate`: the plain training loop both adapters are tested with.
- ``assert_*``: the registration and import checks every adapter must pass.
- :func:`early_exit_runs`, :func:`early_exit_case`, :func:`check_early_exit_report`: the adversarial
  ``run_early_exit`` cases both adapters' adversarial suites draw (built on the core's adversarial oracles).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from spikemax_plugins import metrics

from .spikemax_plugins.adversarial.oracles import exit_rules, np_evaluate
from .spikemax_plugins.adversarial.support import Faults, seeds, spike_values
from .spikemax_plugins.early_exit.support import run_steps_simulated

NUM_CLASSES = 4
NUM_INPUTS = 20
NUM_STEPS = 20


@st.composite
def loss_cases(draw, *, sliding: bool) -> tuple[Tensor, Tensor, dict]:
    """(spikes [T, B, N], int target [B], core keyword options) covering every option of the SpikeMax losses."""
    num_steps = draw(st.integers(1, 10))
    batch_size = draw(st.integers(1, 5))
    num_classes = draw(st.integers(2, 5))
    neurons_per_class = draw(st.integers(1, 3))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    # The firing probability reaches 0, so silent outputs (and +inf losses with smoothing 0) are covered.
    firing_probability = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
    shape = (num_steps, batch_size, num_classes * neurons_per_class)
    spikes = torch.bernoulli(torch.full(shape, firing_probability), generator=generator)
    target = torch.randint(0, num_classes, (batch_size,), generator=generator)
    weight = torch.rand(num_classes, generator=generator) + 0.1 if draw(st.booleans()) else None
    # num_classes given with one neuron per class is legal too (a population of one).
    population = neurons_per_class > 1 or draw(st.booleans())
    options = {
        "mode": draw(st.sampled_from(["probability", "softmax"])),
        "temperature": draw(st.sampled_from([0.5, 1.0, 2.5])),
        "smoothing": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "weight": weight,
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "num_classes": num_classes if population else None,
        "label_smoothing": draw(st.sampled_from([0.0, 0.1])),
    }
    if sliding:
        options["window"] = draw(st.integers(1, num_steps))
        options["stride"] = draw(st.integers(1, 3))
    return spikes, target, options


def assert_same(actual: Tensor, expected: Tensor) -> None:
    """Bit-for-bit equality, +inf and NaN included: the adapters call the core, they compute nothing."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True)


def assert_same_loss_and_gradient(
    adapter_loss: Callable[[Tensor], Tensor], core_loss: Callable[[Tensor], Tensor], spikes: Tensor
) -> None:
    """The adapter's loss of ``spikes`` and its gradient equal the core's; the gradient is not all zero."""
    adapter_spikes, core_spikes = spikes.clone().requires_grad_(), spikes.clone().requires_grad_()
    actual, expected = adapter_loss(adapter_spikes), core_loss(core_spikes)
    actual.backward()
    expected.backward()
    assert_same(actual, expected)
    assert_same(adapter_spikes.grad, core_spikes.grad)
    assert adapter_spikes.grad.abs().sum() > 0


@dataclass
class SpikeTask:
    train_inputs: Tensor  # [T, B_train, NUM_INPUTS]
    train_targets: Tensor  # [B_train]
    test_inputs: Tensor  # [T, B_test, NUM_INPUTS]
    test_targets: Tensor  # [B_test]


def _class_dependent_spikes(num_samples: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    targets = torch.randint(0, NUM_CLASSES, (num_samples,), generator=generator)
    # Each class drives its own block of input channels at a high rate; every other channel fires rarely.
    channels_per_class = NUM_INPUTS // NUM_CLASSES
    preferred = torch.arange(NUM_INPUTS) // channels_per_class == targets.unsqueeze(-1)  # [B, NUM_INPUTS]
    rates = torch.where(preferred, 0.5, 0.05)
    return torch.bernoulli(rates.expand(NUM_STEPS, -1, -1), generator=generator), targets


def separable_spikes(seed: int = 0, num_train: int = 128, num_test: int = 256) -> SpikeTask:
    """Class-dependent Bernoulli spike trains over NUM_INPUTS channels, NUM_CLASSES classes, fixed seed."""
    generator = torch.Generator().manual_seed(seed)
    return SpikeTask(*_class_dependent_spikes(num_train, generator), *_class_dependent_spikes(num_test, generator))


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    # These tensors are tiny: a second intra-op thread only adds waiting, and on a loaded 2-core machine it
    # made the snnTorch training test 5x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class TrainingResult:
    losses: list[float]
    test_accuracy: float


def train_and_evaluate(
    build_model: Callable[[], nn.Module],
    output_spikes: Callable[[nn.Module, Tensor], Tensor],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    task: SpikeTask,
    device: str,
    *,
    epochs: int = 8,
    batch_size: int = 32,
    learning_rate: float = 1e-2,
) -> TrainingResult:
    """Adam over mini-batches; ``output_spikes(model, inputs)`` runs the model, returning what ``loss_fn`` takes."""
    with one_intra_op_thread():
        torch.manual_seed(0)
        model = build_model().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        inputs, targets = task.train_inputs.to(device), task.train_targets.to(device)
        losses = []
        for _ in range(epochs):
            for start in range(0, targets.shape[0], batch_size):
                batch = slice(start, start + batch_size)
                loss = loss_fn(output_spikes(model, inputs[:, batch]), targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        with torch.no_grad():
            test_output = output_spikes(model, task.test_inputs.to(device))
    test_spikes = test_output[0] if isinstance(test_output, tuple) else test_output
    accuracy = metrics.accuracy(test_spikes, task.test_targets.to(device)).item()
    return TrainingResult(losses, accuracy)


def assert_learned(result: TrainingResult) -> None:
    """The loss falls to under half its start, and the test accuracy is far above chance (1 / NUM_CLASSES)."""
    first, last = result.losses[:4], result.losses[-4:]
    assert sum(last) / len(last) < 0.5 * sum(first) / len(first), f"the loss did not fall: {result.losses}"
    assert result.test_accuracy > 0.8, f"test accuracy {result.test_accuracy:.3f} (chance is {1 / NUM_CLASSES})"


# --- registration and import checks, shared by both adapters ------------------------------------------------


def registered_objects(registered: dict[ModuleType, tuple[str, ...]]) -> dict[str, object]:
    """{"namespace.name": the object there, or None} for every name an adapter registers."""
    return {
        f"{space.__name__}.{name}": getattr(space, name, None) for space, names in registered.items() for name in names
    }


def assert_import_registered(adapter: ModuleType, registered: dict[ModuleType, tuple[str, ...]]) -> None:
    for qualified_name, value in registered_objects(registered).items():
        assert value is getattr(adapter, qualified_name.rpartition(".")[2]), qualified_name


def assert_register_is_idempotent(adapter: ModuleType, registered: dict[ModuleType, tuple[str, ...]]) -> None:
    before = registered_objects(registered)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert adapter.register() == []
        assert adapter.register() == []
    assert registered_objects(registered) == before


def assert_unregister_removes_only_ours(
    adapter: ModuleType, registered: dict[ModuleType, tuple[str, ...]], host_names: dict[ModuleType, str]
) -> None:
    """unregister() removes our names, leaves the host's, is harmless twice; register() brings ours back."""
    ours = sorted(registered_objects(registered))
    assert sorted(adapter.unregister()) == ours
    assert all(value is None for value in registered_objects(registered).values())
    assert all(getattr(space, name) is not None for space, name in host_names.items())
    assert adapter.unregister() == []
    assert sorted(adapter.register()) == ours


def assert_never_overwrites(adapter: ModuleType, registered: dict[ModuleType, tuple[str, ...]], space, name) -> None:
    """A name the host defines itself (simulated) is left alone by register() and unregister(), with a warning."""
    adapter.unregister()
    host_own = object()
    setattr(space, name, host_own)
    try:
        with pytest.warns(UserWarning, match=f"{space.__name__} already defines {name}; left as it is"):
            added = adapter.register()
        assert sorted(added) == sorted(set(registered_objects(registered)) - {f"{space.__name__}.{name}"})
        assert f"{space.__name__}.{name}" not in adapter.unregister()
        assert getattr(space, name) is host_own
    finally:
        delattr(space, name)
        adapter.register()


def assert_reload_replaces_stale_names(adapter: ModuleType, registered: dict[ModuleType, tuple[str, ...]]) -> None:
    """After importlib.reload the host holds the new objects: ours are recognised by module, without a warning."""
    stale = registered_objects(registered)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(adapter)
    fresh = registered_objects(registered)
    assert all(fresh[key] is not stale[key] and fresh[key] is not None for key in stale)
    assert_import_registered(adapter, registered)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def assert_missing_host_names_the_extra(adapter_name: str, host: str, extra: str, message: str) -> None:
    """With the host unimportable (sys.modules[host] = None), importing the adapter says what to install."""
    result = run_python(f"import sys; sys.modules[{host!r}] = None; import {adapter_name}")
    assert result.returncode != 0
    assert f"ImportError: {message}" in result.stderr, result.stderr
    assert f'pip install "spikemax-plugins[{extra}]"' in result.stderr, result.stderr


def assert_never_imports(adapter_name: str, other_host: str) -> None:
    result = run_python(
        f"import sys, {adapter_name}; print(sorted(m for m in sys.modules if m.startswith({other_host!r})))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def wire_classes(linear: nn.Linear, gain: float = 1.5) -> nn.Linear:
    """Training-free weights: output neuron c listens to class c's block of input channels (see separable_spikes).

    A preferred channel fires at rate 0.5, so the right output neuron integrates about ``gain * 2.5`` per step
    and fires within a few steps; the others integrate ``gain * 0.25`` per step.
    """
    channels_per_class = NUM_INPUTS // NUM_CLASSES
    with torch.no_grad():
        listens = torch.arange(NUM_INPUTS) // channels_per_class == torch.arange(NUM_CLASSES)[:, None]
        linear.weight.copy_(listens * gain)
        linear.bias.zero_()
    return linear


class CountingNetwork(nn.Module):
    """Wraps a network and counts its forward calls (the simulated time steps of an early-exit run)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.calls = 0

    def forward(self, *arguments):
        self.calls += 1
        return self.network(*arguments)


def assert_early_exit_runs_without_training(run_early_exit, network: CountingNetwork, record, seed: int) -> None:
    """An adapter's ``run_early_exit`` on a wired, untrained network: calibrated on recorded outputs of held-out
    samples, run on others, its report equals :func:`early_exit.evaluate` on the full recording and it simulates
    only up to the last exit; a batch whose samples all exit early stops the simulation early.

    ``record(network, inputs [T, B, NUM_INPUTS]) -> [T, B, NUM_CLASSES]`` records the full output spikes.
    """
    from spikemax_plugins import early_exit

    task = separable_spikes(seed=seed)
    rule = early_exit.calibrate(record(network, task.train_inputs), task.train_targets, method="accuracy", alpha=0.02)
    network.calls = 0
    report = run_early_exit(network, task.test_inputs, rule, target=task.test_targets)
    calls = network.calls
    offline = early_exit.evaluate(rule, record(network, task.test_inputs), task.test_targets)
    assert torch.equal(report.exit_step, offline.exit_step)
    assert torch.equal(report.prediction, offline.prediction)
    assert torch.equal(report.prediction_set, offline.prediction_set)
    assert report.accuracy == offline.accuracy
    assert calls == report.steps_simulated == run_steps_simulated(
        rule.checkpoints, rule.num_steps, offline.exit_step.tolist(), None
    )
    assert report.accuracy > 0.9 and report.exit_fraction < 0.6
    # Deciding at every step, the simulation stops right after the last exit.
    network.calls = 0
    report = run_early_exit(network, task.test_inputs, rule, target=task.test_targets, decide_every=1)
    assert torch.equal(report.exit_step, offline.exit_step) and torch.equal(report.prediction, offline.prediction)
    assert network.calls == report.steps_simulated == int(offline.exit_step.max()) + 1

    num_steps = task.test_inputs.shape[0]
    confident = early_exit.ExitRule(
        checkpoints=list(range(num_steps)), thresholds=torch.full((num_steps,), 1.0), max_set_size=1,
        score="margin", smoothing=1.0, num_classes=NUM_CLASSES, num_steps=num_steps,
    )
    network.calls = 0
    report = run_early_exit(network, task.test_inputs[:, :8], confident, decide_every=1)
    assert network.calls == report.steps_simulated < num_steps


# --- adversarial run_early_exit cases, shared by both adapters' adversarial suites --------------------


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


def early_exit_case(values, rule, time_dim, target, breakage):
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


def check_early_exit_report(report, rule, values, target, calls):
    expected = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                           rule.num_classes, values)
    np.testing.assert_array_equal(report.exit_step.numpy(), expected.exit_step)
    np.testing.assert_array_equal(report.prediction.numpy(), expected.prediction)
    np.testing.assert_array_equal(report.prediction_set.numpy(), expected.prediction_set)
    assert report.steps_simulated == calls == run_steps_simulated(
        rule.checkpoints, rule.num_steps, expected.exit_step.tolist(), None  # the adapters' default policy
    )
    if target is not None:
        assert report.accuracy == pytest.approx((expected.prediction == target.numpy()).mean(), abs=1e-15)


# --- continuous batching: a host's SlotNetwork, checked without the engine -----------------------------------


def assert_slot_rows_follow_fresh_runs(make_slots: Callable[[], object], record: Callable[[Tensor], Tensor],
                                       inputs: Tensor) -> None:
    """A host's SlotNetwork resets and keeps rows exactly.

    ``inputs`` is time first, ``[T >= 10, 5, ...]``; ``record(inputs)`` runs a freshly reset network over the whole
    recording and returns its outputs ``[T, 5, N]``; ``make_slots()`` returns the SlotNetwork of a freshly reset
    network. Rows 0, 1, 2 start with samples 0, 1, 2; after 4 steps row 1 is reset and takes sample 3 from its
    first step; after 8 steps only rows [1, 2] are kept. Every output equals that sample's output at its own step
    in the full recording.
    """
    expected = record(inputs)
    assert expected.sum() > 0, "the test network never spikes: the check would be vacuous"
    slots = make_slots()
    samples, started = [0, 1, 2], [0, 0, 0]  # which sample each row holds, and the step at which it started
    with torch.no_grad():
        for step in range(10):
            if step == 4:
                slots.reset_rows(torch.tensor([1]))
                samples[1], started[1] = 3, 4
            if step == 8:
                slots.keep_rows(torch.tensor([1, 2]))
                samples, started = samples[1:], started[1:]
            own_steps = [step - start for start in started]
            step_input = torch.stack([inputs[t, s] for t, s in zip(own_steps, samples, strict=True)])
            output = slots.step(step_input)
            wanted = torch.stack([expected[t, s] for t, s in zip(own_steps, samples, strict=True)])
            assert torch.equal(output, wanted), f"step {step}: rows {samples} at their steps {own_steps}"
