"""The loss calls of the adversarial suites: a strategy of mixed valid and adversarial calls of the three losses
(function and module), their oracle (which arguments are faulty, the expected value from ``reference`` or the
exact smoothing-0 form), and the gradient checks against directional finite differences. Shared by the core
suite and the adapters' suites."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import reference

from .oracles import (
    F32_EPS,
    Problem,
    check_choice_option,
    check_int_option,
    check_num_classes_option,
    check_real_option,
    check_smoothing_option,
    check_spike_tensor,
    check_target_tensor,
    check_target_values,
    check_time_dim_option,
    check_weight_tensor,
    exact_window_terms,
    grouped_window_counts,
    label_smoothed,
    scaled,
    upstream_scale,
)
from .support import (
    INF,
    LABEL_SMOOTHINGS,
    MODES,
    NAN,
    RATES,
    REDUCTIONS,
    SMOOTHINGS,
    TEMPERATURES,
    VALID,
    Faults,
    adversarial_spikes,
    classify,
    mixed,
    num_classes_values,
    seeds,
    spike_tensors,
    spike_values,
    stride_values,
    target_args,
    time_dim_values,
    weight_args,
    window_values,
)

# ================================================================================================== losses

LOSS_KINDS = ("spikemax_g", "spikemax_s", "mse_count")
MODULES = {"spikemax_g": smx.SpikeMaxGLoss, "spikemax_s": smx.SpikeMaxSLoss, "mse_count": smx.MSECountLoss}
FUNCTIONS = {"spikemax_g": smx.spikemax_g, "spikemax_s": smx.spikemax_s, "mse_count": smx.mse_count}


@dataclass
class LossCall:
    kind: str
    spikes: object  # SpikeArg
    target: object  # TargetArg
    weight: object  # WeightArg
    options: dict
    checks_on: bool
    grad_output_seed: int
    direction_seed: int
    huge_weights: bool = False


def _to_meta(value):
    return value.detach().to("meta") if isinstance(value, torch.Tensor) else value


@st.composite
def loss_calls(draw, kind: str, *, huge_weights: bool = False, adversarial: bool = True, silent: bool = False):
    """A loss call; ``silent``: float64 spikes requiring grad, sparse enough for silent classes in some windows,
    at smoothing 0 in probability mode (the closed-form gradient's conventions)."""
    num_steps = draw(st.integers(1, 6))
    batch_size = draw(st.integers(1, 4))
    classes = draw(st.integers(2, 4))
    group = draw(st.sampled_from([1, 1, 2]))
    population = group > 1 or draw(st.booleans())
    time_dim = draw(st.sampled_from([0, 1, 2]))
    if silent:
        rng = np.random.default_rng(draw(seeds()))
        base = (rng.random((num_steps, batch_size, classes * group)) < draw(st.sampled_from([0.1, 0.25, 0.5])))
        base = base * rng.choice([1.0, 0.5, 2.0], size=base.shape)
    else:
        base = draw(spike_values((num_steps, batch_size, classes * group)))
    if adversarial and draw(st.integers(0, 11)) == 0:
        spikes = draw(adversarial_spikes(base, time_dim))
    elif silent:
        spikes = draw(spike_tensors(base, time_dim, dtype=torch.float64, requires_grad=True, allow_meta=False))
    else:
        spikes = draw(spike_tensors(base, time_dim))
    target = draw(target_args(batch_size, classes, adversarial=adversarial, soft=not huge_weights))
    weight = draw(weight_args(classes, adversarial=adversarial, huge=huge_weights))
    if isinstance(spikes.value, torch.Tensor) and spikes.value.is_meta and draw(st.integers(0, 4)) > 0:
        target.value, target.leaf = _to_meta(target.value), None
        weight.value, weight.leaf = _to_meta(weight.value), None

    def option(values):
        return draw(mixed(*values) if adversarial else st.sampled_from(values[0]))

    options = {
        "reduction": option(REDUCTIONS),
        "num_classes": draw(num_classes_values(classes * group, classes, population) if adversarial
                            else st.just(classes if population else None)),
        "time_dim": draw(time_dim_values(time_dim) if adversarial else st.sampled_from([time_dim, time_dim - 3])),
    }
    if kind == "mse_count":
        options["true_rate"] = option(RATES)
        options["false_rate"] = option(RATES)
    else:
        options["mode"] = option(MODES)
        options["temperature"] = option(TEMPERATURES)
        options["smoothing"] = option(SMOOTHINGS)
        options["label_smoothing"] = option(LABEL_SMOOTHINGS)
    if kind == "spikemax_s":
        options["window"] = draw(window_values(num_steps) if adversarial else st.integers(1, num_steps))
        options["stride"] = draw(stride_values() if adversarial else st.integers(1, 4))
    if silent:
        options["mode"], options["smoothing"] = "probability", draw(st.sampled_from([0.0, 0, -0.0]))
        options["temperature"] = draw(st.sampled_from([1.0, 1, 0.5, 2.0, 0.25, 4.0]))
    if huge_weights:
        options["reduction"] = "mean"  # with class indices (and in mse_count) the weighted mean is scale-free
    checks_on = draw(st.integers(0, 5)) > 0
    return LossCall(kind, spikes, target, weight, options, checks_on, draw(seeds()), draw(seeds()), huge_weights)


@dataclass
class LossOracle:
    faults: Faults
    option_faults: Faults
    problem: Problem | None
    target_kind: str | None
    target_np: np.ndarray | None
    weight_np: np.ndarray | None
    options: dict  # parsed


def option_faults_of(kind: str, options: dict) -> tuple[Faults, dict]:
    faults = Faults()
    parsed = {}
    if kind == "mse_count":
        parsed["true_rate"] = check_real_option(faults, "true_rate", options["true_rate"], 0.0, 1e6)
        parsed["false_rate"] = check_real_option(faults, "false_rate", options["false_rate"], 0.0, 1e6)
    else:
        parsed["mode"] = check_choice_option(faults, "mode", options["mode"], ("probability", "softmax"))
        parsed["temperature"] = check_real_option(faults, "temperature", options["temperature"], 1e-4, 1e4)
        parsed["smoothing"] = check_smoothing_option(faults, options["smoothing"])
        parsed["label_smoothing"] = check_real_option(faults, "label_smoothing", options["label_smoothing"], 0, 1)
    if kind == "spikemax_s":
        parsed["window"] = check_int_option(faults, "window", options["window"], 1)
        parsed["stride"] = check_int_option(faults, "stride", options["stride"], 1)
    parsed["reduction"] = check_choice_option(faults, "reduction", options["reduction"], ("mean", "sum", "none"))
    parsed["num_classes_ok"], parsed["num_classes"] = check_num_classes_option(faults, options["num_classes"])
    parsed["time_dim"] = check_time_dim_option(faults, options["time_dim"])
    return faults, parsed


def loss_windows(kind: str, problem: Problem, parsed: dict) -> tuple[int, int]:
    if kind == "spikemax_s":
        return parsed["window"], parsed["stride"]
    return problem.num_steps, 1


def loss_oracle(kind: str, spikes, target, weight, options: dict) -> LossOracle:
    """Which arguments of a loss call are faulty, from the docstrings; the parsed problem when none is."""
    option_faults, parsed = option_faults_of(kind, options)
    faults = Faults(list(option_faults.structural))
    problem = check_spike_tensor(faults, spikes, parsed["time_dim"], parsed["num_classes_ok"], parsed["num_classes"])
    target_kind = check_target_tensor(faults, target, spikes, problem)
    check_weight_tensor(faults, weight, spikes, problem)
    if problem is not None and kind == "spikemax_s" and parsed["window"] is not None:
        if parsed["window"] > problem.num_steps:
            faults.add("window", f"window {parsed['window']} > T = {problem.num_steps}")
    oracle = LossOracle(faults, option_faults, problem, target_kind, None, None, parsed)
    if faults.structural or problem is None or problem.meta:
        return oracle
    window, stride = loss_windows(kind, problem, parsed)
    counts = grouped_window_counts(problem.tbn, problem.classes, window, stride)
    if not np.isfinite(counts).all():
        faults.add_value("spikes", "a count that is NaN or infinite")
    elif (counts < 0).any():
        faults.add_value("spikes", f"a negative count {counts.min()}")
    oracle.target_np = check_target_values(faults, target, target_kind, problem.classes)
    if weight is not None:
        oracle.weight_np = weight.detach().to(torch.float64).numpy()
        if not np.isfinite(oracle.weight_np).all() or (oracle.weight_np < 0).any():
            faults.add_value("weight", "a weight that is negative or not finite")
        elif parsed["reduction"] == "mean" and (kind == "mse_count" or target_kind == "hard"):
            # Only the sign matters here: a sum of huge weights may overflow to inf, still > 0.
            with np.errstate(over="ignore"):
                if target_kind == "hard":
                    labels = np.clip(oracle.target_np, 0, problem.classes - 1)
                    denominator = oracle.weight_np[labels].sum()
                else:
                    denominator = (oracle.target_np @ oracle.weight_np).sum()
            if not denominator > 0:
                faults.add_value("weight", "every sample has weight 0: the weighted mean is 0 / 0")
    return oracle


def exact_probability_loss(oracle: LossOracle, kind: str, weight_np: np.ndarray | None):
    """The smoothing-0 probability loss from exact_window_terms (zero-weight terms are 0, as documented), with the
    class weights ``weight_np`` (the oracle's, or them scaled as in :func:`expected_loss`)."""
    problem, parsed = oracle.problem, oracle.options
    window, stride = loss_windows(kind, problem, parsed)
    counts = grouped_window_counts(problem.tbn, problem.classes, window, stride)
    distribution = label_smoothed(oracle.target_np, oracle.target_kind, problem.classes, parsed["label_smoothing"])
    weight = np.ones(problem.classes) if weight_np is None else weight_np
    terms, _, _ = exact_window_terms(counts, distribution * weight, parsed["temperature"])
    per_sample = terms.mean(0)
    if parsed["reduction"] == "none":
        return per_sample
    if parsed["reduction"] == "sum":
        return per_sample.sum()
    if weight_np is not None and oracle.target_kind == "hard":
        return per_sample.sum() / weight_np[oracle.target_np].sum()
    return per_sample.sum() / problem.batch_size


def reference_loss(kind: str, tbn: np.ndarray, target_np, weight_np, parsed: dict, classes: int):
    if kind == "mse_count":
        return reference.mse_count(tbn, target_np, true_rate=parsed["true_rate"], false_rate=parsed["false_rate"],
                                   weight=weight_np, num_classes=classes, reduction=parsed["reduction"])
    common = dict(mode=parsed["mode"], temperature=parsed["temperature"], smoothing=parsed["smoothing"],
                  weight=weight_np, reduction=parsed["reduction"], num_classes=classes,
                  label_smoothing=parsed["label_smoothing"])
    if kind == "spikemax_g":
        return reference.spikemax_g(tbn, target_np, **common)
    return reference.spikemax_s(tbn, target_np, window=parsed["window"], stride=parsed["stride"], **common)


def expected_loss(kind: str, oracle: LossOracle, scale_free: bool = False) -> np.ndarray:
    problem, parsed = oracle.problem, oracle.options
    weight = oracle.weight_np
    if scale_free and weight is not None:
        # A weighted mean over class indices (or mse_count's) does not depend on the weights' scale: the
        # reference gets them divided by their maximum, so that it does not overflow in float64 itself.
        weight = weight / weight.max()
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        expected = np.asarray(reference_loss(kind, problem.tbn, oracle.target_np, weight, parsed,
                                             problem.classes), dtype=np.float64)
        if kind != "mse_count" and parsed["mode"] == "probability" and parsed["smoothing"] == 0:
            exact = np.asarray(exact_probability_loss(oracle, kind, weight), dtype=np.float64)
            agree = np.isnan(expected) | np.isclose(expected, exact, rtol=1e-9, atol=1e-12) | (expected == exact)
            assert agree.all(), f"test oracle disagreement: reference {expected} vs exact {exact}"
            expected = exact
    return expected


def loss_tolerance(kind: str, oracle: LossOracle, result_dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for a float32 or float64 loss: rounding of counts and logits, scaled by their size."""
    problem, parsed = oracle.problem, oracle.options
    window, stride = loss_windows(kind, problem, parsed)
    counts = grouped_window_counts(problem.tbn, problem.classes, window, stride)
    if kind == "mse_count":
        target_count = max(parsed["true_rate"], parsed["false_rate"]) * problem.num_steps * (
            problem.num_outputs // problem.classes)
        scale = (np.abs(counts).max() + target_count + 1) ** 2
    else:
        temperature = parsed["temperature"]
        if parsed["mode"] == "softmax":
            logits = np.abs(counts) / temperature
        else:
            shifted = counts + parsed["smoothing"]
            with np.errstate(divide="ignore"):
                logits = np.where(shifted > 0, np.abs(np.log(np.where(shifted > 0, shifted, 1))), 0) / temperature
        scale = 1 + logits.max() + 1 / temperature + math.log(problem.classes)
    weight_scale = 1.0 if oracle.weight_np is None else max(1.0, float(oracle.weight_np.max()))
    if parsed["reduction"] == "mean" and (kind == "mse_count" or oracle.target_kind == "hard"):
        weight_scale = 1.0  # a weighted mean of per-sample losses: its error is at most theirs
    batch_scale = problem.batch_size if parsed["reduction"] == "sum" else 1
    if result_dtype == torch.float64:
        return 1e-9, 1e-9 * scale * weight_scale * batch_scale
    return 64 * F32_EPS, 64 * F32_EPS * scale * weight_scale * batch_scale


def assert_close_to(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float, what: str) -> None:
    """allclose that also demands identical infinities and refuses any NaN in ``actual``."""
    assert not np.isnan(actual).any(), f"{what}: NaN in {actual} (expected {expected})"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def check_loss_result(kind: str, call: LossCall, oracle: LossOracle, result) -> None:
    problem, parsed = oracle.problem, oracle.options
    spikes = call.spikes.value
    result_dtype = torch.float64 if spikes.dtype == torch.float64 else torch.float32
    assert isinstance(result, torch.Tensor)
    assert result.dtype == result_dtype, f"loss dtype {result.dtype} for {spikes.dtype} spikes"
    assert tuple(result.shape) == ((problem.batch_size,) if parsed["reduction"] == "none" else ())
    assert result.device == spikes.device
    if problem.meta:
        return
    expected = expected_loss(kind, oracle, scale_free=call.huge_weights)
    if result_dtype == torch.float32:
        with np.errstate(over="ignore"):
            expected = expected.astype(np.float32).astype(np.float64)  # a true value past float32's range is inf
    rtol, atol = loss_tolerance(kind, oracle, result_dtype)
    assert_close_to(result.detach().to(torch.float64).numpy().reshape(expected.shape), expected, rtol, atol,
                    f"{kind} forward")
    if result_dtype == torch.float64 and not call.huge_weights:  # gradients in float64, where FD is meaningful
        check_loss_gradients(kind, call, oracle, result)


# ------------------------------------------------------------------------------------------ loss gradients


def _grad_output(call: LossCall, oracle: LossOracle) -> np.ndarray:
    rng = np.random.default_rng(call.grad_output_seed)
    values = rng.standard_normal(oracle.problem.batch_size)
    values[rng.random(oracle.problem.batch_size) < 0.25] = 0.0  # a sample whose loss does not matter
    return values


def _perturbed_loss(kind, call, oracle, spikes_leaf=None, target_leaf=None, weight_leaf=None) -> float:
    """The reference loss (reduced, contracted with grad_output for 'none') at perturbed leaf values."""
    problem, parsed = oracle.problem, oracle.options
    tbn, target_np, weight_np = problem.tbn, oracle.target_np, oracle.weight_np
    if spikes_leaf is not None:
        rebuilt = call.spikes.rebuild(torch.from_numpy(spikes_leaf)).detach().numpy()
        tbn = np.moveaxis(rebuilt, problem.time_dim, 0)
    if target_leaf is not None:
        target_np = call.target.rebuild(torch.from_numpy(target_leaf)).detach().numpy()
    if weight_leaf is not None:
        weight_np = weight_leaf
    value = np.asarray(reference_loss(kind, tbn, target_np, weight_np, parsed, problem.classes), dtype=np.float64)
    if parsed["reduction"] == "none":
        return float((value * _grad_output(call, oracle)).sum())
    return float(value)


def _smooth_step(kind: str, oracle: LossOracle) -> float | None:
    """A finite-difference step when the reference loss is smooth around the point, else None."""
    problem, parsed = oracle.problem, oracle.options
    if kind == "mse_count":
        return 1e-6
    temperature = parsed["temperature"]
    if parsed["mode"] == "softmax":
        return 1e-6 * min(1.0, temperature)
    window, stride = loss_windows(kind, problem, parsed)
    shifted = grouped_window_counts(problem.tbn, problem.classes, window, stride) + parsed["smoothing"]
    if shifted.min() < 0.05:
        return None
    return 1e-6 * min(1.0, temperature, float(shifted.min()))


def _logit_scale(kind: str, oracle: LossOracle) -> float:
    """The largest count logit the reference forms, at least 1: ``|log(c + smoothing)| / temperature`` or
    ``|c| / temperature`` (softmax). The reference's losses and probabilities carry a rounding error of ~eps
    times it (at temperature 1e-4, log(2) / 1e-4 = 6931: errors of ~1e-12, not ~1e-16)."""
    problem, parsed = oracle.problem, oracle.options
    if kind == "mse_count":
        return 1.0
    window, stride = loss_windows(kind, problem, parsed)
    counts = grouped_window_counts(problem.tbn, problem.classes, window, stride)
    if parsed["mode"] == "softmax":
        logits = np.abs(counts)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            logits = np.abs(np.log(counts + parsed["smoothing"]))
    finite = logits[np.isfinite(logits)]
    return max(1.0, float(finite.max(initial=0.0)) / parsed["temperature"])


def _directional_fd(
    function, point: np.ndarray, direction: np.ndarray, step: float, gradient_size: float, logit_scale: float
) -> tuple[float, float]:
    """(central difference, its round-off bound).

    The bound covers the rounding of the loss values (relative to the largest logit, ``logit_scale``, see
    :func:`_logit_scale`) and of the inputs: ``point +- step * direction`` and the counts the reference sums
    from it are rounded to float64, so each count moves by up to a few ulps of the largest sum (at a count of
    2**24, 4e-9: a fraction of a percent of a 1e-6 step). That moves the loss by at most ``gradient_size`` (the
    largest derivative) per unit; the term is below 1e-7 of the derivative unless the inputs sum to more than
    ~1e2.
    """
    plus, minus = function(point + step * direction), function(point - step * direction)
    eps = float(np.finfo(np.float64).eps)
    # Only finite inputs can enter a valid call's loss: a non-finite spike at a step that no evaluated window
    # covers (stride > 1) is ignored by the loss and must not make the bound inf * 0 = NaN.
    magnitude = float(np.abs(point[np.isfinite(point)]).sum())
    input_rounding = 4 * eps * magnitude * float(np.abs(direction).sum()) * gradient_size
    loss_rounding = 64 * eps * (1 + abs(plus) + abs(minus)) * logit_scale
    return (plus - minus) / (2 * step), (loss_rounding + input_rounding) / step


def check_loss_gradients(kind: str, call: LossCall, oracle: LossOracle, result: torch.Tensor) -> None:
    leaves = {"spikes": call.spikes.leaf, "target": call.target.leaf, "weight": call.weight.leaf}
    leaves = {name: leaf for name, leaf in leaves.items() if leaf is not None}
    if not leaves:
        return
    parsed = oracle.options
    grad_output = _grad_output(call, oracle)
    scalar = (result * torch.from_numpy(grad_output)).sum() if parsed["reduction"] == "none" else result
    if scalar.requires_grad:
        grads = torch.autograd.grad(scalar, list(leaves.values()), allow_unused=True)
    else:
        grads = [None] * len(leaves)
    actual = {name: (torch.zeros_like(leaf) if grad is None else grad).detach().numpy()
              for (name, leaf), grad in zip(leaves.items(), grads, strict=True)}
    rng = np.random.default_rng(call.direction_seed)
    exact = kind != "mse_count" and parsed["mode"] == "probability" and parsed["smoothing"] == 0
    if exact:
        check_exact_gradients(kind, call, oracle, actual, grad_output)
    step = _smooth_step(kind, oracle)
    if step is None:
        return
    for name, leaf in leaves.items():
        point = leaf.detach().numpy().copy()
        direction = rng.standard_normal(point.shape)
        if name == "target":
            # The reference skips terms whose target share is <= 0: keep the direction off zero shares.
            shares = point * (1 - parsed.get("label_smoothing", 0.0))
            direction = np.where(shares > 1e-3, direction, 0.0)

        def loss_at(values, name=name):
            return _perturbed_loss(kind, call, oracle, **{f"{name}_leaf": values})

        expected, round_off = _directional_fd(
            loss_at, point, direction, step, float(np.abs(actual[name]).max()), _logit_scale(kind, oracle)
        )
        got = float((actual[name] * direction).sum())
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6 + round_off), (
            f"{kind}: d loss / d {name} along a random direction: autograd {got}, reference finite "
            f"difference {expected} ({call.spikes.description}; {call.target.description}; {call.weight.description})")


def check_exact_gradients(kind, call, oracle, actual: dict, grad_output: np.ndarray) -> None:
    """smoothing = 0, probability mode: the gradients against the closed form (exact_window_terms)."""
    problem, parsed = oracle.problem, oracle.options
    window, stride = loss_windows(kind, problem, parsed)
    counts = grouped_window_counts(problem.tbn, problem.classes, window, stride)
    num_windows = counts.shape[0]
    distribution = label_smoothed(oracle.target_np, oracle.target_kind, problem.classes, parsed["label_smoothing"])
    weight = np.ones(problem.classes) if oracle.weight_np is None else oracle.weight_np
    _, count_gradient, negative_log_p = exact_window_terms(counts, distribution * weight, parsed["temperature"])
    upstream = upstream_scale(parsed["reduction"], oracle.target_kind, oracle.target_np, oracle.weight_np,
                              problem.batch_size, grad_output) / num_windows
    up = upstream[None, :, None]
    if "spikes" in actual:
        group = problem.num_outputs // problem.classes
        per_window = np.repeat(scaled(up, count_gradient), group, axis=-1)  # [S, B, N]
        expected_tbn = np.zeros((problem.num_steps, problem.batch_size, problem.num_outputs))
        for index, end in enumerate(range(window - 1, problem.num_steps, stride)):
            expected_tbn[end - window + 1: end + 1] += per_window[index]
        # Back to the leaf's shape: the gradient of the leaf is the adjoint of `rebuild`.
        expected_leaf = _adjoint(call.spikes, problem, expected_tbn)
        assert not np.isnan(expected_tbn).any()  # per sample and step, never NaN
        # dL/dc_i = (A p_i - a_i) / (T c_i) is a difference of two terms of size a_i / (T c_i): with tiny counts
        # (1e-30) they are ~1e29 and cancel, leaving float64 rounding of ~eps times their size, in any evaluation;
        # p_i = exp(log(c_i) / T - log sum_j c_j^(1/T)) carries ~eps times the largest logit log(c) / T.
        with np.errstate(divide="ignore", invalid="ignore"):
            sizes = np.abs(up) * (distribution * weight)[None] / (parsed["temperature"] * counts)
        size = float(np.max(sizes[np.isfinite(sizes)], initial=0.0))
        cancellation = 64 * np.finfo(np.float64).eps * size * _logit_scale(kind, oracle)
        # NaN only where one leaf entry feeds samples whose gradients are +inf and -inf (see _adjoint).
        np.testing.assert_allclose(actual["spikes"], expected_leaf, rtol=1e-9, atol=1e-12 + cancellation,
                                   equal_nan=True, err_msg=f"{kind} smoothing=0 d loss / d spikes")
    with np.errstate(invalid="ignore"):  # 0 * inf where a class has no target mass; np.where keeps the 0
        terms = np.where(distribution == 0, 0.0, distribution * np.where(np.isinf(negative_log_p), INF, negative_log_p))
    if "weight" in actual and (parsed["reduction"] != "mean" or oracle.target_kind == "soft"):
        with np.errstate(invalid="ignore"):
            expected = scaled(up, terms).sum((0, 1))
        np.testing.assert_allclose(actual["weight"], expected, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=f"{kind} smoothing=0 d loss / d weight")
    if "target" in actual and parsed["label_smoothing"] < 1:
        with np.errstate(invalid="ignore"):  # 0 * inf where a weight is 0; np.where keeps the 0
            weighted = np.where(weight == 0, 0.0, weight * negative_log_p)
            expected = (1 - parsed["label_smoothing"]) * scaled(up, weighted).sum(0)
        expected = _adjoint_target(call.target, expected)
        np.testing.assert_allclose(actual["target"], expected, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=f"{kind} smoothing=0 d loss / d target")


def _adjoint(spike_arg, problem: Problem, gradient_tbn: np.ndarray) -> np.ndarray:
    """The leaf gradient of a function whose gradient in the [T, B, N] interpretation is ``gradient_tbn``."""
    leaf = spike_arg.leaf.detach().clone().requires_grad_()
    view = spike_arg.rebuild(leaf)
    (view.movedim(problem.time_dim, 0) * torch.from_numpy(np.nan_to_num(gradient_tbn, posinf=0, neginf=0))).sum() \
        .backward()
    result = leaf.grad.numpy().copy()
    # Infinite entries: route them separately so that inf * 0 never appears in the adjoint. A leaf entry that
    # feeds both a +inf and a -inf (an expanded batch whose samples have upstream gradients of opposite signs)
    # gets inf - inf = NaN: there the derivative does not exist.
    hits = {}
    for sign in (INF, -INF):
        mask = (gradient_tbn == sign).astype(np.float64)
        hits[sign] = np.zeros(result.shape, dtype=bool)
        if mask.any():
            leaf.grad = None
            (view.movedim(problem.time_dim, 0) * torch.from_numpy(mask)).sum().backward()
            hits[sign] = leaf.grad.numpy() > 0
    result = np.where(hits[INF], INF, result)
    result = np.where(hits[-INF], -INF, result)
    return np.where(hits[INF] & hits[-INF], NAN, result)


def _adjoint_target(target_arg, gradient: np.ndarray) -> np.ndarray:
    return gradient.T if target_arg.rebuild is torch.t else gradient  # a transposed view: leaf is [C, B]


# ------------------------------------------------------------------------------------------- loss properties


def run_loss_call(call: LossCall, api: str) -> None:
    kind = call.kind
    label = f"core/{kind}/{api}"
    spikes, target, weight = call.spikes.value, call.target.value, call.weight.value
    oracle = loss_oracle(kind, spikes, target, weight, call.options)
    meta = any(isinstance(x, torch.Tensor) and x.is_meta for x in (spikes, target, weight))
    values_checked = call.checks_on and not meta
    with smx.value_checks(call.checks_on):
        if api == "function":
            outcome, result = classify(label, lambda: FUNCTIONS[kind](spikes, target, weight=weight, **call.options),
                                       oracle.faults, values_checked=values_checked)
        else:
            init_faults = Faults(list(oracle.option_faults.structural))
            module_weight_faults(init_faults, weight, oracle.options)
            outcome, module = classify(f"{label}/init", lambda: MODULES[kind](weight=weight, **call.options),
                                       init_faults, values_checked=call.checks_on and not (
                                           isinstance(weight, torch.Tensor) and weight.is_meta))
            if outcome != VALID:
                return
            outcome, result = classify(label, lambda: module(spikes, target), oracle.faults,
                                       values_checked=values_checked)
    if outcome == VALID:
        check_loss_result(kind, call, oracle, result)


def module_weight_faults(faults: Faults, weight, parsed: dict) -> None:
    """A module's weight at construction: a float tensor [C], C >= 2, finite and >= 0, C = num_classes."""
    if weight is None:
        return
    if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
        faults.add("weight", "not a float tensor")
        return
    if weight.dim() != 1 or weight.shape[0] < 2:
        faults.add("weight", f"shape {tuple(weight.shape)}")
        return
    if parsed["num_classes_ok"] and parsed["num_classes"] is not None and weight.shape[0] != parsed["num_classes"]:
        faults.add("weight", f"length {weight.shape[0]} != num_classes {parsed['num_classes']}")
    if not weight.is_meta:
        values = weight.detach().to(torch.float64).numpy()
        if not np.isfinite(values).all() or (values < 0).any():
            faults.add_value("weight", "negative or not finite")
