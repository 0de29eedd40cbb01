"""Machinery shared by the adversarial suites (``tests/spikemax_plugins/adversarial/``,
``tests/spikemax_snntorch/test_adversarial.py``, ``tests/spikemax_norse/test_adversarial.py``).

* :func:`classify`: runs one drawn call and decides whether its outcome is acceptable. A call whose arguments
  are all valid must return (the caller then compares the result with an independent oracle); a call with a
  faulty argument must raise a ``ValueError`` or ``TypeError`` whose message names (as a word) one of the faulty
  arguments. The oracle that lists the faults (in :mod:`.oracles`) is written from the docstrings, independently of
  ``spikemax_plugins._validation``.
* :data:`OUTCOMES`: how many drawn calls ended valid, in a clear error, or unchecked (value faults with the value
  checks off, where the result is documented as undefined); ``tests/conftest.py`` prints them after the run.
* Strategies that mix valid and adversarial spikes, targets, weights and option values.
* The NumPy float64 oracles (which arguments are faulty, the exact smoothing-0 gradients, the early-exit rule
  semantics) live in :mod:`.oracles`.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from torch import Tensor

# ------------------------------------------------------------------------------------------------ outcomes

OUTCOMES: collections.Counter = collections.Counter()

VALID, CLEAR_ERROR, UNCHECKED = "valid", "clear error", "unchecked"


@dataclass(frozen=True)
class Fault:
    """A faulty argument: the error must name ``name`` (as a word); ``why`` explains the fault in failures."""

    name: str
    why: str

    def named_in(self, message: str) -> bool:
        # A plural argument may be named in the singular ("the last checkpoint must be ..." for checkpoints).
        names = [self.name] + ([self.name[:-1]] if self.name.endswith("s") and len(self.name) > 4 else [])
        return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None
                   for name in names)


@dataclass
class Faults:
    """Structural faults (always raised) and value faults (raised only while the values are checked)."""

    structural: list[Fault] = field(default_factory=list)
    value: list[Fault] = field(default_factory=list)

    def add(self, name: str, why: str) -> None:
        self.structural.append(Fault(name, why))

    def add_value(self, name: str, why: str) -> None:
        self.value.append(Fault(name, why))


def classify(label: str, call: Callable[[], object], faults: Faults, *, values_checked: bool) -> tuple[str, object]:
    """Run ``call``; returns ``(VALID, result)``, ``(CLEAR_ERROR, error)`` or ``(UNCHECKED, result-or-error)``.

    Fails the test for any other outcome: an error for valid arguments, a result for faulty ones, an exception
    that is not a ValueError / TypeError, or a message that names none of the faulty arguments.
    """
    structural = faults.structural
    value = faults.value if values_checked else []
    must_raise = bool(structural or value)
    unchecked = not must_raise and bool(faults.value)
    try:
        result = call()
    except Exception as error:  # noqa: BLE001  (the point is to classify every exception)
        if unchecked:
            OUTCOMES[(label, UNCHECKED)] += 1
            return UNCHECKED, error
        if not must_raise:
            pytest.fail(f"{label}: valid arguments raised {type(error).__name__}: {error}")
        acceptable = structural + value
        names = sorted({fault.name for fault in acceptable})
        why = "; ".join(f"{fault.name}: {fault.why}" for fault in acceptable)
        if not isinstance(error, (ValueError, TypeError)):
            pytest.fail(f"{label}: expected ValueError/TypeError naming one of {names} ({why}), got "
                        f"{type(error).__name__}: {error}")
        if not any(fault.named_in(str(error)) for fault in acceptable):
            pytest.fail(f"{label}: the error names none of the faulty arguments {names} ({why}): "
                        f"{type(error).__name__}: {error}")
        OUTCOMES[(label, CLEAR_ERROR)] += 1
        return CLEAR_ERROR, error
    if must_raise:
        faulty = "; ".join(f"{fault.name}: {fault.why}" for fault in structural + value)
        pytest.fail(f"{label}: faulty arguments ({faulty}) returned {result!r} instead of raising")
    if unchecked:
        OUTCOMES[(label, UNCHECKED)] += 1
        return UNCHECKED, result
    OUTCOMES[(label, VALID)] += 1
    return VALID, result


def expect_clear_error(label: str, call: Callable[[], object], *names: str, types=(ValueError, TypeError)):
    """A call that must raise one of ``types`` naming one of ``names``; counts it as a clear error."""
    faults = Faults([Fault(name, "see the test") for name in names])
    try:
        result = call()
    except Exception as error:  # noqa: BLE001
        if not isinstance(error, types):
            pytest.fail(f"{label}: expected {[t.__name__ for t in types]} naming one of {names}, got "
                        f"{type(error).__name__}: {error}")
        if not any(fault.named_in(str(error)) for fault in faults.structural):
            pytest.fail(f"{label}: the error names none of {names}: {type(error).__name__}: {error}")
        OUTCOMES[(label, CLEAR_ERROR)] += 1
        return error
    pytest.fail(f"{label}: expected an error naming one of {names}, got {result!r}")


def record_valid(label: str) -> None:
    OUTCOMES[(label, VALID)] += 1


def outcome_lines() -> list[str]:
    """The outcome counts, per suite and per label (printed by tests/conftest.py's pytest_terminal_summary); with
    the environment variable ``SPIKEMAX_ADVERSARIAL_OUTCOMES`` set, also written to that JSON file."""
    by_label: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for (label, kind), count in sorted(OUTCOMES.items()):
        by_label[label][kind] = count
    if not by_label:
        return []
    lines = []
    for suite in sorted({label.split("/")[0] for label in by_label}):
        labels = {label: kinds for label, kinds in by_label.items() if label.split("/")[0] == suite}
        totals = collections.Counter()
        for kinds in labels.values():
            totals.update(kinds)
        lines.append(f"adversarial outcomes ({suite}): " + ", ".join(
            f"{kind}: {totals[kind]}" for kind in sorted(totals)) + f" (total {sum(totals.values())} calls)")
        width = max(len(label) for label in labels)
        for label, kinds in labels.items():
            lines.append(f"  {label:<{width}}  " + ", ".join(f"{kind}: {count}" for kind, count in
                                                              sorted(kinds.items())))
    path = os.environ.get("SPIKEMAX_ADVERSARIAL_OUTCOMES")
    if path:
        with open(path, "w") as handle:
            json.dump(by_label, handle, indent=1, sort_keys=True)
    return lines


# ----------------------------------------------------------------------------------------------- strategies

FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
INDEX_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32)
NAN, INF = math.nan, math.inf


def mixed(valid: Sequence | st.SearchStrategy, invalid: Sequence | st.SearchStrategy, odds: int = 6):
    """Mostly a valid value, one time in ``odds + 1`` an adversarial one."""
    valid = valid if isinstance(valid, st.SearchStrategy) else st.sampled_from(list(valid))
    invalid = invalid if isinstance(invalid, st.SearchStrategy) else st.sampled_from(list(invalid))
    return st.integers(0, odds).flatmap(lambda pick: invalid if pick == 0 else valid)


def seeds():
    return st.integers(0, 2**32 - 1)


@st.composite
def spike_values(draw, shape, *, exact: bool = False, negatives: bool = True, specials: bool = True):
    """A float64 array of spikes: binary, dyadic graded, silent, huge powers of two, with a negative, NaN or
    infinite entry. ``exact``: every partial sum is exact in float64 and float32 (for decisions)."""
    rng = np.random.default_rng(draw(seeds()))
    kinds = ["binary", "binary", "graded", "silent", "huge"] + ([] if exact else ["tiny"])
    kind = draw(st.sampled_from(kinds))
    if kind == "binary":
        values = (rng.random(shape) < draw(st.sampled_from([0.1, 0.3, 0.6, 1.0]))).astype(np.float64)
    elif kind == "graded":
        values = rng.integers(0, 33, size=shape) / 8.0 * (rng.random(shape) < 0.6)
    elif kind == "silent":
        values = np.zeros(shape)
    elif kind == "huge":
        values = rng.choice([0.0, 1.0, 2.0**24, 2.0**30], size=shape)
    else:
        values = rng.choice([0.0, 1e-30, 1e-12, 1.0], size=shape)
    if negatives and kind != "huge" and values.size and draw(st.integers(0, 7)) == 0:
        flat = values.reshape(-1)
        flat[rng.integers(0, flat.size, size=int(rng.integers(1, 3)))] = rng.choice([-0.5, -1.0, -2.0])
    if specials and values.size and draw(st.integers(0, 9)) == 0:
        values.reshape(-1)[rng.integers(0, values.size)] = draw(st.sampled_from([NAN, INF, -INF]))
    return values


@dataclass
class SpikeArg:
    """Spikes as passed (``value``); with ``leaf`` (requires grad), ``rebuild(tensor)`` applies the same view
    operations to a tensor shaped like the leaf, so that a perturbed leaf gives the perturbed spikes."""

    value: object
    leaf: Tensor | None = None
    rebuild: Callable[[Tensor], Tensor] | None = None
    description: str = ""


def _layout(base: np.ndarray, time_dim: int) -> np.ndarray:
    return np.moveaxis(base, 0, time_dim)


@st.composite
def spike_tensors(draw, base: np.ndarray, time_dim: int, *, dtype=None, requires_grad=None, allow_meta=True,
                  allow_expand=True):
    """A spike tensor holding ``base`` ([T, B, N]) with time at ``time_dim``: a dtype, a memory layout
    (contiguous, a movedim view, a strided slice, a batch expansion), maybe requiring grad, maybe on meta."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES)) if dtype is None else dtype
    num_steps, batch_size, num_outputs = base.shape
    memories = ["contiguous", "view", "strided"]
    if allow_expand and batch_size > 1:
        memories.append("expanded")
    memory = draw(st.sampled_from(memories))
    grad = (draw(st.booleans()) if requires_grad is None else requires_grad) and dtype == torch.float64
    td = time_dim % 3
    if memory == "contiguous":
        leaf_values = np.ascontiguousarray(_layout(base, td))

        def rebuild(leaf):
            return leaf
    elif memory == "view":
        leaf_values = base

        def rebuild(leaf):
            return leaf.movedim(0, td)
    elif memory == "strided":
        dim = draw(st.integers(0, 2))
        leaf_values = np.repeat(_layout(base, td), 2, axis=dim)
        index = (slice(None),) * dim + (slice(None, None, 2),)

        def rebuild(leaf):
            return leaf[index]
    else:  # one batch row, expanded: stride 0 along the batch
        leaf_values = base[:, :1]

        def rebuild(leaf):
            return leaf.expand(num_steps, batch_size, num_outputs).movedim(0, td)
    leaf = torch.tensor(leaf_values, dtype=dtype).requires_grad_(grad)
    value = rebuild(leaf)
    description = f"{dtype} {memory} time_dim={time_dim}" + (" requires_grad" if grad else "")
    if allow_meta and draw(st.integers(0, 14)) == 0:
        return SpikeArg(value.detach().to("meta"), None, None, description + " meta")
    return SpikeArg(value, leaf if grad else None, rebuild, description)


def adversarial_spikes(base: np.ndarray, time_dim: int):
    """Things that are not valid spikes of this problem: not tensors, wrong dtypes, wrong ranks, empty dims."""
    layout = np.ascontiguousarray(_layout(base, time_dim % 3))
    tensor = torch.tensor(layout)
    return st.sampled_from([
        ("list", lambda: layout.tolist()),
        ("ndarray", lambda: layout),
        ("None", lambda: None),
        ("float", lambda: 1.0),
        ("int64", lambda: tensor.long()),
        ("int32", lambda: tensor.int()),
        ("bool", lambda: tensor > 0),
        ("complex64", lambda: tensor.to(torch.complex64)),
        ("2-D", lambda: tensor[0] if time_dim % 3 == 0 else tensor.select(time_dim % 3, 0)),
        ("4-D", lambda: tensor.unsqueeze(0)),
        ("empty T", lambda: tensor.narrow(time_dim % 3, 0, 0)),
        ("empty dim", lambda: tensor.narrow((time_dim + 1) % 3, 0, 0)),
        ("empty other dim", lambda: tensor.narrow((time_dim + 2) % 3, 0, 0)),
    ]).map(lambda pair: SpikeArg(pair[1](), None, None, f"adversarial spikes: {pair[0]}"))


@dataclass
class TargetArg:
    value: object
    leaf: Tensor | None = None
    description: str = ""
    rebuild: Callable[[Tensor], Tensor] | None = None


@st.composite
def target_args(draw, batch_size: int, num_classes: int, *, soft: bool = True, adversarial: bool = True):
    """Class indices in every index dtype, or soft rows in every float dtype; sometimes adversarial."""
    rng = np.random.default_rng(draw(seeds()))
    if adversarial and draw(st.integers(0, 5)) == 0:
        return draw(adversarial_targets(batch_size, num_classes, rng))
    if soft and draw(st.booleans()):
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
        rows = rng.dirichlet(np.full(num_classes, draw(st.sampled_from([0.3, 1.0, 5.0]))), size=batch_size)
        if draw(st.integers(0, 3)) == 0:
            rows = np.eye(num_classes)[rng.integers(0, num_classes, size=batch_size)]  # one-hot rows, exact zeros
        grad = dtype == torch.float64 and draw(st.booleans())
        if draw(st.booleans()):
            leaf = torch.tensor(np.ascontiguousarray(rows.T), dtype=dtype).requires_grad_(grad)
            return TargetArg(leaf.t(), leaf if grad else None, f"soft {dtype} transposed view", torch.t)
        leaf = torch.tensor(rows, dtype=dtype).requires_grad_(grad)
        return TargetArg(leaf, leaf if grad else None, f"soft {dtype}", lambda tensor: tensor)
    dtype = draw(st.sampled_from(INDEX_DTYPES))
    labels = rng.integers(0, num_classes, size=batch_size)
    if draw(st.booleans()):
        strided = torch.tensor(np.repeat(labels, 2), dtype=torch.int64).to(dtype)[::2]
        return TargetArg(strided, None, f"indices {dtype} strided")
    return TargetArg(torch.tensor(labels, dtype=torch.int64).to(dtype), None, f"indices {dtype}")


def adversarial_targets(batch_size: int, num_classes: int, rng: np.random.Generator):
    labels = rng.integers(0, num_classes, size=batch_size)
    rows = rng.dirichlet(np.ones(num_classes), size=batch_size)

    def out_of_range(value, dtype=torch.int64):
        out = labels.copy()
        out[rng.integers(0, batch_size)] = value
        return torch.tensor(out, dtype=torch.int64).to(dtype) if dtype != torch.int64 else torch.tensor(out)

    def soft_with(value):
        out = rows.copy()
        out[rng.integers(0, batch_size), rng.integers(0, num_classes)] = value
        return torch.tensor(out)

    cases = [
        ("index = C", lambda: out_of_range(num_classes)),
        ("index -1", lambda: out_of_range(-1)),
        ("int8 index -1", lambda: out_of_range(-1, torch.int8)),
        ("index 2**63 - 1", lambda: out_of_range(2**63 - 1)),
        ("index -2**63", lambda: out_of_range(-(2**63))),
        ("uint8 index 255", lambda: out_of_range(255, torch.uint8)),
        ("uint32 index 2**32 - 1", lambda: out_of_range(2**32 - 1, torch.uint32)),
        ("uint64", lambda: torch.tensor(labels, dtype=torch.int64).to(torch.uint64)),
        ("bool", lambda: torch.tensor(labels % 2 == 0)),
        ("complex", lambda: torch.tensor(labels, dtype=torch.complex64)),
        ("float indices [B]", lambda: torch.tensor(labels, dtype=torch.float32)),
        ("indices too long", lambda: torch.tensor(np.append(labels, 0))),
        ("indices too short", lambda: torch.tensor(labels[:-1])),
        ("indices 2-D", lambda: torch.tensor(labels).unsqueeze(1)),
        ("indices 0-D", lambda: torch.tensor(int(labels[0]))),
        ("list", lambda: labels.tolist()),
        ("ndarray", lambda: labels),
        ("soft rows sum 1.2", lambda: torch.tensor(rows * 1.2)),
        ("soft rows sum 0.5", lambda: torch.tensor(rows * 0.5)),
        ("soft negative", lambda: soft_with(-0.25)),
        ("soft NaN", lambda: soft_with(NAN)),
        ("soft inf", lambda: soft_with(INF)),
        ("soft C + 1 columns", lambda: torch.tensor(np.concatenate([rows, np.zeros((batch_size, 1))], 1))),
        ("soft 3-D", lambda: torch.tensor(rows).unsqueeze(0)),
        ("meta indices", lambda: torch.tensor(labels, device="meta")),
        ("meta soft", lambda: torch.tensor(rows).to("meta")),
    ]
    return st.sampled_from(cases).map(lambda pair: TargetArg(pair[1](), None, f"adversarial target: {pair[0]}"))


@dataclass
class WeightArg:
    value: object
    leaf: Tensor | None = None
    description: str = ""


@st.composite
def weight_args(draw, num_classes: int, *, adversarial: bool = True, huge: bool = False):
    """None, or a float weight [C] (zeros included, maybe requiring grad); sometimes adversarial."""
    rng = np.random.default_rng(draw(seeds()))
    pick = draw(st.integers(0, 7))
    if pick <= 2:
        return WeightArg(None, None, "no weight")
    if adversarial and pick <= 4:
        base = rng.uniform(0.1, 2.0, size=num_classes)
        cases = [
            ("list", lambda: base.tolist()),
            ("int64", lambda: torch.ones(num_classes, dtype=torch.int64)),
            ("bool", lambda: torch.ones(num_classes, dtype=torch.bool)),
            ("complex", lambda: torch.ones(num_classes, dtype=torch.complex64)),
            ("C + 1", lambda: torch.ones(num_classes + 1)),
            ("C - 1", lambda: torch.ones(num_classes - 1)),
            ("2-D", lambda: torch.ones(1, num_classes)),
            ("0-D", lambda: torch.tensor(1.0)),
            ("NaN", lambda: torch.tensor(np.where(np.arange(num_classes) == 0, NAN, base))),
            ("inf", lambda: torch.tensor(np.where(np.arange(num_classes) == 0, INF, base))),
            ("negative", lambda: torch.tensor(np.where(np.arange(num_classes) == 0, -0.5, base))),
            ("NaN float32", lambda: torch.tensor(np.where(np.arange(num_classes) == 1, NAN, base)).float()),
            ("-inf", lambda: torch.tensor(np.where(np.arange(num_classes) == 1, -INF, base))),
            ("negative float16", lambda: torch.tensor(-base, dtype=torch.float16)),
            ("meta", lambda: torch.ones(num_classes, device="meta")),
        ]
        name, make = draw(st.sampled_from(cases))
        return WeightArg(make(), None, f"adversarial weight: {name}")
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.float16]))
    choices = [0.0, 0.5, 1.0, 2.0, 0.125, 3.0]
    values = rng.choice(choices, size=num_classes)
    if huge:
        with np.errstate(over="ignore"):  # 3.0 * 1e308 is inf: an infinite weight is one of the cases
            values = values * (1e308 if dtype == torch.float64 else 3e38 if dtype == torch.float32 else 6e4)
    if draw(st.integers(0, 4)) == 0:
        values = np.zeros(num_classes)  # every class weight 0: a weighted mean over hard targets is 0 / 0
    grad = dtype == torch.float64 and draw(st.booleans())
    leaf = torch.tensor(values, dtype=dtype).requires_grad_(grad)
    return WeightArg(leaf, leaf if grad else None, f"weight {dtype}" + (" requires_grad" if grad else ""))


# Option values: valid ones, and adversarial ones (type errors, range errors, unhashable, bool-for-int).
TEMPERATURES = ([1.0, 1, 0.5, 2.0, 0.25, 4.0, 1e-4, 1e4, np.float64(0.5)],
                [0.0, -1.0, NAN, INF, -INF, 1e-40, 1e5, 9.99e-5, 1.0001e4, True, "1", None, [1.0], 1j])
SMOOTHINGS = ([1.0, 1, 0.0, 0, -0.0, 0.5, 2.5, 1e-30, 1e30],
              [-1.0, 1e-31, 1.01e30, NAN, INF, True, False, "0", None, [0.0]])
LABEL_SMOOTHINGS = ([0.0, 0, 0.1, 0.5, 1.0, 1], [-0.1, 1.5, NAN, INF, True, None, "0.1", [0.1]])
MODES = (["probability", "softmax"], ["log", "", "Softmax", None, 1, ["softmax"], b"softmax"])
REDUCTIONS = (["mean", "sum", "none"], ["avg", "None", None, 0, ("mean",), ["mean"]])
RATES = ([0, 0.0, 0.05, 0.5, 1.0, 2, 1e6], [-0.5, 1e6 + 1, 1e300, NAN, INF, True, "1", None, [1.0]])


def num_classes_values(num_outputs: int, classes: int, population: bool):
    valid = [classes] if population else [None, classes]
    invalid = [1, 0, -2, True, False, float(classes), str(classes), [classes], classes + 1, 2 * num_outputs]
    return mixed(valid, invalid)


def time_dim_values(time_dim: int):
    valid = [time_dim, time_dim - 3]
    invalid = [3, -4, 7, True, False, float(time_dim), str(time_dim), None, (time_dim + 1) % 3, (time_dim + 2) % 3]
    return mixed(valid, invalid, odds=8)


def window_values(num_steps: int):
    return mixed(st.integers(1, num_steps), [0, -1, num_steps + 1, None, 1.0, True, "2", [1]])


def stride_values():
    return mixed(st.integers(1, 4), [0, -1, True, 1.0, None, "1"])
