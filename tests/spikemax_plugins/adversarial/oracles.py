"""NumPy float64 oracles that ``spikemax_plugins.reference`` does not provide, written from the docstrings:
which arguments are faulty, the exact smoothing-0 probability loss and its gradients, the early-exit rule
semantics, scores and calibration checks; and the exit-rule strategy built on them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from hypothesis import reject
from hypothesis import strategies as st
from torch import Tensor

from spikemax_plugins import early_exit

from .support import (
    INDEX_DTYPES,
    INF,
    Faults,
)

F32_EPS = float(np.finfo(np.float32).eps)


# ------------------------------------------------------------------------------------------- the oracles


def is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_real_option(faults: Faults, name: str, value, low: float, high: float) -> float | None:
    if not is_real(value) or not math.isfinite(float(value)) or not low <= float(value) <= high:
        faults.add(name, f"{value!r} is not a real number in [{low:g}, {high:g}]")
        return None
    return float(value)


def check_int_option(faults: Faults, name: str, value, low: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        faults.add(name, f"{value!r} is not an int >= {low}")
        return None
    return value


def check_choice_option(faults: Faults, name: str, value, choices) -> str | None:
    if not isinstance(value, str) or value not in choices:
        faults.add(name, f"{value!r} is not one of {choices}")
        return None
    return value


def check_smoothing_option(faults: Faults, value, name: str = "smoothing") -> float | None:
    if is_real(value) and value == 0:
        return 0.0
    return check_real_option(faults, name, value, 1e-30, 1e30)


def check_num_classes_option(faults: Faults, value) -> tuple[bool, int | None]:
    """(ok, num_classes)."""
    if value is None:
        return True, None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        faults.add("num_classes", f"{value!r} is not None or an int >= 2")
        return False, None
    return True, value


def check_time_dim_option(faults: Faults, value, ndim: int = 3) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not -ndim <= value < ndim:
        faults.add("time_dim", f"{value!r} is not an int in [-{ndim}, {ndim - 1}]")
        return None
    return value % ndim


@dataclass
class Problem:
    """The interpretation of valid spikes: [T, B, N] values (None on meta), C, and the group size k."""

    tbn: np.ndarray | None
    num_steps: int
    batch_size: int
    num_outputs: int
    classes: int
    time_dim: int
    meta: bool


def check_spike_tensor(faults: Faults, spikes, time_dim: int | None, num_classes_ok: bool, num_classes: int | None,
                       name: str = "spikes") -> Problem | None:
    """The documented spike checks; returns the problem when spikes, time_dim and num_classes are usable."""
    if not isinstance(spikes, Tensor):
        faults.add(name, f"not a tensor ({type(spikes).__name__})")
        return None
    if not spikes.is_floating_point():
        faults.add(name, f"dtype {spikes.dtype} is not floating")
        return None
    if spikes.dim() != 3:
        faults.add(name, f"shape {tuple(spikes.shape)} is not 3-D")
        return None
    if time_dim is None:
        return None
    shape = list(spikes.shape)
    num_steps = shape.pop(time_dim)
    batch_size, num_outputs = shape
    if 0 in (num_steps, batch_size, num_outputs):
        faults.add(name, f"an empty dimension (T, B, N) = {(num_steps, batch_size, num_outputs)}")
        return None
    if not num_classes_ok:
        return None
    if num_classes is None:
        if num_outputs < 2:
            faults.add(name, f"N = {num_outputs} < 2 output neurons without num_classes")
            return None
        classes = num_outputs
    else:
        if num_outputs % num_classes:
            faults.add("num_classes", f"N = {num_outputs} is not divisible by num_classes = {num_classes}")
            return None
        classes = num_classes
    meta = spikes.is_meta
    tbn = None if meta else np.moveaxis(spikes.detach().to(torch.float64).numpy(), time_dim, 0)
    return Problem(tbn, num_steps, batch_size, num_outputs, classes, time_dim, meta)


def check_target_tensor(faults: Faults, target, spikes, problem: Problem | None, *, allow_soft: bool = True):
    """The documented target checks; returns 'hard', 'soft' or None."""
    if not isinstance(target, Tensor):
        faults.add("target", f"not a tensor ({type(target).__name__})")
        return None
    if isinstance(spikes, Tensor) and target.device != spikes.device:
        faults.add("target", f"on {target.device}, spikes on {spikes.device}")
        return None
    if target.dtype.is_floating_point:
        if not allow_soft:
            faults.add("target", f"float dtype {target.dtype} given to a metric")
            return None
        if problem is not None and tuple(target.shape) != (problem.batch_size, problem.classes):
            faults.add("target", f"soft target of shape {tuple(target.shape)}")
            return None
        return "soft"
    if target.dtype not in INDEX_DTYPES:
        faults.add("target", f"dtype {target.dtype}")
        return None
    if problem is not None and tuple(target.shape) != (problem.batch_size,):
        faults.add("target", f"index target of shape {tuple(target.shape)}")
        return None
    return "hard"


def soft_tolerance(dtype: torch.dtype) -> float:
    """max(1e-4, 2 eps) as documented for soft-target row sums."""
    return max(1e-4, 2 * torch.finfo(dtype).eps)


def check_target_values(faults: Faults, target: Tensor, kind: str, classes: int) -> np.ndarray:
    """Value checks of a target; returns it as float64 (soft) or int (hard) NumPy."""
    if kind == "hard":
        labels = target.to(torch.int64).numpy()
        if labels.min() < 0 or labels.max() >= classes:
            faults.add_value("target", f"class indices in [{labels.min()}, {labels.max()}], C = {classes}")
        return labels
    rows = target.detach().to(torch.float64).numpy()
    if not np.isfinite(rows).all() or (rows < 0).any():
        faults.add_value("target", "a soft entry that is negative or not finite")
    else:
        sums = rows.sum(-1)
        tolerance = soft_tolerance(target.dtype)
        deviation = np.abs(sums - 1).max()
        if deviation > tolerance * 1.001:
            faults.add_value("target", f"soft rows summing to {sums.min()}..{sums.max()}")
        elif deviation > tolerance * 0.999:
            reject()  # a row sum on the tolerance boundary: not drawn on purpose (rows are exact or far off)
    return rows


def check_weight_tensor(faults: Faults, weight, spikes, problem: Problem | None) -> bool:
    if weight is None:
        return True
    if not isinstance(weight, Tensor):
        faults.add("weight", f"not a tensor ({type(weight).__name__})")
        return False
    if not weight.is_floating_point():
        faults.add("weight", f"dtype {weight.dtype}")
        return False
    if weight.dim() != 1 or (problem is not None and weight.shape[0] != problem.classes):
        faults.add("weight", f"shape {tuple(weight.shape)}")
        return False
    if isinstance(spikes, Tensor) and weight.device != spikes.device:
        faults.add("weight", f"on {weight.device}, spikes on {spikes.device}")
        return False
    return True


def window_ends(num_steps: int, window: int, stride: int) -> list[int]:
    return list(range(window - 1, num_steps, stride))


def grouped_window_counts(tbn: np.ndarray, classes: int, window: int, stride: int) -> np.ndarray:
    """[S, B, C] counts of the causal windows (float64, summed step by step)."""
    num_steps, batch_size, num_outputs = tbn.shape
    grouped = tbn.reshape(num_steps, batch_size, classes, num_outputs // classes).sum(-1)
    return np.stack([grouped[end - window + 1: end + 1].sum(0) for end in window_ends(num_steps, window, stride)])


# ---------------------------------------------------------------------- exact smoothing-0 probability loss


def label_smoothed(target_np: np.ndarray, kind: str, classes: int, label_smoothing: float) -> np.ndarray:
    """The target distribution [B, C] as cross_entropy builds it."""
    distribution = np.eye(classes)[target_np] if kind == "hard" else target_np.astype(np.float64)
    return distribution * (1 - label_smoothing) + label_smoothing / classes


def exact_window_terms(counts: np.ndarray, mass: np.ndarray, temperature: float):
    """Per window and sample: loss [S, B], dL/dc [S, B, C] and -log p [S, B, C] of the smoothing-0 probability
    loss ``sum_i a_i (log sum_j c_j^(1/T) - log(c_i) / T)`` with the documented conventions (derived here from
    the formula: +inf loss and -inf gradient on a silent class with target mass; 1 / sum(c) on a silent
    non-target at T = 1, +inf at T > 1, 0 at T < 1; 0 for non-targets when every class is silent)."""
    num_windows, batch_size, classes = counts.shape
    loss = np.zeros((num_windows, batch_size))
    gradient = np.zeros_like(counts)
    negative_log_p = np.full_like(counts, INF)
    for s in range(num_windows):
        for b in range(batch_size):
            c, a = counts[s, b], mass[b]
            total_mass = a.sum()
            firing = c > 0
            silent_target = bool(((a > 0) & ~firing).any())
            if not firing.any():
                loss[s, b] = INF if silent_target else 0.0
                gradient[s, b] = np.where(a > 0, -INF, 0.0)
                continue
            logits = np.log(c[firing]) / temperature
            top = logits.max()
            log_normaliser = top + math.log(np.exp(logits - top).sum())
            negative_log_p[s, b, firing] = log_normaliser - logits
            loss[s, b] = INF if silent_target else float((a[a > 0] * negative_log_p[s, b, a > 0]).sum())
            for i in range(classes):
                if a[i] > 0 and not firing[i]:
                    gradient[s, b, i] = -INF
                elif firing[i]:
                    p = math.exp(math.log(c[i]) / temperature - log_normaliser)
                    gradient[s, b, i] = (total_mass * p - a[i]) / (temperature * c[i])
                elif temperature == 1:
                    gradient[s, b, i] = total_mass / c.sum()
                elif temperature > 1:
                    gradient[s, b, i] = INF if total_mass > 0 else 0.0
                else:
                    gradient[s, b, i] = 0.0
    return loss, gradient, negative_log_p


def upstream_scale(reduction: str, kind: str, labels_or_rows, weight_np, batch_size, grad_output):
    """d(reduced loss) / d(per-sample loss), [B]."""
    if reduction == "sum":
        return np.ones(batch_size)
    if reduction == "none":
        return np.asarray(grad_output, dtype=np.float64)
    if weight_np is not None and kind == "hard":
        return np.full(batch_size, 1.0 / weight_np[labels_or_rows].sum())
    return np.full(batch_size, 1.0 / batch_size)


def scaled(upstream: np.ndarray, values: np.ndarray) -> np.ndarray:
    """upstream * values with 0 wherever upstream is 0 (a loss that does not matter contributes 0, never 0 * inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(upstream == 0, 0.0, upstream * values)


# ------------------------------------------------------------------------------------------- early exit


def np_scores(counts: np.ndarray, score: str, smoothing: float) -> np.ndarray:
    """Scores of counts [..., C] from the definitions in spikemax_plugins.early_exit's docstring."""
    classes = counts.shape[-1]
    if score == "probability":
        shifted = counts + smoothing
        total = shifted.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, shifted / np.where(total > 0, total, 1), 1.0 / classes)
    out = np.empty_like(counts)
    for i in range(classes):
        others = np.delete(counts, i, axis=-1)
        out[..., i] = counts[..., i] - others.max(-1)
    return out


def unique_argmax(values: np.ndarray) -> int:
    best = values.max()
    winners = np.flatnonzero(values == best)
    return int(winners[0]) if len(winners) == 1 else -1


def running_grouped(tbn: np.ndarray, classes: int) -> np.ndarray:
    num_steps, batch_size, num_outputs = tbn.shape
    return np.cumsum(tbn.reshape(num_steps, batch_size, classes, num_outputs // classes).sum(-1), axis=0)


@dataclass
class NpReport:
    exit_step: np.ndarray
    prediction: np.ndarray
    prediction_set: np.ndarray


def np_evaluate(checkpoints, thresholds, max_set_size, score, smoothing, classes, tbn) -> NpReport:
    """The rule semantics of spikemax_plugins.early_exit's docstring, sample by sample."""
    counts = running_grouped(tbn, classes)
    num_steps, batch_size, _ = counts.shape
    exit_step = np.zeros(batch_size, dtype=np.int64)
    prediction = np.zeros(batch_size, dtype=np.int64)
    prediction_set = np.zeros((batch_size, classes), dtype=bool)
    for b in range(batch_size):
        for k, step in enumerate(checkpoints):
            scores = np_scores(counts[step, b], score, smoothing)
            admitted = scores >= thresholds[k]
            size = int(admitted.sum())
            if 1 <= size <= max_set_size:
                exit_step[b], prediction_set[b] = step, admitted
                prediction[b] = unique_argmax(np.where(admitted, scores, -INF))
                break
        else:
            exit_step[b], prediction_set[b] = num_steps - 1, admitted
            prediction[b] = unique_argmax(counts[-1, b])
    return NpReport(exit_step, prediction, prediction_set)


def exact_fraction(alpha: float) -> Fraction:
    return Fraction(repr(alpha))


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
