"""Adversarial decision metrics and synaptic_operations against ``reference``, decisions above the float32
integer range included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import reference, streaming

from .loss_oracle import (
    _adjoint,
    _to_meta,
)
from .oracles import (
    F32_EPS,
    check_num_classes_option,
    check_spike_tensor,
    check_target_tensor,
    check_target_values,
    check_time_dim_option,
    running_grouped,
)
from .support import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    INF,
    NAN,
    VALID,
    Fault,
    Faults,
    adversarial_spikes,
    classify,
    mixed,
    num_classes_values,
    record_valid,
    seeds,
    spike_tensors,
    spike_values,
    target_args,
    time_dim_values,
)

# ======================================================================== precision of decisions (4)


@given(seed=seeds(), offsets=st.lists(st.integers(0, 7), min_size=2, max_size=4), dtype=st.sampled_from(
    [torch.float32, torch.bfloat16, torch.float16]))
def test_decisions_above_float32_integer_range(seed, offsets, dtype):
    """Counts above 2**24 that differ by a few spikes: predict, accuracy and time_to_decision decide exactly as the
    float64 reference (float32 counts would round distinct counts into ties)."""
    classes = len(offsets)
    rng = np.random.default_rng(seed)
    big = 2.0**24 if dtype != torch.float16 else 2.0**15  # float16 cannot hold 2**24; 2**15 + k overflows its sums
    num_steps = 1 + max(offsets) + 1
    values = np.zeros((num_steps, 1, classes))
    values[0, 0, :] = big
    for i, offset in enumerate(offsets):
        values[1: 1 + offset, 0, i] = 1.0
    values = values[:, :, rng.permutation(classes)]
    spikes = torch.tensor(values, dtype=dtype)
    actual_values = spikes.double().numpy()
    np.testing.assert_array_equal(smx.predict(spikes).numpy(), reference.predict(actual_values))
    np.testing.assert_array_equal(smx.time_to_decision(spikes).numpy(), reference.time_to_decision(actual_values))
    target = torch.tensor([int(np.argmax(actual_values.sum(0)[0]))])
    assert smx.accuracy(spikes, target).item() == reference.accuracy(actual_values, target.numpy())
    record_valid("core/precision/decisions above 2**24")


# ======================================================================================== decision metrics

METRIC_FUNCTIONS = ("spike_counts", "predict", "accuracy", "accuracy_over_time", "time_to_decision")


@st.composite
def metric_calls(draw, name: str):
    num_steps, batch_size = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    classes, group = draw(st.integers(2, 4)), draw(st.sampled_from([1, 1, 2]))
    population = group > 1 or draw(st.booleans())
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True))
    if draw(st.integers(0, 11)) == 0:
        spikes = draw(adversarial_spikes(base, time_dim))
    else:
        spikes = draw(spike_tensors(base, time_dim, requires_grad=name == "spike_counts" and draw(st.booleans())))
    target = draw(target_args(batch_size, classes, soft=draw(st.integers(0, 9)) == 0))
    if isinstance(spikes.value, torch.Tensor) and spikes.value.is_meta and draw(st.integers(0, 4)) > 0:
        target.value = _to_meta(target.value)
    num_classes = draw(num_classes_values(classes * group, classes, population))
    return spikes, target, num_classes, draw(time_dim_values(time_dim)), draw(st.integers(0, 5)) > 0, draw(seeds())


def metric_oracle(name: str, spikes, target, num_classes, time_dim):
    faults = Faults()
    td = check_time_dim_option(faults, time_dim)
    ok, classes = check_num_classes_option(faults, num_classes)
    problem = check_spike_tensor(faults, spikes, td, ok, classes)
    uses_target = name in ("accuracy", "accuracy_over_time")
    labels = None
    if uses_target:
        kind = check_target_tensor(faults, target, spikes, problem, allow_soft=False)
    if faults.structural or problem is None or problem.meta:
        return faults, problem, labels
    # The metrics check the spikes themselves (a negative spike inside a population group cannot hide in a
    # sum), and that their counts do not overflow.
    if not np.isfinite(problem.tbn).all():
        faults.add_value("spikes", "a spike that is NaN or infinite")
    elif (problem.tbn < 0).any():
        faults.add_value("spikes", "a negative spike")
    else:
        # Counted only from finite non-negative spikes (inf - inf would be NaN, with a numpy RuntimeWarning);
        # an overflow to inf is the fault looked for.
        with np.errstate(over="ignore"):
            counts = running_grouped(problem.tbn, problem.classes)
        if not np.isfinite(counts).all():
            faults.add_value("spikes", "a count that overflows")
    if uses_target:
        labels = check_target_values(faults, target, kind, problem.classes)
    return faults, problem, labels


@pytest.mark.parametrize("name", METRIC_FUNCTIONS)
@given(data=st.data())
def test_metric_adversarial(name, data):
    spike_arg, target_arg, num_classes, time_dim, checks_on, seed = data.draw(metric_calls(name))
    spikes, target = spike_arg.value, target_arg.value
    faults, problem, labels = metric_oracle(name, spikes, target, num_classes, time_dim)
    function = getattr(smx, name)
    if name in ("accuracy", "accuracy_over_time"):
        def call():
            return function(spikes, target, num_classes, time_dim=time_dim)
    else:
        def call():
            return function(spikes, num_classes, time_dim=time_dim)
    meta = any(isinstance(x, torch.Tensor) and x.is_meta for x in (spikes, target))
    with smx.value_checks(checks_on):
        outcome, result = classify(f"core/{name}", call, faults, values_checked=checks_on and not meta)
    if outcome != VALID:
        return
    batch_size, classes = problem.batch_size, problem.classes
    shapes = {"spike_counts": (batch_size, classes), "predict": (batch_size,), "accuracy": (),
              "accuracy_over_time": (problem.num_steps,), "time_to_decision": (batch_size,)}
    dtypes = {"spike_counts": torch.float64 if spikes.dtype == torch.float64 else torch.float32,
              "predict": torch.int64, "accuracy": torch.float32, "accuracy_over_time": torch.float32,
              "time_to_decision": torch.int64}
    assert tuple(result.shape) == shapes[name] and result.dtype == dtypes[name], (result.shape, result.dtype)
    assert result.device == spikes.device
    if meta:
        return
    tbn = problem.tbn
    if name == "spike_counts":
        expected = reference.spike_counts(tbn, classes)
        rtol = 1e-12 if spikes.dtype == torch.float64 else 2 * F32_EPS
        np.testing.assert_allclose(result.detach().double().numpy(), expected, rtol=rtol, atol=0)
        if spike_arg.leaf is not None:
            weights = np.random.default_rng(seed).standard_normal((batch_size, classes))
            (gradient,) = torch.autograd.grad((result * torch.from_numpy(weights)).sum(), spike_arg.leaf)
            group = problem.num_outputs // classes
            expected_tbn = np.broadcast_to(np.repeat(weights, group, axis=-1), tbn.shape)
            np.testing.assert_allclose(gradient.numpy(), _adjoint(spike_arg, problem, np.array(expected_tbn)),
                                       rtol=1e-12, atol=0)
    elif name == "predict":
        np.testing.assert_array_equal(result.numpy(), reference.predict(tbn, classes))
    elif name == "time_to_decision":
        np.testing.assert_array_equal(result.numpy(), reference.time_to_decision(tbn, classes))
    elif name == "accuracy":
        assert result.item() == pytest.approx(reference.accuracy(tbn, labels, classes), abs=1e-6)
    else:
        np.testing.assert_allclose(result.numpy(), reference.accuracy_over_time(tbn, labels, classes), atol=1e-6)


# =================================================================================== synaptic_operations


@st.composite
def synaptic_calls(draw):
    num_steps, batch_size = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    time_dim = draw(st.sampled_from([0, 1, -1]))
    num_layers = draw(st.integers(0 if draw(st.integers(0, 15)) == 0 else 1, 3))
    rng = np.random.default_rng(draw(seeds()))
    layers, fan_outs = [], []
    for _ in range(num_layers):
        neuron_shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
        values = draw(spike_values((num_steps, batch_size, int(np.prod(neuron_shape))), exact=True))
        values = values.reshape((num_steps, batch_size) + neuron_shape)
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
        tensor = torch.tensor(np.moveaxis(values, 0, time_dim), dtype=dtype)
        pick = draw(st.integers(0, 14))
        if pick == 0:
            tensor = draw(st.sampled_from([tensor.tolist(), tensor.long(), tensor > 0, tensor[..., 0].flatten()[:2],
                                           tensor.narrow(0, 0, 1) if tensor.shape[0] > 1 else tensor.unsqueeze(0),
                                           tensor.to("meta")]))
        elif pick == 1 and tensor.dim() >= 3:
            tensor = tensor.transpose(-1, -2) if tensor.dim() > 3 else tensor  # a non-contiguous view
        layers.append(tensor)
        fan_kind = draw(st.integers(0, 9))
        if fan_kind <= 3:
            fan = draw(st.sampled_from([1, 3, 0, 2.5, 1e3]))
        elif fan_kind <= 7:
            shape = draw(st.sampled_from([neuron_shape, neuron_shape[-1:], (1,) * len(neuron_shape)]))
            fan = torch.tensor(rng.integers(0, 5, size=shape), dtype=draw(st.sampled_from(
                [torch.float64, torch.float32, torch.float16])))
        else:
            fan = draw(st.sampled_from([-1, NAN, INF, True, "2", None, torch.ones(neuron_shape, dtype=torch.int64),
                                        torch.ones((2,) + neuron_shape), torch.full(neuron_shape, -1.0),
                                        torch.full(neuron_shape, NAN), torch.ones(neuron_shape, device="meta"),
                                        torch.ones((7,))]))
        fan_outs.append(fan)
    layer_container = draw(st.sampled_from(["list", "list", "tuple", "tensor", "generator"]))
    if layer_container == "tuple":
        layers_arg = tuple(layers)
    elif layer_container == "tensor" and layers and isinstance(layers[0], torch.Tensor):
        layers_arg = layers[0]
    elif layer_container == "generator":
        layers_arg = (layer for layer in layers)
    else:
        layers_arg = layers
    if draw(st.integers(0, 9)) == 0:
        fan_outs = draw(st.sampled_from([fan_outs[:-1], fan_outs + [1], 3, torch.ones(len(fan_outs))]))
    until = None
    until_kind = draw(st.integers(0, 5))
    if until_kind in (1, 2):
        # uint16 / uint32: test_synaptic_operations_until_in_every_index_dtype.
        until = torch.tensor(rng.integers(0, num_steps, size=batch_size)).to(draw(st.sampled_from(
            [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])))
    elif until_kind == 3:
        until = draw(st.sampled_from([
            torch.full((batch_size,), num_steps), torch.full((batch_size,), -1), torch.zeros(batch_size),
            torch.zeros(batch_size + 1, dtype=torch.int64), [0] * batch_size, torch.zeros(batch_size, dtype=torch.bool),
            torch.zeros(batch_size, dtype=torch.uint64), torch.zeros(batch_size, dtype=torch.int64, device="meta")]))
    time_dim_arg = draw(mixed([time_dim], [True, 5, -9, 1.0, None]))
    return layers_arg, fan_outs, until, time_dim_arg, draw(st.integers(0, 5)) > 0


def synaptic_oracle(layers, fan_outs, until, time_dim):
    """The documented checks of synaptic_operations; returns (faults, per-layer (tbn, fan) or None)."""
    faults = Faults()
    if isinstance(layers, torch.Tensor) or not isinstance(layers, (list, tuple)):
        faults.add("layer_spikes", f"a {type(layers).__name__}, not a sequence")
        return faults, None, None
    if isinstance(fan_outs, torch.Tensor) or not isinstance(fan_outs, (list, tuple)):
        faults.add("fan_out", f"a {type(fan_outs).__name__}, not a sequence")
        return faults, None, None
    if not layers:
        faults.add("layer_spikes", "empty")
        return faults, None, None
    if len(fan_outs) != len(layers):
        faults.add("fan_out", "one entry per layer")
        return faults, None, None
    if isinstance(time_dim, bool) or not isinstance(time_dim, int):
        faults.add("time_dim", f"{time_dim!r}")
    first = layers[0]
    reference_shape, prepared = None, []
    for index, (layer, fan) in enumerate(zip(layers, fan_outs, strict=True)):
        if not isinstance(layer, torch.Tensor) or not layer.is_floating_point() or layer.dim() < 3:
            faults.add("layer_spikes", f"layer {index} is not a float tensor with >= 3 dims")
            return faults, None, None
        if isinstance(first, torch.Tensor) and layer.device != first.device:
            faults.add("layer_spikes", f"layer {index} on another device")
            return faults, None, None
        if isinstance(time_dim, bool) or not isinstance(time_dim, int):
            return faults, None, None
        if not -layer.dim() <= time_dim < layer.dim():
            faults.add("time_dim", f"{time_dim} out of range for {layer.dim()}-D")
            return faults, None, None
        td = time_dim % layer.dim()
        shape = list(layer.shape)
        num_steps = shape.pop(td)
        batch_size, neuron_shape = shape[0], tuple(shape[1:])
        if reference_shape is None:
            reference_shape = (num_steps, batch_size)
        elif (num_steps, batch_size) != reference_shape:
            faults.add("layer_spikes", f"layer {index} has another T or B")
            return faults, None, None
        if isinstance(fan, torch.Tensor):
            if not fan.is_floating_point():
                faults.add("fan_out", "integer tensor")
                return faults, None, None
            if fan.device != layer.device:
                faults.add("fan_out", "another device")
                return faults, None, None
            try:
                broadcast = torch.broadcast_shapes(fan.shape, neuron_shape)
            except RuntimeError:
                broadcast = None
            if broadcast != neuron_shape:
                faults.add("fan_out", f"shape {tuple(fan.shape)} vs {neuron_shape}")
                return faults, None, None
        elif not (isinstance(fan, (int, float)) and not isinstance(fan, bool)):
            faults.add("fan_out", f"{fan!r}")
            return faults, None, None
        elif not (math.isfinite(fan) and fan >= 0):
            faults.add("fan_out", f"{fan!r}")
            return faults, None, None
        prepared.append((layer, td, fan))
    if until is not None:
        if not isinstance(until, torch.Tensor) or until.dtype not in INDEX_DTYPES:
            faults.add("until", "not an index tensor")
            return faults, None, None
        if tuple(until.shape) != (reference_shape[1],):
            faults.add("until", f"shape {tuple(until.shape)}")
            return faults, None, None
        if until.device != first.device:
            faults.add("until", "another device")
            return faults, None, None
    if first.is_meta:
        return faults, prepared, reference_shape
    for index, (layer, _, fan) in enumerate(prepared):
        values = layer.double().numpy()
        if not np.isfinite(values).all() or (values < 0).any():
            faults.add_value("layer_spikes", f"layer {index} has NaN, inf or negative spikes")
        if isinstance(fan, torch.Tensor):
            fan_values = fan.double().numpy()
            if not np.isfinite(fan_values).all() or (fan_values < 0).any():
                faults.add_value("fan_out", f"fan_out[{index}] has NaN, inf or negative entries")
    if until is not None:
        steps = until.long().numpy()
        if steps.min() < 0 or steps.max() > reference_shape[0] - 1:
            faults.add_value("until", "a step outside [0, T - 1]")
    return faults, prepared, reference_shape


@given(call=synaptic_calls())
def test_synaptic_operations_adversarial(call):
    layers, fan_outs, until, time_dim, checks_on = call
    listed = list(layers) if not isinstance(layers, (list, tuple, torch.Tensor)) and layers is not None else layers
    if listed is not layers:  # a generator: the package sees a non-sequence; the oracle needs the type only
        faults = Faults([Fault("layer_spikes", "a generator, not a sequence")])
        prepared = None
    else:
        faults, prepared, shape = synaptic_oracle(layers, fan_outs, until, time_dim)
    meta = prepared is not None and prepared and prepared[0][0].is_meta
    with smx.value_checks(checks_on):
        outcome, result = classify("core/synaptic_operations",
                                   lambda: smx.synaptic_operations(layers, fan_outs, until=until, time_dim=time_dim),
                                   faults, values_checked=checks_on and not meta)
    if outcome != VALID:
        return
    assert result.dtype == torch.float64 and tuple(result.shape) == (shape[1],)
    if meta:
        assert result.is_meta
        return
    time_first = [np.moveaxis(layer.double().numpy(), td, 0) for layer, td, _ in prepared]
    fans = [fan.double().numpy() if isinstance(fan, torch.Tensor) else fan for _, _, fan in prepared]
    expected = reference.synaptic_operations(time_first, fans, None if until is None else until.long().numpy())
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12, atol=0)


@given(dtype=st.sampled_from(INDEX_DTYPES), seed=seeds(), as_metric=st.booleans())
def test_synaptic_operations_until_in_every_index_dtype(dtype, seed, as_metric):
    """(9) until accepts every index dtype (the check says 'an integer tensor [B]' and is_index_tensor admits
    uint16 / uint32): the result equals the reference, and the same with int64."""
    rng = np.random.default_rng(seed)
    layers = [rng.random((5, 3, 4)) < 0.5, rng.random((5, 3, 2, 2)) < 0.3]
    steps = rng.integers(0, 5, size=3)
    tensors = [torch.tensor(layer, dtype=torch.float32) for layer in layers]
    until = torch.tensor(steps).to(dtype)
    expected = reference.synaptic_operations([layer.astype(np.float64) for layer in layers], [3, 1.5], steps)
    if as_metric:
        metric = streaming.SynapticOperations()
        metric.update(tensors, [3, 1.5], until)
        assert metric.compute().item() == pytest.approx(expected.mean(), rel=1e-12)
    else:
        np.testing.assert_allclose(smx.synaptic_operations(tensors, [3, 1.5], until=until).numpy(), expected,
                                   rtol=1e-12)
    record_valid("core/synaptic_operations until dtypes")
