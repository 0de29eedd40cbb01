"""Every error (and warning) the package raises, triggered for real: the source of ``docs/errors.md``.

``python -m tests.docs.error_catalogue`` prints the Markdown tables pasted into that page;
``tests/docs/test_error_page.py`` triggers each case again and checks that its message still stands in the page
verbatim, so the page cannot drift from the code.

A case is ``(what the caller did, function that does it)``; the function must raise (or, for ``WARNINGS``,
warn). Host-free cases only need torch; the adapter cases import snnTorch or Norse when they run.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from collections.abc import Callable

import torch

import spikemax_plugins as smx

SPIKES = torch.zeros(6, 3, 4)  # T = 6 steps, B = 3 samples, N = 4 output neurons
TARGET = torch.tensor([0, 1, 3])
RATES = {"true_rate": 0.8, "false_rate": 0.1}

Case = tuple[str, Callable[[], object]]


def _g(**options) -> Callable[[], object]:
    spikes = options.pop("spikes", SPIKES)
    target = options.pop("target", TARGET)
    return lambda: smx.spikemax_g(spikes, target, **options)


def _s(**options) -> Callable[[], object]:
    return lambda: smx.spikemax_s(SPIKES, TARGET, **options)


def _mse(**options) -> Callable[[], object]:
    return lambda: smx.mse_count(SPIKES, TARGET, **{**RATES, **options})


def _ops(layer_spikes, fan_out) -> Callable[[], object]:
    return lambda: smx.synaptic_operations(layer_spikes, fan_out)


# Every loss and metric runs the same checks on spikes, target, num_classes and weight; spikemax_g stands for all.
SPIKES_CASES: list[Case] = [
    ("spikes is a NumPy array", _g(spikes=SPIKES.numpy())),
    ("spikes has an integer dtype", _g(spikes=SPIKES.long())),
    ("spikes is not 3-D (here `[B, N]`)", _g(spikes=SPIKES[0])),
    ("spikes has no time steps", _g(spikes=torch.zeros(0, 3, 4))),
    ("spikes has an empty batch", _g(spikes=torch.zeros(6, 0, 4), target=torch.zeros(0, dtype=torch.long))),
    ("spikes has no output neurons", _g(spikes=torch.zeros(6, 3, 0))),
    ("one output neuron and no `num_classes`", _g(spikes=torch.zeros(6, 3, 1), target=torch.zeros(3).long())),
    ("a NaN or inf spike", _g(spikes=SPIKES + math.nan)),
    ("a negative spike", _g(spikes=SPIKES - 0.5)),
]

TARGET_CASES: list[Case] = [
    ("target is a list", _g(target=[0, 1, 3])),
    ("target is on another device", _g(target=TARGET.to("meta"))),
    ("target is boolean", _g(target=torch.tensor([True, False, True]))),
    ("integer target of the wrong length", _g(target=TARGET[:2])),
    ("class index out of range", _g(target=torch.tensor([0, 1, 4]))),
    ("float (soft) target of the wrong shape", _g(target=torch.full((3, 5), 0.2))),
    ("soft target with a negative entry", _g(target=torch.tensor([[1.5, -0.5, 0.0, 0.0]] * 3))),
    ("soft target rows that do not sum to 1", _g(target=torch.full((3, 4), 0.3))),
    ("float target given to a metric", lambda: smx.accuracy(SPIKES, TARGET.float())),
]

CLASS_AND_WEIGHT_CASES: list[Case] = [
    ("`num_classes` is a float", _g(num_classes=2.0)),
    ("`num_classes` below 2", _g(num_classes=1)),
    ("N not divisible by `num_classes`", _g(num_classes=3)),
    ("`weight` is a list", _g(weight=[1.0, 1.0, 1.0, 1.0])),
    ("`weight` has an integer dtype", _g(weight=torch.ones(4, dtype=torch.long))),
    ("`weight` of the wrong length", _g(weight=torch.ones(3))),
    ("`weight` on another device", _g(weight=torch.ones(4, device="meta"))),
]

OPTION_CASES: list[Case] = [
    ("unknown `mode`", _g(mode="log")),
    ("unknown `reduction`", _g(reduction="avg")),
    ("`temperature` is a string", _g(temperature="1")),
    ("`temperature` of 0", _g(temperature=0.0)),
    ("`temperature` of inf", _g(temperature=math.inf)),
    ("negative `smoothing`", _g(smoothing=-1.0)),
    ("`label_smoothing` above 1", _g(label_smoothing=1.5)),
    ("`spikemax_s` with `window=None`", _s(window=None)),
    ("`window` is a float", _s(window=2.0)),
    ("`window` longer than T", _s(window=7)),
    ("`window` of 0", _s(window=0)),
    ("`stride` of 0", _s(window=2, stride=0)),
    ("negative `true_rate`", _mse(true_rate=-0.5)),
    ("`false_rate` of NaN", _mse(false_rate=math.nan)),
]

SYNAPTIC_OPERATION_CASES: list[Case] = [
    ("one tensor instead of a list of layers", _ops(SPIKES, [10])),
    ("no layers", _ops([], [])),
    ("one `fan_out` for two layers", _ops([SPIKES, SPIKES], [10])),
    ("a layer that is not a float `[T, B, ...]` tensor", _ops([SPIKES[0]], [10])),
    ("layers with different T or B", _ops([SPIKES, torch.zeros(5, 3, 4)], [10, 10])),
    ("a negative `fan_out`", _ops([SPIKES], [-1])),
]


def _snntorch_population_without_classes() -> object:
    import snntorch.functional as SF
    import spikemax_snntorch  # noqa: F401

    return SF.spikemax_g_loss(population_code=True)


def _norse_three_tuple() -> object:
    import norse.torch
    import spikemax_norse  # noqa: F401

    return norse.torch.SpikeMaxGLoss()((SPIKES, None, None), TARGET)


def _import_without_host(adapter: str, host: str) -> Callable[[], object]:
    """Imports the adapter in a fresh interpreter where the host package cannot be found."""

    def run() -> object:
        code = f"import sys; sys.modules[{host!r}] = None; import {adapter}"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        raise ImportError(result.stderr.strip().splitlines()[-1].split(": ", 1)[1])

    return run


ADAPTER_CASES: list[Case] = [
    ("`SF.spikemax_g_loss(population_code=True)` without `num_classes`", _snntorch_population_without_classes),
    ("a Norse output tuple that is not `(spikes, state)`", _norse_three_tuple),
    ("`import spikemax_snntorch` without snnTorch", _import_without_host("spikemax_snntorch", "snntorch")),
    ("`import spikemax_norse` without Norse", _import_without_host("spikemax_norse", "norse")),
]


def _snntorch_name_taken() -> None:
    import snntorch.functional as SF
    import spikemax_snntorch

    ours = SF.time_to_decision
    SF.time_to_decision = lambda spk_out: None  # snnTorch (or another plugin) defining the name first
    try:
        spikemax_snntorch.register()
    finally:
        SF.time_to_decision = ours


def _norse_name_taken() -> None:
    import norse.torch
    import spikemax_norse

    ours = norse.torch.SpikeMaxGLoss
    norse.torch.SpikeMaxGLoss = torch.nn.Module
    try:
        spikemax_norse.register()
    finally:
        norse.torch.SpikeMaxGLoss = ours


WARNING_CASES: list[Case] = [
    ("`snntorch.functional` already has one of our names", _snntorch_name_taken),
    ("`norse.torch` already has one of our names", _norse_name_taken),
]

# Inputs that are accepted, with results worth knowing: (Python expression, what it shows). The expressions run in
# EDGE_NAMESPACE; the page shows each expression and its printed result.
EDGE_SETUP = """\
spikes = torch.zeros(6, 3, 4)  # T = 6, B = 3, C = 4, every output silent
target = torch.tensor([0, 1, 3])
only_1 = spikes.clone()
only_1[:, :, 1] = 1.0  # class 1 fires at every step, the others never
tied = spikes.clone()
tied[:3, :, 0] = 1.0
tied[3:, :, 2] = 1.0  # classes 0 and 2 fire 3 times each: class 0 leads until they tie at the last step
"""

EDGE_CASES: list[tuple[str, str]] = [
    ("smx.spikemax_g(spikes, target)", "all silent, smoothing 1: log C, finite"),
    ("smx.spikemax_g(spikes, target, mode='softmax')", "all silent, softmax mode: log C as well"),
    ("smx.spikemax_g(only_1, target, reduction='none')", "silent true class, smoothing 1: finite"),
    ("smx.spikemax_g(only_1, target, smoothing=0.0, reduction='none')", "silent true class, smoothing 0: +inf"),
    ("smx.spikemax_g(spikes, target, smoothing=0.0)", "all silent, smoothing 0: +inf"),
    (
        "count_gradient(lambda s: smx.spikemax_g(s, target, smoothing=0.0, reduction='sum'), only_1)",
        "dL/dc at smoothing 0: -inf on a silent target, 1 / sum(c) on a silent non-target, never NaN",
    ),
    (
        "count_gradient(lambda s: smx.spikemax_g(s, target, smoothing=0.0, temperature=2.0, reduction='sum'), only_1)",
        "smoothing 0 with temperature > 1: +inf on silent non-targets (the true limit of c^(1/T - 1)), "
        "-inf on a silent target, never NaN; use smoothing > 0",
    ),
    ("smx.spikemax_g(only_1, target, weight=torch.zeros(4))", "all weights 0: 0 / 0, as in torch cross_entropy"),
    ("smx.predict(spikes)", "no spikes: no decision"),
    ("smx.predict(tied)", "a tie for the most spikes: no decision"),
    ("smx.accuracy(tied, torch.tensor([0, 2, 2]))", "a tie counts as wrong"),
    ("smx.accuracy_over_time(tied, torch.tensor([0, 2, 2]))", "right (class 0) while it leads, then tied"),
    ("smx.time_to_decision(only_1)", "decided from the first step"),
    ("smx.time_to_decision(tied)", "final prediction a tie: -1"),
    ("smx.spikemax_g(only_1.half(), target).dtype", "half-precision spikes are counted in float32"),
    ("torch.equal(smx.spikemax_s(only_1, target, window=6), smx.spikemax_g(only_1, target))", "window = T"),
]


def count_gradient(loss: Callable, spikes: torch.Tensor) -> torch.Tensor:
    """dL/d spikes at step 0, which equals dL/dc (every step of a count gets the same gradient)."""
    spikes = spikes.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(loss(spikes), spikes)
    return gradient[0]


def edge_namespace() -> dict:
    namespace = {"torch": torch, "smx": smx, "count_gradient": count_gradient}
    exec(EDGE_SETUP, namespace)
    return namespace


def shown(value: object) -> str:
    """A result as the page prints it: tensors as rounded numbers or nested lists."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        rounded = value.double().mul(1e4).round().div(1e4) + 0.0  # + 0.0 turns -0.0 into 0.0
        return repr(rounded.item() if rounded.dim() == 0 else rounded.tolist())
    if isinstance(value, torch.Tensor):
        return repr(value.item() if value.dim() == 0 else value.tolist())
    return str(value)


ERROR_SECTIONS: dict[str, list[Case]] = {
    "Spikes": SPIKES_CASES,
    "Target": TARGET_CASES,
    "Classes and weight": CLASS_AND_WEIGHT_CASES,
    "Options": OPTION_CASES,
    "synaptic_operations": SYNAPTIC_OPERATION_CASES,
    "Adapters": ADAPTER_CASES,
}


def raised(action: Callable[[], object]) -> BaseException:
    """The exception ``action`` raises; AssertionError if it raises none."""
    try:
        action()
    except Exception as error:  # noqa: BLE001  (any exception is the subject here)
        return error
    raise AssertionError("expected an exception, none was raised")


def warned(action: Callable[[], object]) -> Warning:
    """The single warning ``action`` emits; AssertionError if it emits none."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    assert len(caught) == 1, f"expected one warning, got {[str(item.message) for item in caught]}"
    return caught[0].message


def markdown() -> str:
    """The tables of docs/errors.md, one per section."""
    parts = []
    for title, cases in ERROR_SECTIONS.items():
        parts.append(f"### {title}\n\n| you pass | exception | message |\n| --- | --- | --- |")
        for description, action in cases:
            error = raised(action)
            parts.append(f"| {description} | `{type(error).__name__}` | `{error}` |")
        parts.append("")
    parts.append("### Warnings\n\n| situation | warning | message |\n| --- | --- | --- |")
    for description, action in WARNING_CASES:
        warning = warned(action)
        parts.append(f"| {description} | `{type(warning).__name__}` | `{warning}` |")
    return "\n".join(parts) + "\n"


def edge_markdown() -> str:
    """The setup block and the results table of docs/errors.md's edge cases."""
    namespace = edge_namespace()
    rows = [f"```python\n{EDGE_SETUP}```\n", "| expression | result | what it shows |", "| --- | --- | --- |"]
    for expression, note in EDGE_CASES:
        rows.append(f"| `{expression}` | `{shown(eval(expression, namespace))}` | {note} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown())
    print(edge_markdown())
