"""Adversarial properties: every public function, module, metric class and early-exit entry point of the core,
called with a mix of valid and adversarial arguments.

Each drawn call must end in exactly one of:

(a) a result equal to an independent oracle (``spikemax_plugins.reference`` for the losses and metrics, the NumPy
    rule semantics in ``adversarial_support`` for early exit), never NaN where the docs promise none, with the
    gradient of every differentiable input equal to directional finite differences of the reference (float64),
    or to the documented closed form at smoothing 0 where the loss is not differentiable numerically; or
(b) a ``ValueError`` / ``TypeError`` whose message names a faulty argument (or the documented ``RuntimeError``
    for a second derivative at smoothing 0).

The oracle that decides which arguments are faulty is written from the docstrings (``adversarial_support``).
Outcome counts are printed at the end of the module (``-rA`` is not needed; they go to the terminal reporter).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import _counts, early_exit, reference, streaming
from spikemax_plugins import metrics as smx_metrics

from .adversarial_support import (
    FLOAT_DTYPES,
    INDEX_DTYPES,
    INF,
    LABEL_SMOOTHINGS,
    MODES,
    NAN,
    RATES,
    REDUCTIONS,
    SMOOTHINGS,
    TEMPERATURES,
    VALID,
    Fault,
    Faults,
    Problem,
    adversarial_spikes,
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
    classify,
    exact_fraction,
    exact_window_terms,
    expect_clear_error,
    grouped_window_counts,
    label_smoothed,
    mixed,
    np_evaluate,
    np_scores,
    num_classes_values,
    record_valid,
    running_grouped,
    scaled,
    seeds,
    spike_tensors,
    spike_values,
    stride_values,
    target_args,
    time_dim_values,
    upstream_scale,
    weight_args,
    window_values,
)

F32_EPS = float(np.finfo(np.float32).eps)


@pytest.fixture(autouse=True)
def _value_checks_restored():
    yield
    assert smx.value_checks_enabled(), "a test left the value checks off"


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


@pytest.mark.parametrize("api", ["function", "module"])
@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(data=st.data())
def test_loss_adversarial(kind, api, data):
    """Every loss, as a function and as a module, on mixed valid and adversarial arguments."""
    run_loss_call(data.draw(loss_calls(kind)), api)


@pytest.mark.parametrize("api", ["function", "module"])
@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(bad=st.sampled_from([NAN, INF, -INF, -0.5, -1e-3]), position=st.integers(0, 2),
       dtype=st.sampled_from([torch.float64, torch.float32, torch.float16]),
       reduction=st.sampled_from(["mean", "sum", "none"]), soft=st.booleans(), seed=seeds())
def test_bad_weight_values_are_refused(kind, api, bad, position, dtype, reduction, soft, seed):
    """(8) A NaN, infinite or negative class weight is refused naming weight, for every reduction (not only where
    the weighted mean's denominator happens to catch it); modules refuse it when built."""
    rng = np.random.default_rng(seed)
    spikes = torch.tensor(rng.random((4, 2, 3)) < 0.5, dtype=torch.float32)
    target = torch.tensor(rng.dirichlet(np.ones(3), size=2)) if soft else torch.tensor([0, 2])
    values = [1.0, 1.0, 1.0]
    values[position] = bad
    weight = torch.tensor(values, dtype=dtype)
    options = {"reduction": reduction}
    if kind == "mse_count":
        options.update(true_rate=1.0, false_rate=0.0)
    if kind == "spikemax_s":
        options["window"] = 2
    if api == "function":
        expect_clear_error(f"core/{kind} bad weight values", lambda: FUNCTIONS[kind](
            spikes, target, weight=weight, **options), "weight")
    else:
        expect_clear_error(f"core/{kind} module bad weight values", lambda: MODULES[kind](weight=weight, **options),
                           "weight")


@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(data=st.data())
def test_loss_valid_arguments_match_reference(kind, data):
    """Only valid argument types (values may still be NaN, negative, ...): the reference and the gradients are
    exercised on every example instead of one in a few."""
    run_loss_call(data.draw(loss_calls(kind, adversarial=False)), "function")


@pytest.mark.parametrize("kind", ["spikemax_g", "spikemax_s"])
@given(data=st.data())
def test_smoothing_0_gradients_at_silent_classes(kind, data):
    """(1), (6) smoothing = 0, sparse spikes: silent classes in some windows. The loss is +inf exactly where a
    silent class carries target mass, and the gradients of spikes, weight and soft target follow the documented
    conventions (-inf on a silent target, finite elsewhere at T <= 1, never NaN) term by term."""
    run_loss_call(data.draw(loss_calls(kind, adversarial=False, silent=True)), "function")


@pytest.mark.parametrize("kind", LOSS_KINDS)
@given(data=st.data())
def test_loss_weighted_mean_with_huge_finite_weights(kind, data):
    """Weights are documented as 'finite and >= 0' (no upper bound): a weighted mean of finite losses with
    weights near the dtype's maximum is still a finite number (the mean does not depend on the weights' scale)."""
    run_loss_call(data.draw(loss_calls(kind, huge_weights=True, adversarial=False)), "function")


@pytest.mark.parametrize("dtype, huge", [(torch.float32, 3e38), (torch.float32, 1e38), (torch.float64, 1e308)])
@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_weighted_mean_is_scale_free_up_to_the_largest_weight(kind, dtype, huge):
    """A deterministic witness of test_loss_weighted_mean_with_huge_finite_weights: the weighted mean over class
    indices (and mse_count's) with every weight equal is the unweighted mean, for any finite weight."""
    spikes = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]], [[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]], dtype=dtype)
    target = torch.tensor([0, 1])
    options = {"window": 1} if kind == "spikemax_s" else {"true_rate": 0.5, "false_rate": 0.0} \
        if kind == "mse_count" else {}
    expected = FUNCTIONS[kind](spikes, target, **options)
    got = FUNCTIONS[kind](spikes, target, weight=torch.full((3,), huge, dtype=dtype), **options)
    assert torch.isfinite(expected)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6), (
        f"{kind}: weighted mean with every weight {huge:g} ({dtype}) is {got.item()}, unweighted {expected.item()}")


# ------------------------------------------------------------------------------ second derivatives


@st.composite
def second_derivative_cases(draw, smoothing_zero: bool):
    kind = draw(st.sampled_from(["spikemax_g", "spikemax_s"]))
    num_steps, batch_size, classes = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(seeds()))
    spikes = (rng.random((num_steps, batch_size, classes)) < 0.5) + 0.25  # strictly positive: smooth everywhere
    soft = draw(st.booleans())
    if soft:
        target = rng.dirichlet(np.full(classes, 2.0), size=batch_size) * 0.9 + 0.1 / classes
    else:
        target = rng.integers(0, classes, size=batch_size)
    weight = rng.uniform(0.2, 2.0, size=classes) if draw(st.booleans()) else None
    inputs = ["spikes"] + (["weight"] if weight is not None else []) + (["target"] if soft else [])
    first, second = draw(st.sampled_from(inputs)), draw(st.sampled_from(inputs))
    options = {
        "mode": "probability" if smoothing_zero else draw(st.sampled_from(["probability", "softmax"])),
        "temperature": draw(st.sampled_from([1.0, 0.5, 2.0])),
        "smoothing": 0.0 if smoothing_zero else draw(st.sampled_from([1.0, 0.5, 1e-3])),
        "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
        "label_smoothing": draw(st.sampled_from([0.0, 0.2])),
    }
    if kind == "spikemax_s":
        options["window"] = draw(st.integers(1, num_steps))
        options["stride"] = draw(st.integers(1, 2))
    return kind, spikes, target, weight, first, second, options, draw(seeds())


SECOND_ORDER_WEIGHT_BUG = (
    "spikemax_g", np.array([[[1.25, 0.25, 0.25], [0.25, 0.25, 1.25]], [[0.25, 1.25, 0.25], [1.25, 0.25, 0.25]]]),
    np.array([0, 2]),
    np.array([0.5, 1.0, 2.0]), "weight", "weight",
    {"mode": "probability", "temperature": 1.0, "smoothing": 0.0, "reduction": "mean", "label_smoothing": 0.0}, 0)


@given(case=second_derivative_cases(smoothing_zero=False))
def test_second_derivatives_with_smoothing_are_right(case):
    """(2) Differentiating a first derivative (create_graph=True) again, in any pair of inputs (spikes, weight, soft
    target), with smoothing > 0 or in softmax mode: the second derivative of the reference."""
    check_second_derivative(case)


@given(case=second_derivative_cases(smoothing_zero=True))
@example(case=SECOND_ORDER_WEIGHT_BUG)
@example(case=SECOND_ORDER_WEIGHT_BUG[:4] + ("spikes", "weight") + SECOND_ORDER_WEIGHT_BUG[6:])
def test_second_derivatives_at_smoothing_0_are_right_or_refused(case):
    """(2) At smoothing 0 (probability mode) a second derivative in any pair of inputs may raise the documented
    RuntimeError, but must never come out wrong (e.g. silently 0, or missing the terms through the loss)."""
    check_second_derivative(case)


def check_second_derivative(case):
    kind, spikes, target, weight, first, second, options, seed = case
    function = FUNCTIONS[kind]
    rng = np.random.default_rng(seed)
    values = {"spikes": spikes, "target": target, "weight": weight}
    tensors = {name: (None if value is None else torch.tensor(value)) for name, value in values.items()}
    for name in {first, second}:
        tensors[name].requires_grad_()
    grad_output = rng.standard_normal(spikes.shape[1])
    directions = {name: rng.standard_normal(np.shape(values[name])) for name in {first, second}}
    exact_path = options["mode"] == "probability" and options["smoothing"] == 0
    label = "core/second_derivative"

    def scalar(loss):
        return (loss * torch.from_numpy(grad_output)).sum() if options["reduction"] == "none" else loss

    loss = scalar(function(tensors["spikes"], tensors["target"], weight=tensors["weight"], **options))
    (gradient,) = torch.autograd.grad(loss, tensors[first], create_graph=True)
    contracted = (gradient * torch.from_numpy(directions[first])).sum()
    try:
        if contracted.requires_grad:
            (second_gradient,) = torch.autograd.grad(contracted, tensors[second], allow_unused=True)
        else:
            second_gradient = None
    except RuntimeError as error:
        if exact_path and "differentiable once" in str(error):
            record_valid(label + " (documented RuntimeError)")
            return
        raise
    got = 0.0 if second_gradient is None else float((second_gradient * torch.from_numpy(directions[second])).sum())

    def reference_at(shift_first, shift_second):
        shifted = {name: (None if value is None else np.array(value, dtype=np.float64))
                   for name, value in values.items()}
        shifted[first] = shifted[first] + shift_first * directions[first]
        shifted[second] = shifted[second] + shift_second * directions[second]
        reference_function = reference.spikemax_g if kind == "spikemax_g" else reference.spikemax_s
        value = np.asarray(reference_function(shifted["spikes"], shifted["target"] if not np.issubdtype(
            np.asarray(target).dtype, np.integer) else target, weight=shifted["weight"], **options))
        return float((value * grad_output).sum()) if options["reduction"] == "none" else float(value)

    step = 1e-4
    expected = (reference_at(step, step) - reference_at(step, -step) - reference_at(-step, step)
                + reference_at(-step, -step)) / (4 * step * step)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5 * (1 + abs(reference_at(0, 0)))), (
        f"{kind} {options}: d/d{second} (d loss/d{first} . direction) . direction = {got} by autograd "
        f"(create_graph=True), {expected} by finite differences of the reference")
    record_valid(label)


# ------------------------------------------------------------------------------------- torch.func transforms


@given(data=st.data())
def test_torch_func_grad_and_vmap(data):
    """torch.func.grad and vmap work on every loss (value checks are skipped there) and agree with plain autograd
    and a loop; a second torch.func derivative at smoothing 0 raises the documented RuntimeError."""
    kind = data.draw(st.sampled_from(LOSS_KINDS))
    num_steps, batch_size, classes = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3)), 3
    rng = np.random.default_rng(data.draw(seeds()))
    stack = torch.tensor((rng.random((2, num_steps, batch_size, classes)) < 0.5) + 0.25)
    target = torch.tensor(rng.integers(0, classes, size=batch_size))
    if kind == "mse_count":
        options = {"true_rate": 0.5, "false_rate": 0.0}
    else:
        options = {"smoothing": data.draw(st.sampled_from([0.0, 1.0])), "mode": "probability",
                   "temperature": data.draw(st.sampled_from([1.0, 2.0]))}
    if kind == "spikemax_s":
        options["window"] = data.draw(st.integers(1, num_steps))

    def loss(spikes):
        return FUNCTIONS[kind](spikes, target, **options)

    batched = torch.func.vmap(loss)(stack)
    looped = torch.stack([loss(spikes) for spikes in stack])
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)
    functional = torch.func.grad(loss)(stack[0])
    leaf = stack[0].clone().requires_grad_()
    (autograd,) = torch.autograd.grad(loss(leaf), leaf)
    torch.testing.assert_close(functional, autograd, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.func.vmap(torch.func.grad(loss))(stack)[1], torch.func.grad(loss)(stack[1]),
                               rtol=1e-12, atol=1e-12)
    record_valid("core/torch.func")


@pytest.mark.parametrize("transform", ["grad of grad", "jacrev of jacrev", "hessian", "jacfwd of jacrev"])
@pytest.mark.parametrize("kind", ["spikemax_g", "spikemax_s"])
def test_second_torch_func_derivative_at_smoothing_0_raises_the_documented_error(kind, transform):
    """(12) The docs list 'torch.func.grad of a gradient, hessian and jacfwd-over-jacrev' as unsupported at
    smoothing 0, raising a RuntimeError that explains it (and suggests smoothing > 0)."""
    spikes = torch.rand(4, 2, 3, dtype=torch.float64) + 0.25
    target = torch.tensor([0, 2])

    def loss(values):
        if kind == "spikemax_s":
            return smx.spikemax_s(values, target, window=2, smoothing=0.0)
        return smx.spikemax_g(values, target, smoothing=0.0)

    transforms = {
        "grad of grad": lambda: torch.func.grad(lambda s: torch.func.grad(loss)(s).sum())(spikes),
        "jacrev of jacrev": lambda: torch.func.jacrev(torch.func.jacrev(loss))(spikes),
        "hessian": lambda: torch.func.hessian(loss)(spikes),
        "jacfwd of jacrev": lambda: torch.func.jacfwd(torch.func.jacrev(loss))(spikes),
    }
    expect_clear_error(f"core/torch.func {transform} at smoothing 0", transforms[transform], "smoothing",
                       types=(RuntimeError,))


# ======================================================================================== precision (3), (4)


@given(
    seed=seeds(),
    num_steps=st.integers(64, 1200),
    big=st.sampled_from([1e6, 1e7, 1e8, 3e9]),
    window=st.integers(1, 24),
    stride=st.integers(1, 5),
    small=st.sampled_from([0.1, 0.3, 1.0, 1.7]),
)
@settings(max_examples=60)
def test_spikemax_s_float32_windows_after_a_large_early_spike(seed, num_steps, big, window, stride, small):
    """Float32 spikes, a huge graded spike at t = 0, small spikes later: every sliding-window loss equals the
    reference on the same float32 values to float32 rounding of each window's own count (a running-total
    difference would be off by up to an ulp of the huge total)."""
    rng = np.random.default_rng(seed)
    values = (rng.random((num_steps, 1, 2)) < 0.5) * small
    values[0, 0, 0] = big
    spikes = torch.tensor(values, dtype=torch.float32)
    window = min(window, num_steps)
    loss = smx.spikemax_s(spikes, torch.tensor([1]), window=window, stride=stride, reduction="none")
    exact = reference.spikemax_s(spikes.double().numpy(), np.array([1]), window=window, stride=stride,
                                 reduction="none")
    # log(c + 1) moves by at most float32 eps per window when each count is its own sum rounded to float32.
    assert float(loss[0]) == pytest.approx(float(exact[0]), rel=16 * F32_EPS, abs=16 * F32_EPS)
    counts = _counts.window_counts(spikes, 2, window, stride)  # white box: the counts themselves
    expected = grouped_window_counts(spikes.double().numpy(), 2, window, stride)
    np.testing.assert_allclose(counts.double().numpy(), expected.astype(np.float32).astype(np.float64),
                               rtol=F32_EPS, atol=0)
    record_valid("core/precision/spikemax_s float32 windows")


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


# ============================================================================ targets: (10), (13), (15)


@given(value=st.one_of(st.integers(-(2**63), -1), st.integers(4, 2**63 - 1),
                       st.sampled_from([2**63 - 1, 2**63 - 2, -(2**63), 2**53 + 1, -(2**53) - 1])),
       position=st.integers(0, 2), function=st.sampled_from(["spikemax_g", "mse_count", "accuracy"]))
def test_out_of_range_int64_targets_print_their_exact_value(value, position, function):
    spikes = torch.ones(3, 3, 4)
    labels = [0, 1, 2]
    labels[position] = value
    target = torch.tensor(labels, dtype=torch.int64)
    calls = {"spikemax_g": lambda: smx.spikemax_g(spikes, target),
             "mse_count": lambda: smx.mse_count(spikes, target, true_rate=1.0, false_rate=0.0),
             "accuracy": lambda: smx.accuracy(spikes, target)}
    error = expect_clear_error(f"core/targets/{function} int64 range", calls[function], "target")
    assert str(min(labels)) in str(error) and str(max(labels)) in str(error), (
        f"the range error must print the exact extremes {min(labels)}, {max(labels)}: {error}")


@given(dtype=st.sampled_from(INDEX_DTYPES), seed=seeds(), classes=st.integers(2, 5))
def test_every_accepted_index_dtype_equals_int64(dtype, seed, classes):
    rng = np.random.default_rng(seed)
    spikes = torch.tensor(rng.random((4, 3, classes)) < 0.5, dtype=torch.float64)
    labels = rng.integers(0, classes, size=3)
    narrow, wide = torch.tensor(labels).to(dtype), torch.tensor(labels)
    for name, function in [("spikemax_g", lambda t: smx.spikemax_g(spikes, t, reduction="none")),
                           ("spikemax_s", lambda t: smx.spikemax_s(spikes, t, window=2, reduction="none")),
                           ("mse_count", lambda t: smx.mse_count(spikes, t, true_rate=1.0, false_rate=0.0)),
                           ("accuracy", lambda t: smx.accuracy(spikes, t)),
                           ("accuracy_over_time", lambda t: smx.accuracy_over_time(spikes, t))]:
        torch.testing.assert_close(function(narrow), function(wide), rtol=0, atol=0, msg=name)
    record_valid("core/targets/index dtypes")


@given(seed=seeds(), classes=st.integers(2, 12), batch_size=st.integers(1, 6))
def test_low_precision_soft_targets_that_are_rounded_distributions_are_accepted(seed, classes, batch_size):
    """A distribution rounded to bfloat16 or float16 (rows may sum to 0.9978 or so) is a valid soft target, and the
    loss equals the reference on the rounded values."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.full(classes, 0.7), size=batch_size)
    spikes = torch.tensor(rng.random((3, batch_size, classes)) < 0.5, dtype=torch.float64)
    for dtype in (torch.bfloat16, torch.float16):
        target = torch.tensor(rows, dtype=dtype)
        rounded = target.double().numpy()
        loss = smx.spikemax_g(spikes, target, reduction="none")
        expected = reference.spikemax_g(spikes.numpy(), rounded, reduction="none")
        np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-9, atol=1e-12)
    record_valid("core/targets/low-precision soft")


# ===================================================================================== option caching


@given(calls=st.lists(st.tuples(st.sampled_from(["temperature", "smoothing", "num_classes", "window", "stride",
                                                  "time_dim", "label_smoothing"]),
                                st.sampled_from([1, 1.0, True, 0, 0.0, False, 2, 2.0, -0.0])),
                      min_size=1, max_size=8))
def test_option_cache_distinguishes_equal_values_of_other_types(calls):
    """The option cache is keyed by type: after any sequence of calls, True / 1.0 / 1 are judged on their own."""
    spikes = torch.ones(3, 2, 4)
    target = torch.tensor([0, 1])
    for name, value in calls:
        options = {"window": 2, name: value}
        faults = Faults()
        if name in ("temperature",):
            check_real_option(faults, name, value, 1e-4, 1e4)
        elif name == "smoothing":
            check_smoothing_option(faults, value)
        elif name == "label_smoothing":
            check_real_option(faults, name, value, 0, 1)
        elif name == "num_classes":
            ok, classes = check_num_classes_option(faults, value)
            if ok and classes is not None and 4 % classes:
                faults.add("num_classes", "does not divide N")
        elif name == "time_dim":
            check_time_dim_option(faults, value)
            if not faults.structural and value % 3 != 0:
                faults.add("target", "layout mismatch")  # [T, B, N] read with another time_dim
        else:
            if check_int_option(faults, name, value, 1) is not None and name == "window" and value > 3:
                faults.add("window", "> T")
        outcome, result = classify("core/option cache", lambda o=options: smx.spikemax_s(spikes, target, **o), faults,
                                   values_checked=True)
        if outcome == VALID:
            assert torch.isfinite(result)


# ==================================================================================== value_checks switch


@given(value=st.sampled_from([1, 0, None, "yes", 1.0, np.bool_(True), [True]]))
def test_value_check_switch_refuses_non_bools(value):
    expect_clear_error("core/value_checks/set", lambda: smx.set_value_checks(value), "enabled")
    expect_clear_error("core/value_checks/context", lambda: smx.value_checks(value), "enabled")
    assert smx.value_checks_enabled()


@given(pattern=st.lists(st.booleans(), min_size=1, max_size=5), fail_at=st.integers(0, 5))
def test_value_checks_context_nests_and_restores_after_errors(pattern, fail_at):
    """Nested value_checks blocks (and the decorator form) restore the previous setting, even after an error."""

    def nest(depth):
        if depth == len(pattern):
            return
        with smx.value_checks(pattern[depth]):
            assert smx.value_checks_enabled() is pattern[depth]
            if depth == fail_at:
                raise KeyError("boom")
            nest(depth + 1)
            assert smx.value_checks_enabled() is pattern[depth]

    with pytest.raises(KeyError) if fail_at < len(pattern) else _nothing():
        nest(0)
    assert smx.value_checks_enabled() is True

    @smx.value_checks(False)
    def decorated(depth):
        assert smx.value_checks_enabled() is False
        return decorated(depth - 1) if depth else depth

    decorated(3)
    assert smx.value_checks_enabled() is True


NO_READ_CALLS = {
    "spikemax_g": lambda s, t: smx.spikemax_g(s, t, weight=torch.ones(3), smoothing=0.0),
    "spikemax_s": lambda s, t: smx.spikemax_s(s, t, window=2, weight=torch.ones(3)),
    "mse_count": lambda s, t: smx.mse_count(s, t, true_rate=1.0, false_rate=0.0, weight=torch.ones(3)),
    "SpikeMaxGLoss": lambda s, t: smx.SpikeMaxGLoss(weight=torch.ones(3))(s, t),
    "spike_counts": lambda s, t: smx.spike_counts(s),
    "predict": lambda s, t: smx.predict(s),
    "accuracy": lambda s, t: smx.accuracy(s, t),
    "accuracy_over_time": lambda s, t: smx.accuracy_over_time(s, t),
    "time_to_decision": lambda s, t: smx.time_to_decision(s),
    "synaptic_operations": lambda s, t: smx.synaptic_operations([s], [torch.ones(3)], until=t),
    "confidence": lambda s, t: early_exit.confidence(s),
    "SpikeAccuracy": lambda s, t: streaming.SpikeAccuracy().update(s, t),
}


@pytest.mark.parametrize("name", sorted(NO_READ_CALLS))
def test_value_checks_off_read_no_values(name):
    """With set_value_checks(False) no function reads a value back to the host (the point of the switch on a GPU):
    here, on the CPU, every way of reading one (.item(), .tolist(), bool(), the package's _read) raises."""
    from spikemax_plugins import _validation

    spikes = torch.rand(4, 2, 3)
    target = torch.tensor([0, 2])

    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} read a value with the value checks off")

    with pytest.MonkeyPatch.context() as patch, smx.value_checks(False):
        patch.setattr(_validation, "_read", refuse)
        patch.setattr(_validation, "_exact_range", refuse)
        patch.setattr(torch.Tensor, "item", refuse)
        patch.setattr(torch.Tensor, "tolist", refuse)
        patch.setattr(torch.Tensor, "__bool__", refuse)
        NO_READ_CALLS[name](spikes, target)
    record_valid("core/value_checks off: no reads")


class _nothing:  # noqa: N801
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


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


# ============================================================================= streaming metric classes

METRIC_CLASSES = ("SpikeAccuracy", "AccuracyOverTime", "TimeToDecision", "SynapticOperations", "EarlyExitMetric")


@st.composite
def exit_rules(draw, num_steps: int, classes: int, tbn: np.ndarray | None = None):
    """A valid ExitRule; thresholds drawn from the data's own scores (ties and equalities), random or infinite."""
    score = draw(st.sampled_from(["probability", "margin"]))
    smoothing = draw(st.sampled_from([0.0, 1.0, 0.5, 2.0]))
    steps = sorted(set(draw(st.lists(st.integers(0, num_steps - 1), max_size=4))) | {num_steps - 1})
    pool = [INF, -INF, 0.0, 0.5, 1.0 / classes, 1.0, 2.0, -1.0]
    if tbn is not None:
        pool += [float(v) for v in np.unique(np_scores(running_grouped(tbn, classes)[steps], score, smoothing))][:20]
    thresholds = [draw(st.sampled_from(pool)) for _ in steps]
    return early_exit.ExitRule(checkpoints=steps, thresholds=thresholds, max_set_size=draw(st.integers(1, classes)),
                               score=score, smoothing=smoothing, num_classes=classes, num_steps=num_steps)


def _state(metric) -> dict:
    return {name: getattr(metric, name).clone() for name in metric._defaults}


@st.composite
def stream_cases(draw):
    name = draw(st.sampled_from(METRIC_CLASSES))
    num_steps, classes, group = draw(st.integers(1, 5)), draw(st.integers(2, 4)), draw(st.sampled_from([1, 2]))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    values = draw(spike_values((num_steps, sum(sizes), classes * group), exact=True, negatives=False,
                               specials=False))
    rng = np.random.default_rng(draw(seeds()))
    labels = rng.integers(0, classes, size=sum(sizes))
    rule = draw(exit_rules(num_steps, classes, values)) if name == "EarlyExitMetric" else None
    dtype = draw(st.sampled_from(FLOAT_DTYPES if values.max(initial=0) < 6e4 else FLOAT_DTYPES[:2]))
    bad_update = draw(st.integers(0, len(sizes)))  # where an adversarial update is slipped in (len: none)
    # Meta updates have their own test (test_metric_classes_do_not_silently_count_meta_batches).
    bad_kind = draw(st.sampled_from(["nan", "negative", "wrong T", "float target", "target range", "list", "wrong N",
                                     "bool spikes"]))
    return name, num_steps, classes, group, sizes, time_dim, values, labels, rule, dtype, bad_update, bad_kind


def _make_metric(name, num_steps, classes, group, time_dim, rule):
    classes_arg = classes if group > 1 else None
    if name == "SpikeAccuracy":
        return streaming.SpikeAccuracy(classes_arg, time_dim=time_dim)
    if name == "AccuracyOverTime":
        return streaming.AccuracyOverTime(num_steps, classes_arg, time_dim=time_dim)
    if name == "TimeToDecision":
        return streaming.TimeToDecision(classes_arg, time_dim=time_dim)
    if name == "SynapticOperations":
        return streaming.SynapticOperations(time_dim=time_dim)
    return streaming.EarlyExitMetric(rule, time_dim=time_dim)


def _fan_out(num_outputs: int, dtype) -> torch.Tensor:
    return (torch.arange(num_outputs, dtype=torch.float64) % 3).to(dtype if dtype.is_floating_point else torch.float64)


def _update(metric, name, spikes, target, num_outputs=None):
    if name == "SynapticOperations":
        dtype = spikes.dtype if isinstance(spikes, torch.Tensor) else torch.float64
        fan = _fan_out(num_outputs, dtype)
        if isinstance(spikes, torch.Tensor):
            fan = fan.to(spikes.device)
        return metric.update([spikes], [fan])
    if name == "TimeToDecision":
        return metric.update(spikes)
    return metric.update(spikes, target)


@given(case=stream_cases())
def test_metric_classes_stream_and_refuse_bad_updates(case):
    """Updating over any split equals the reference on the whole data set; an adversarial update in between raises
    a clear error (naming spikes, target or time_dim) and leaves every state exactly as it was."""
    name, num_steps, classes, group, sizes, time_dim, values, labels, rule, dtype, bad_update, bad_kind = case
    metric = _make_metric(name, num_steps, classes, group, time_dim, rule)
    layout = torch.tensor(np.moveaxis(values, 0, time_dim), dtype=dtype)
    actual_tbn = np.moveaxis(layout.double().numpy(), time_dim, 0).copy()
    start = 0
    for index, size in enumerate([*sizes, 0]):
        if index == bad_update:
            spikes = layout.narrow(1 if time_dim == 0 else 0, 0, 1).contiguous().clone()
            num_outputs = spikes.shape[2 if time_dim != 2 else 1]
            target = torch.tensor(labels[:1])
            names = ["spikes", "layer_spikes", "target", "fan_out"]
            if bad_kind == "nan":
                spikes.view(-1)[0] = NAN
            elif bad_kind == "negative":
                spikes.view(-1)[0] = -1e4  # outweighs every other spike: a negative count in any window
            elif bad_kind == "wrong T":
                spikes = torch.cat([spikes, spikes], dim=time_dim)
                if name in ("SpikeAccuracy", "TimeToDecision", "SynapticOperations"):
                    spikes = torch.tensor([[[NAN]]], dtype=dtype).expand(*spikes.shape)  # T is free there
                names.append("num_steps")
            elif bad_kind == "float target":
                target = target.float()
                if name in ("TimeToDecision", "SynapticOperations"):
                    spikes = spikes.long()
            elif bad_kind == "target range":
                target = torch.tensor([classes])
                if name in ("TimeToDecision", "SynapticOperations"):
                    spikes = spikes.long()
            elif bad_kind == "list":
                spikes = spikes.tolist()
            elif bad_kind == "wrong N":
                spikes = spikes.narrow(2 if time_dim != 2 else 1, 0, 1)
                names += ["num_classes", "rule"]
                if name == "SynapticOperations":
                    spikes = spikes.long()
            else:
                spikes = spikes > 0
            before = _state(metric)
            error = expect_clear_error(f"core/metric classes/{name} bad update ({bad_kind})",
                                       lambda s=spikes, t=target, n=num_outputs: _update(metric, name, s, t, n), *names)
            after = _state(metric)
            for state, value in before.items():
                assert torch.equal(after[state], value), f"{name}.{state} changed by a refused update: {error}"
        if size == 0:
            continue
        chunk = layout.narrow(1 if time_dim == 0 else 0, start, size)
        _update(metric, name, chunk, torch.tensor(labels[start: start + size]), classes * group)
        start += size
    result = metric.compute()
    classes_arg = classes
    if name == "SpikeAccuracy":
        assert result.item() == pytest.approx(reference.accuracy(actual_tbn, labels, classes_arg), abs=1e-6)
    elif name == "AccuracyOverTime":
        np.testing.assert_allclose(result.numpy(), reference.accuracy_over_time(actual_tbn, labels, classes_arg),
                                   atol=1e-6)
    elif name == "TimeToDecision":
        steps = reference.time_to_decision(actual_tbn, classes_arg)
        decided = steps >= 0
        expected = {"no_decision_fraction": 1 - decided.mean()}
        expected["mean_step"] = steps[decided].mean() if decided.any() else NAN
        expected["mean_fraction"] = ((steps[decided] + 1) / num_steps).mean() if decided.any() else NAN
        for key, value in expected.items():
            np.testing.assert_allclose(result[key].item(), value, rtol=1e-12, equal_nan=True, err_msg=key)
    elif name == "SynapticOperations":
        fan = _fan_out(classes * group, dtype).double().numpy()
        expected = reference.synaptic_operations([actual_tbn], [fan]).mean()
        assert result.item() == pytest.approx(expected, rel=1e-12)
    else:
        report = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                             classes, actual_tbn)
        expected = {"accuracy": (report.prediction == labels).mean(),
                    "coverage": report.prediction_set[np.arange(len(labels)), labels].mean(),
                    "mean_exit_step": report.exit_step.mean(),
                    "exit_fraction": ((report.exit_step + 1) / num_steps).mean(),
                    "mean_set_size": report.prediction_set.sum(-1).mean()}
        for key, value in expected.items():
            assert result[key].item() == pytest.approx(value, rel=1e-12, abs=1e-15), key
    record_valid(f"core/metric classes/{name}")


@given(name=st.sampled_from(METRIC_CLASSES), num_classes=mixed([None, 3], [1, True, 2.5, "3", [3]]),
       time_dim=mixed([0, -1, 2], [3, -4, True, 1.0, None]), num_steps=mixed([1, 4], [0, -1, True, 2.0, None]),
       rule=mixed(["rule"], [None, "rule-dict", 3]))
def test_metric_class_constructors(name, num_classes, time_dim, num_steps, rule):
    faults = Faults()
    valid_rule = early_exit.ExitRule(checkpoints=[3], thresholds=[0.5], max_set_size=1, score="probability",
                                     smoothing=1.0, num_classes=3, num_steps=4)
    rule_value = {"rule": valid_rule, "rule-dict": valid_rule.to_dict()}.get(rule, rule)
    if name == "SynapticOperations":
        if isinstance(time_dim, bool) or not isinstance(time_dim, int):
            faults.add("time_dim", "not an int")

        def build():
            return streaming.SynapticOperations(time_dim=time_dim)
    else:
        check_time_dim_option(faults, time_dim)
        if name == "EarlyExitMetric":
            if not isinstance(rule_value, early_exit.ExitRule):
                faults.add("rule", "not an ExitRule")

            def build():
                return streaming.EarlyExitMetric(rule_value, time_dim=time_dim)
        else:
            check_num_classes_option(faults, num_classes)
            if name == "AccuracyOverTime":
                check_int_option(faults, "num_steps", num_steps, 1)

                def build():
                    return streaming.AccuracyOverTime(num_steps, num_classes, time_dim=time_dim)
            else:
                def build():
                    return getattr(streaming, name)(num_classes, time_dim=time_dim)
    classify(f"core/metric classes/{name} init", build, faults, values_checked=True)


# ================================================================================================ early exit


@st.composite
def confidence_calls(draw):
    num_steps, batch_size, classes, group = (draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(2, 4)),
                                             draw(st.sampled_from([1, 2])))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True))
    spikes = draw(adversarial_spikes(base, time_dim)) if draw(st.integers(0, 11)) == 0 else draw(
        spike_tensors(base, time_dim, requires_grad=False))
    return (spikes.value, draw(mixed(["probability", "margin"], ["prob", None, 1, ["margin"]])),
            draw(mixed([0.0, 1.0, 0.5, 2.0, 1e-30], [-1.0, NAN, INF, True, "1", None])),
            draw(num_classes_values(classes * group, classes, group > 1)), draw(time_dim_values(time_dim)),
            draw(st.integers(0, 5)) > 0)


@given(call=confidence_calls())
def test_confidence_adversarial(call):
    spikes, score, smoothing, num_classes, time_dim, checks_on = call
    faults = Faults()
    check_choice_option(faults, "score", score, ("probability", "margin"))
    parsed_smoothing = check_smoothing_option(faults, smoothing)
    td = check_time_dim_option(faults, time_dim)
    ok, classes = check_num_classes_option(faults, num_classes)
    problem = check_spike_tensor(faults, spikes, td, ok, classes)
    if not faults.structural and not problem.meta:
        if not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any():
            faults.add_value("spikes", "a NaN, infinite or negative spike")  # checked spike by spike
    meta = isinstance(spikes, torch.Tensor) and spikes.is_meta
    with smx.value_checks(checks_on):
        outcome, result = classify("core/early_exit.confidence", lambda: early_exit.confidence(
            spikes, score=score, smoothing=smoothing, num_classes=num_classes, time_dim=time_dim), faults,
            values_checked=checks_on and not meta)
    if outcome != VALID:
        return
    expected_shape = list(spikes.shape)
    expected_shape[td] = problem.num_steps
    expected_shape[[d for d in range(3) if d != td][1]] = problem.classes
    assert list(result.shape) == expected_shape and result.dtype == torch.float64
    if meta:
        return
    expected = np_scores(running_grouped(problem.tbn, problem.classes), score, parsed_smoothing)
    np.testing.assert_allclose(np.moveaxis(result.numpy(), td, 0), expected, rtol=1e-12, atol=0)


RULE_FIELDS = {
    "checkpoints": ([[3], [0, 3], [1, 2, 3], range(4), (0, 3)],
                    [[], [3, 1], [0, 0, 3], [4], [-1, 3], [0, 2], [True, 3], [1.0, 3], "03", 3, None,
                     torch.tensor([0, 3]), np.array([0, 3])]),
    "max_set_size": ([1, 2, 3], [0, 4, True, 1.0, None, "1"]),
    "score": (["probability", "margin"], ["prob", None, 0]),
    "smoothing": ([0.0, 1.0, 0.5, 1e30], [-1.0, NAN, INF, True, "1", None]),
    "num_classes": ([3], [1, True, 3.0, None, "3"]),
    "num_steps": ([4], [0, True, 4.0, None]),
    "method": ([None, "conformal", "accuracy"], ["calibrated", 1, ""]),
    # Invalid alpha / calibration_size: test_exit_rule_calibration_fields_are_validated.
    "alpha": ([None, 0.1, 0.0, 0.5], [None]),
    "calibration_size": ([None, 10, 1], [None]),
}


@st.composite
def exit_rule_fields(draw):
    fields = {name: draw(mixed(*values, odds=4 if name == "checkpoints" else 10))
              for name, values in RULE_FIELDS.items()}
    count = len(fields["checkpoints"]) if isinstance(fields["checkpoints"], (list, tuple, range)) else 1
    fields["thresholds"] = draw(mixed(
        st.lists(st.sampled_from([0.5, 0.0, 1, -2.5, INF, -INF, "inf", "-inf", np.float64(0.25)]), min_size=count,
                 max_size=count),
        # None or a scalar: test_exit_rule_thresholds_that_are_not_a_sequence.
        ["0.5", [NAN] * count, ["nan"] * count, [0.5] * (count + 1), [True] * count, torch.zeros(count, 2),
         [[0.5]] * count], odds=8))
    if draw(st.booleans()) and isinstance(fields["thresholds"], list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in fields["thresholds"]):
        finite = all(math.isfinite(v) for v in fields["thresholds"])
        fields["thresholds"] = torch.tensor(fields["thresholds"], dtype=draw(st.sampled_from(
            [torch.float64, torch.float32] + ([torch.int64] if finite else []))))
    return fields


def exit_rule_faults(fields: dict) -> Faults:
    """The documented field rules of ExitRule (and what a JSON-safe, re-validated rule needs)."""
    faults = Faults()
    num_steps = check_int_option(faults, "num_steps", fields["num_steps"], 1)
    num_classes = check_int_option(faults, "num_classes", fields["num_classes"], 2)
    checkpoints = fields["checkpoints"]
    steps = None
    if isinstance(checkpoints, (str, bytes, torch.Tensor)) or not isinstance(checkpoints, (list, tuple, range)):
        faults.add("checkpoints", "not a sequence of ints")
    elif not checkpoints or any(isinstance(s, bool) or not isinstance(s, int) for s in checkpoints):
        faults.add("checkpoints", "empty or not ints")
    else:
        steps = list(checkpoints)
        if num_steps is not None and (min(steps) < 0 or max(steps) > num_steps - 1 or steps[-1] != num_steps - 1):
            faults.add("checkpoints", "outside [0, T - 1] or not ending at T - 1")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            faults.add("checkpoints", "not strictly increasing")
    check_choice_option(faults, "score", fields["score"], ("probability", "margin"))
    check_smoothing_option(faults, fields["smoothing"])
    size = fields["max_set_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or (num_classes and size > num_classes):
        faults.add("max_set_size", "not an int in [1, C]")
    thresholds = fields["thresholds"]
    if isinstance(thresholds, torch.Tensor):
        if steps is not None and tuple(thresholds.shape) != (len(steps),):
            faults.add("thresholds", "wrong shape")
        elif torch.isnan(thresholds.double()).any():
            faults.add("thresholds", "NaN")
    elif not isinstance(thresholds, (list, tuple)):
        faults.add("thresholds", "not a sequence")
    else:
        def number(v):
            return v in ("inf", "-inf") if isinstance(v, str) else (isinstance(v, (int, float)) and not isinstance(
                v, bool))
        if not all(number(v) for v in thresholds):
            faults.add("thresholds", "not numbers or 'inf' / '-inf'")
        elif steps is not None and len(thresholds) != len(steps):
            faults.add("thresholds", "wrong length")
        elif any(isinstance(v, float) and math.isnan(v) for v in thresholds):
            faults.add("thresholds", "NaN")
    if fields["method"] is not None:
        check_choice_option(faults, "method", fields["method"], ("conformal", "accuracy"))
    alpha = fields["alpha"]
    if alpha is not None:
        check_real_option(faults, "alpha", alpha, 0.0, 1.0)
        if is_real_number(alpha) and alpha == 1:
            faults.add("alpha", "1 is no miscoverage level")
        if is_real_number(alpha) and alpha == 0 and fields["method"] == "conformal":
            faults.add("alpha", "0: a conformal rule needs a miscoverage level in (0, 1)")
    calibration_size = fields["calibration_size"]
    if calibration_size is not None:
        check_int_option(faults, "calibration_size", calibration_size, 1)
    return faults


def is_real_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@given(fields=exit_rule_fields())
def test_exit_rule_construction_and_round_trip(fields):
    """ExitRule validates every field (from_dict says 'every field is validated again'), and a valid rule
    serialises to strict JSON (no NaN) and back to an equal rule."""
    faults = exit_rule_faults(fields)
    outcome, rule = classify("core/early_exit.ExitRule", lambda: early_exit.ExitRule(**fields), faults,
                             values_checked=True)
    if outcome != VALID:
        return
    data = rule.to_dict()
    text = json.dumps(data, allow_nan=False)
    again = early_exit.ExitRule.from_dict(json.loads(text))
    assert again == rule and again.to_dict() == data
    assert rule.thresholds.dtype == torch.float64 and rule.thresholds.shape == (len(rule.checkpoints),)


VALID_RULE = dict(checkpoints=[1, 3], thresholds=[0.5, "inf"], max_set_size=1, score="probability", smoothing=1.0,
                  num_classes=3, num_steps=4)


@given(thresholds=st.sampled_from([None, 0.5, 1, True, object()]))
def test_exit_rule_thresholds_that_are_not_a_sequence(thresholds):
    """A scalar or None where the thresholds go: a TypeError naming thresholds (not "object is not iterable")."""
    expect_clear_error("core/early_exit.ExitRule thresholds", lambda: early_exit.ExitRule(
        **{**VALID_RULE, "checkpoints": [3], "thresholds": thresholds}), "thresholds")


@given(field=st.sampled_from(["alpha", "calibration_size"]),
       value=st.sampled_from([NAN, INF, -1, -0.5, 1.5, "0.1", True, [0.1], 2.5, 0]),
       through=st.sampled_from(["init", "from_dict"]))
def test_exit_rule_calibration_fields_are_validated(field, value, through):
    """ExitRule.from_dict promises that 'every field is validated again' and to_dict that the dict is JSON-safe:
    alpha must be a number in [0, 1), calibration_size an int >= 1 (or None, for a hand-made rule)."""
    faults = Faults()
    if field == "alpha":
        if check_real_option(faults, "alpha", value, 0.0, 1.0) == 1.0:
            faults.add("alpha", "1")
    else:
        check_int_option(faults, "calibration_size", value, 1)
    fields = {**VALID_RULE, "method": "accuracy", "alpha": 0.1, "calibration_size": 10, field: value}
    if through == "init":
        def build():
            return early_exit.ExitRule(**fields)
    else:
        def build():
            return early_exit.ExitRule.from_dict(fields)
    outcome, rule = classify(f"core/early_exit.ExitRule {field}", build, faults, values_checked=True)
    if outcome == VALID:
        json.dumps(rule.to_dict(), allow_nan=False)


@st.composite
def evaluate_calls(draw):
    num_steps, batch_size, classes, group = (draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(2, 4)),
                                             draw(st.sampled_from([1, 2])))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True))
    rule = draw(exit_rules(num_steps, classes, np.where(np.isfinite(base), base, 0)))
    if draw(st.integers(0, 11)) == 0:
        spikes = draw(adversarial_spikes(base, time_dim))
    else:  # meta spikes have their own test (test_meta_tensors_in_early_exit_give_meta_results_or_clear_errors)
        spikes = draw(spike_tensors(base, time_dim, requires_grad=False, allow_meta=False))
    if draw(st.integers(0, 15)) == 0:  # a rule for another T or C
        other = early_exit.ExitRule(checkpoints=[num_steps], thresholds=[0.5], max_set_size=1, score="margin",
                                    smoothing=0.0, num_classes=classes + 1, num_steps=num_steps + 1)
        rule = draw(st.sampled_from([other, rule.to_dict(), None]))
    target = draw(st.one_of(st.none(), target_args(batch_size, classes, soft=False)))
    target = None if target is None else target.value
    if isinstance(target, torch.Tensor) and target.is_meta:
        target = torch.zeros(batch_size + 1, dtype=torch.int64)  # meta has its own test
    return rule, spikes.value, target, draw(time_dim_values(time_dim)), draw(st.integers(0, 5)) > 0


def evaluate_oracle(rule, spikes, target, time_dim):
    faults = Faults()
    if not isinstance(rule, early_exit.ExitRule):
        faults.add("rule", "not an ExitRule")
        rule = None
    td = check_time_dim_option(faults, time_dim)
    problem = check_spike_tensor(faults, spikes, td, True, None)
    if problem is None and isinstance(spikes, torch.Tensor) and spikes.is_floating_point() and spikes.dim() == 3 \
            and td is not None:
        shape = list(spikes.shape)
        shape.pop(td)
        if 0 not in shape and spikes.shape[td] > 0 and shape[1] == 1:
            faults.structural = [f for f in faults.structural if f.name != "spikes"]  # N = 1: judged by the rule
            problem = Problem(None if spikes.is_meta else np.moveaxis(spikes.double().numpy(), td, 0),
                              spikes.shape[td], shape[0], 1, 1, td, spikes.is_meta)
    if problem is not None and rule is not None:
        if problem.num_steps != rule.num_steps:
            faults.add("spikes", f"T = {problem.num_steps}, the rule's T = {rule.num_steps}")
        if problem.num_outputs % rule.num_classes:
            faults.add("spikes", f"N = {problem.num_outputs} not a multiple of the rule's C")
            faults.add("rule", f"N = {problem.num_outputs} not a multiple of the rule's C")
    if target is not None:
        if not isinstance(target, torch.Tensor) or target.dtype not in INDEX_DTYPES:
            faults.add("target", "not an index tensor")
        elif problem is not None and tuple(target.shape) != (problem.batch_size,):
            faults.add("target", "wrong shape")
        elif isinstance(spikes, torch.Tensor) and target.device != spikes.device:
            faults.add("target", "another device")
    spikes_usable = problem is not None and rule is not None and not problem.meta and not any(
        f.name in ("spikes", "rule", "time_dim") for f in faults.structural)
    if spikes_usable and (not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any()):
        # evaluate checks the recording before it reads the target: this fault can come before target's.
        faults.add_value("spikes", "a NaN, infinite or negative spike")
    if faults.structural or problem.meta:
        return faults, problem, rule
    if target is not None:
        labels = target.long().numpy()
        if labels.min() < 0 or labels.max() >= rule.num_classes:
            faults.add_value("target", "out of range")
    return faults, problem, rule


def check_report(report, rule, tbn, target):
    expected = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                           rule.num_classes, tbn)
    np.testing.assert_array_equal(report.exit_step.numpy(), expected.exit_step)
    np.testing.assert_array_equal(report.prediction.numpy(), expected.prediction)
    np.testing.assert_array_equal(report.prediction_set.numpy(), expected.prediction_set)
    assert report.num_steps == rule.num_steps
    assert report.mean_exit_step == pytest.approx(expected.exit_step.mean(), rel=1e-12)
    assert report.exit_fraction == pytest.approx(((expected.exit_step + 1) / rule.num_steps).mean(), rel=1e-12)
    if target is None:
        assert report.accuracy is None and report.coverage is None
    else:
        labels = target.long().numpy()
        assert report.accuracy == pytest.approx((expected.prediction == labels).mean(), abs=1e-15)
        assert report.coverage == pytest.approx(expected.prediction_set[np.arange(len(labels)), labels].mean(),
                                                abs=1e-15)
    return expected


@given(call=evaluate_calls())
def test_evaluate_adversarial(call):
    rule, spikes, target, time_dim, checks_on = call
    faults, problem, parsed_rule = evaluate_oracle(rule, spikes, target, time_dim)
    with smx.value_checks(checks_on):
        outcome, report = classify("core/early_exit.evaluate",
                                   lambda: early_exit.evaluate(rule, spikes, target, time_dim=time_dim), faults,
                                   values_checked=checks_on and not (problem is not None and problem.meta))
    if outcome != VALID:
        return
    if problem.meta:
        assert report.exit_step.is_meta  # meta in, meta out (no values to decide on)
        return
    expected = check_report(report, rule, problem.tbn, target)
    assert report.steps_simulated == int(expected.exit_step.max()) + 1


@given(call=evaluate_calls(), as_list=st.booleans(),
       breakage=st.sampled_from([None] * 6 + ["not callable", "returns list", "returns 3-D", "returns int",
                                             "inputs int", "inputs short", "returns NaN", "other batch"]))
def test_run_adversarial(call, as_list, breakage):
    """early_exit.run on a recording replayed step by step: the report equals the rule semantics, steps_simulated
    is the last exit step + 1 and the network is called exactly that often; broken step functions and inputs
    raise clear errors."""
    rule, spikes, target, time_dim, checks_on = call
    faults, problem, _ = evaluate_oracle(rule, spikes, target, time_dim)
    if faults.structural or faults.value or problem.meta:
        return  # this property is about run's own arguments; evaluate's covers the recording's
    steps = torch.tensor(np.moveaxis(problem.tbn, 0, problem.time_dim)).movedim(problem.time_dim, 0)
    calls = []

    def step_fn(step_input):
        calls.append(step_input)
        output = step_input
        if breakage == "returns list":
            return output.tolist()
        if breakage == "returns 3-D":
            return output.unsqueeze(0)
        if breakage == "returns int":
            return output.long()
        if breakage == "returns NaN":
            return torch.full_like(output, NAN)
        if breakage == "other batch" and len(calls) == 2:
            return output[:0]
        return output

    inputs = list(steps) if as_list else spikes
    run_faults = Faults()
    function = step_fn
    if breakage == "not callable":
        function = "net"
        run_faults.add("step_fn", "not callable")
    elif breakage == "inputs int":
        inputs = 5
        run_faults.add("inputs", "not a tensor or sequence")
    elif breakage == "inputs short":
        inputs = list(steps)[:-1] if rule.num_steps > 1 else []
        run_faults.add("inputs", "T - 1 steps")
    elif breakage in ("returns list", "returns 3-D"):
        run_faults.add("step_fn", "a bad output")
    elif breakage == "returns int":  # the wording is tested strictly in test_run_names_step_fn_for_bad_outputs
        run_faults.add("step_fn", "a bad output")
        run_faults.add("step_spikes", "a bad output")
    elif breakage == "returns NaN":
        run_faults.add_value("step_spikes", "NaN output")
        run_faults.add_value("step_fn", "NaN output")
    elif breakage == "other batch" and rule.num_steps > 1:
        run_faults.add("step_spikes", "another batch size")
        run_faults.add("step_fn", "another batch size")
    with smx.value_checks(checks_on):
        outcome, report = classify("core/early_exit.run", lambda: early_exit.run(
            function, inputs, rule, target=target, time_dim=time_dim if not as_list else 0), run_faults,
            values_checked=checks_on)
    if outcome != VALID:
        return
    expected = check_report(report, rule, problem.tbn, target)
    assert report.steps_simulated == int(expected.exit_step.max()) + 1 == len(calls)


@pytest.mark.parametrize("output", ["int64", "bool", "other batch", "other N"])
def test_run_names_step_fn_for_bad_outputs(output):
    """run's caller passed step_fn, not "step_spikes": an output of the wrong dtype or batch size must be
    reported as step_fn's (as run already does for a non-tensor or a 3-D output)."""
    spikes = torch.zeros(3, 2, 3)
    rule = early_exit.ExitRule(checkpoints=[2], thresholds=[INF], max_set_size=1, score="margin", smoothing=0.0,
                               num_classes=3, num_steps=3)
    outputs = {"int64": torch.zeros(2, 3, dtype=torch.int64), "bool": torch.zeros(2, 3, dtype=torch.bool),
               "other batch": torch.zeros(1, 3), "other N": torch.zeros(2, 4)}
    calls = []

    def step_fn(step_input):
        calls.append(step_input)
        return outputs[output] if len(calls) > 1 or output in ("int64", "bool") else step_input

    expect_clear_error(f"core/early_exit.run step_fn output ({output})", lambda: early_exit.run(step_fn, spikes, rule),
                       "step_fn")


@st.composite
def calibrate_calls(draw, adversarial: bool = True):
    num_steps, classes = draw(st.integers(1, 5)), draw(st.integers(2, 4))
    batch_size = draw(st.integers(1, 12 if adversarial else 30))
    group = draw(st.sampled_from([1, 2]))
    time_dim = draw(st.sampled_from([0, 1, 2]))
    base = draw(spike_values((num_steps, batch_size, classes * group), exact=True, negatives=adversarial,
                             specials=adversarial))
    spikes = draw(adversarial_spikes(base, time_dim)) if adversarial and draw(st.integers(0, 15)) == 0 else draw(
        spike_tensors(base, time_dim, requires_grad=False, allow_meta=False))
    target = draw(target_args(batch_size, classes, soft=False, adversarial=adversarial))
    if not adversarial:
        return (spikes.value, target.value, draw(st.sampled_from(["conformal", "accuracy"])),
                draw(st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 0.9])),
                draw(st.sampled_from(["probability", "margin"])),
                draw(st.one_of(st.none(), st.lists(st.integers(0, num_steps - 1), unique=True, min_size=1,
                                                   max_size=3).map(sorted))),
                draw(st.integers(1, classes)), draw(st.sampled_from([0.0, 1.0, 0.5])),
                classes if group > 1 else draw(st.sampled_from([None, classes])), time_dim)
    method = draw(mixed(["conformal", "accuracy"], ["bonferroni", None, 1], odds=14))
    alpha = draw(mixed([0.0, 0.05, 0.1, 0.25, 0.5, 0.9, 0.9, 1e-9], [1.0, -0.1, NAN, INF, True, "0.1", None],
                       odds=14))
    checkpoints = draw(st.one_of(st.none(), st.lists(st.integers(0, num_steps - 1), unique=True, min_size=1,
                                                       max_size=3).map(sorted),
                                 st.sampled_from([[], [num_steps], [1, 0], "0", 0, [0.0], [True]])))
    return (spikes.value, target.value, method, alpha,
            draw(mixed(["probability", "margin"], ["p", None], odds=14)), checkpoints,
            draw(mixed(st.integers(1, classes), [0, classes + 1, True, 1.0], odds=14)),
            draw(mixed([0.0, 1.0, 0.5], [-1.0, NAN, None], odds=14)),
            draw(num_classes_values(classes * group, classes, group > 1)), draw(time_dim_values(time_dim)))


@given(call=calibrate_calls(adversarial=False))
def test_calibrate_valid_arguments(call):
    """Valid arguments only (more calibration sets large enough for the conformal rank): as below."""
    test_calibrate_adversarial.hypothesis.inner_test(call)


@given(call=calibrate_calls())
def test_calibrate_adversarial(call):
    """calibrate: bad arguments are refused by name; "conformal" thresholds are the r-th largest true-class scores;
    an "accuracy" rule evaluated on its own calibration set keeps accuracy >= full-window accuracy - alpha and no
    other threshold exits earlier on average while staying that accurate."""
    spikes, target, method, alpha, score, checkpoints, max_set_size, smoothing, num_classes, time_dim = call
    faults = Faults()
    method_ok = check_choice_option(faults, "method", method, ("conformal", "accuracy"))
    parsed_alpha = check_real_option(faults, "alpha", alpha, 0.0, 1.0)
    if parsed_alpha is not None and (parsed_alpha == 1 or (method_ok == "conformal" and parsed_alpha == 0)):
        faults.add("alpha", "outside the method's range")
    check_choice_option(faults, "score", score, ("probability", "margin"))
    parsed_smoothing = check_smoothing_option(faults, smoothing)
    td = check_time_dim_option(faults, time_dim)
    ok, classes_arg = check_num_classes_option(faults, num_classes)
    problem = check_spike_tensor(faults, spikes, td, ok, classes_arg)
    check_target_tensor(faults, target, spikes, problem, allow_soft=False)
    classes = problem.classes if problem else None
    if isinstance(max_set_size, bool) or not isinstance(max_set_size, int) or max_set_size < 1 or (
            classes and max_set_size > classes):
        faults.add("max_set_size", "not an int in [1, C]")
    steps = None
    if checkpoints is not None:
        if isinstance(checkpoints, (str, bytes)) or not isinstance(checkpoints, list) or not checkpoints or any(
                isinstance(s, bool) or not isinstance(s, int) for s in checkpoints):
            faults.add("checkpoints", "not a non-empty sequence of ints")
        elif problem is not None and (min(checkpoints) < 0 or max(checkpoints) > problem.num_steps - 1 or any(
                b <= a for a, b in zip(checkpoints, checkpoints[1:], strict=False))):
            faults.add("checkpoints", "outside [0, T - 1] or not increasing")
        else:
            steps = list(checkpoints)
    labels = None
    if not faults.structural:
        if not np.isfinite(problem.tbn).all() or (problem.tbn < 0).any():
            faults.add_value("spikes", "a NaN, infinite or negative spike")
        labels = check_target_values(faults, target, "hard", classes)
        if steps is None:
            steps = early_exit.default_checkpoints(problem.num_steps, method)
        if steps[-1] != problem.num_steps - 1:
            steps = [*steps, problem.num_steps - 1]
        if method == "conformal" and not faults.value:
            rank = math.ceil((1 - exact_fraction(parsed_alpha) / len(steps)) * (problem.batch_size + 1))
            if rank > problem.batch_size:
                faults.add("alpha", f"n = {problem.batch_size} too small (r = {rank})")
    with smx.value_checks(True):
        outcome, rule = classify("core/early_exit.calibrate", lambda: early_exit.calibrate(
            spikes, target, method=method, alpha=alpha, score=score, checkpoints=checkpoints,
            max_set_size=max_set_size, smoothing=smoothing, num_classes=num_classes, time_dim=time_dim), faults,
            values_checked=True)
    if outcome != VALID:
        return
    assert rule.checkpoints == steps and rule.num_classes == classes and rule.calibration_size == problem.batch_size
    counts = running_grouped(problem.tbn, classes)
    scores = np_scores(counts[steps], score, parsed_smoothing)  # [K, B, C]
    if method == "conformal":
        rank = math.ceil((1 - exact_fraction(parsed_alpha) / len(steps)) * (problem.batch_size + 1))
        true_scores = scores[:, np.arange(problem.batch_size), labels]
        expected = -np.sort(-true_scores, axis=1)[:, rank - 1]
        np.testing.assert_array_equal(rule.thresholds.numpy(), expected)
        return
    check_accuracy_rule(rule, problem.tbn, labels, parsed_alpha, scores, classes)


def _outcome(tbn, rule_fields, threshold, classes):
    report = np_evaluate(rule_fields["checkpoints"], [threshold] * len(rule_fields["checkpoints"]),
                         rule_fields["max_set_size"], rule_fields["score"], rule_fields["smoothing"], classes, tbn)
    return report


def check_accuracy_rule(rule, tbn, labels, alpha, scores, classes):
    fields = rule.to_dict()
    thresholds = rule.thresholds.tolist()
    assert len(set(thresholds)) == 1, f"one shared threshold expected, got {thresholds}"
    chosen = thresholds[0]
    batch_size = len(labels)
    full_correct = int((reference.predict(tbn, classes) == labels).sum())
    least = math.ceil(full_correct - exact_fraction(alpha) * batch_size)
    report = _outcome(tbn, fields, chosen, classes)
    correct = int((report.prediction == labels).sum())
    assert correct >= least, (
        f"the calibrated rule (threshold {chosen}) is right on {correct} of {batch_size} calibration samples, "
        f"fewer than full-window {full_correct} - alpha n = {least}: predictions {report.prediction.tolist()}, "
        f"exits {report.exit_step.tolist()}, labels {labels.tolist()}")
    candidates = np.unique(np.concatenate([scores.ravel(), np.nextafter(scores.ravel(), INF)]))
    best = report.exit_step.sum()
    for candidate in candidates:
        other = _outcome(tbn, fields, float(candidate), classes)
        if int((other.prediction == labels).sum()) >= least:
            assert other.exit_step.sum() >= best, (
                f"threshold {candidate} exits earlier ({other.exit_step.sum()} < {best} summed steps) and is accurate "
                f"enough, but calibrate chose {chosen}")


# The calibration set of the report's bug (scores tie at T - 1 where the counts do not; see the report):
CALIBRATION_TIE = (torch.tensor([[[0.0, 0.0, 0.0], [0.4, 0.2, 0.0]],
                                 [[1.0 + 2.0**-52, 1.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64),
                   torch.tensor([0, 0]))


@example(spikes=CALIBRATION_TIE[0], target=CALIBRATION_TIE[1], max_set_size=2)
@given(spikes=st.integers(0, 2**32 - 1).map(lambda seed: torch.tensor(
    np.random.default_rng(seed).choice([0.0, 0.2, 0.4, 1.0, 1.0 + 2.0**-52], size=(2, 3, 3)))),
    target=st.integers(0, 2**32 - 1).map(lambda seed: torch.tensor(np.random.default_rng(seed).integers(0, 3, 3))),
    max_set_size=st.integers(1, 3))
def test_accuracy_calibration_is_feasible_on_its_own_calibration_set(spikes, target, max_set_size):
    """alpha = 0: the calibrated rule, applied to the very samples it was calibrated on, must be exactly as accurate
    as the full window (the guarantee calibrate states), including for graded counts whose probability scores tie
    although the counts do not."""
    rule = early_exit.calibrate(spikes, target, method="accuracy", alpha=0.0, max_set_size=max_set_size)
    report = early_exit.evaluate(rule, spikes, target)
    full = (smx.predict(spikes) == target).double().mean().item()  # float64, as the report's accuracy
    assert report.accuracy >= full - 1e-12, (
        f"calibrated threshold {rule.thresholds.tolist()}: early-exit accuracy {report.accuracy} < full-window "
        f"accuracy {full} on the calibration set itself (predictions {report.prediction.tolist()}, full-window "
        f"{smx.predict(spikes).tolist()})")
    record_valid("core/early_exit.calibrate feasibility")


# ----------------------------------------------------------------------------------------- ExitState


@given(data=st.data())
def test_exit_state_protocol(data):
    """ExitState: updates with bad step spikes are refused by name and change nothing; after T updates a further
    update raises; a report before everyone exited raises; fed step by step it equals the rule semantics."""
    num_steps, batch_size, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), 3
    base = data.draw(spike_values((num_steps, batch_size, classes), exact=True, negatives=False, specials=False))
    rule = data.draw(exit_rules(num_steps, classes, base))
    batch_arg = data.draw(mixed([batch_size], [0, True, 1.5, None, -1]))
    faults = Faults()
    check_int_option(faults, "batch_size", batch_arg, 1)
    outcome, state = classify("core/early_exit.ExitState", lambda: rule.start(batch_arg), faults, values_checked=True)
    if outcome != VALID:
        return
    for step in range(num_steps):
        if data.draw(st.integers(0, 2)) == 0:
            bad = data.draw(st.sampled_from([
                torch.full((batch_size, classes), NAN), torch.full((batch_size, classes), -1.0),
                torch.ones(batch_size + 1, classes), torch.ones(batch_size, classes + 1),
                torch.ones(batch_size, classes, dtype=torch.int64), torch.ones(1, batch_size, classes),
                torch.ones(batch_size, classes, device="meta"), torch.ones(batch_size, classes).tolist()]))
            before = (state.step, state.counts.clone(), state.exit_step.clone(), state.done.clone())
            expect_clear_error("core/early_exit.ExitState bad update", lambda b=bad: state.update(b), "step_spikes")
            assert before[0] == state.step and torch.equal(before[1], state.counts)
            assert torch.equal(before[2], state.exit_step) and torch.equal(before[3], state.done)
        if step < num_steps - 1 and not bool(state.done.all()):
            with pytest.raises(RuntimeError, match="not every sample has exited"):
                state.report()
        state.update(torch.tensor(base[step]))
    with pytest.raises(RuntimeError, match="already received all T"):
        state.update(torch.tensor(base[0]))
    report = state.report()
    expected = np_evaluate(rule.checkpoints, rule.thresholds.tolist(), rule.max_set_size, rule.score, rule.smoothing,
                           classes, base)
    np.testing.assert_array_equal(report.exit_step.numpy(), expected.exit_step)
    np.testing.assert_array_equal(report.prediction.numpy(), expected.prediction)
    record_valid("core/early_exit.ExitState")


# ------------------------------------------------------------------------------- meta across early exit


@pytest.mark.parametrize("entry", ["evaluate", "calibrate accuracy", "calibrate conformal", "run"])
def test_meta_tensors_in_early_exit_give_meta_results_or_clear_errors(entry):
    """(11) meta tensors: the value checks are skipped; a function returns meta results or, where it needs values
    (a report of floats, a calibrated threshold), says so with a ValueError / TypeError naming the argument."""
    spikes = torch.rand(4, 6, 3).to("meta")
    target = torch.tensor([0, 1, 2, 0, 1, 2]).to("meta")
    rule = early_exit.ExitRule(checkpoints=[1, 3], thresholds=[0.5, 0.5], max_set_size=1, score="probability",
                               smoothing=1.0, num_classes=3, num_steps=4)
    calls = {
        "evaluate": lambda: early_exit.evaluate(rule, spikes, target),
        "calibrate accuracy": lambda: early_exit.calibrate(spikes, target, method="accuracy", alpha=0.1),
        "calibrate conformal": lambda: early_exit.calibrate(spikes, target, method="conformal", alpha=0.9,
                                                            checkpoints=[3]),
        "run": lambda: early_exit.run(lambda x: x, spikes, rule),
    }
    try:
        result = calls[entry]()
    except (ValueError, TypeError) as error:
        assert "spikes" in str(error) or "meta" in str(error) or "step" in str(error), error
        record_valid(f"core/meta/{entry} (clear error)")
        return
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"early_exit {entry} on meta tensors: {type(error).__name__}: {error}")
    record_valid(f"core/meta/{entry}")
    assert result is not None


@pytest.mark.parametrize("name", ["SpikeAccuracy", "AccuracyOverTime", "TimeToDecision", "EarlyExitMetric"])
def test_metric_classes_do_not_silently_count_meta_batches(name):
    """A metric whose states live on the CPU, updated with meta tensors (no values): a clear error, or states that
    stay meta, never CPU states that silently count the batch as samples with no correct prediction."""
    rule = early_exit.ExitRule(checkpoints=[1, 3], thresholds=[0.5, 0.5], max_set_size=1, score="probability",
                               smoothing=1.0, num_classes=3, num_steps=4)
    metric = _make_metric(name, 4, 3, 1, 0, rule)
    spikes = torch.zeros(4, 2, 3)
    spikes[:, :, 0] = 1.0
    target = torch.tensor([0, 0])
    _update(metric, name, spikes, target, 3)
    before = metric.compute()
    try:
        _update(metric, name, spikes.to("meta"), target.to("meta"), 3)
    except (ValueError, TypeError) as error:
        assert "meta" in str(error) or "device" in str(error) or "spikes" in str(error), error
        record_valid(f"core/meta/{name} (clear error)")
        return
    except Exception as error:  # noqa: BLE001
        pytest.fail(f"{name}.update on meta tensors: {type(error).__name__}: {error}")
    after = metric.compute()
    values = list(after.values()) if isinstance(after, dict) else [after]
    if any(v.is_meta for v in values):
        return
    olds = list(before.values()) if isinstance(before, dict) else [before]
    assert all(torch.equal(old, new) or (old.isnan().all() and new.isnan().all()) for old, new in zip(
        olds, values, strict=True)), f"{name} silently counted a meta batch (values unknown): {before} -> {after}"
