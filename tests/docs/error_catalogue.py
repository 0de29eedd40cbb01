"""Every error (and warning) the package raises, triggered for real: the source of ``docs/errors.md``.

``python -m tests.docs.error_catalogue --write`` rewrites the generated blocks of that page (between the
``<!-- error-catalogue:... -->`` markers); ``tests/docs/test_error_page.py`` triggers every case again and fails
unless the page holds exactly what the code produces, so the page cannot drift from the code.

A case is ``(what the caller did, function that does it)``; the function must raise (or, for ``WARNINGS``,
warn). Host-free cases only need torch; the adapter cases import snnTorch or Norse when they run.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

import spikemax_plugins as smx
from spikemax_plugins import early_exit, streaming

PAGE = Path(__file__).resolve().parents[2] / "docs" / "errors.md"

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


def _ops(layer_spikes, fan_out, **options) -> Callable[[], object]:
    return lambda: smx.synaptic_operations(layer_spikes, fan_out, **options)


def _second_derivative_at_smoothing_zero() -> object:
    spikes = (SPIKES + 1).requires_grad_()
    loss = smx.spikemax_g(spikes, TARGET, smoothing=0.0) + spikes.square().sum()
    (gradient,) = torch.autograd.grad(loss, spikes, create_graph=True)
    return torch.autograd.grad(gradient.sum(), spikes)


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
    ("`time_dim` outside the 3 dimensions", _g(time_dim=3)),
    ("batch-first spikes `[B, T, N]` without `time_dim`", _g(spikes=torch.zeros(3, 6, 4))),
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
    ("uint64 class indices", _g(target=TARGET.to(torch.uint64))),
    ("a class index near 2**63", _g(target=torch.tensor([0, 1, 2**63 - 1]))),
]

CLASS_AND_WEIGHT_CASES: list[Case] = [
    ("`num_classes` is a float", _g(num_classes=2.0)),
    ("`num_classes` below 2", _g(num_classes=1)),
    ("N not divisible by `num_classes`", _g(num_classes=3)),
    ("`weight` is a list", _g(weight=[1.0, 1.0, 1.0, 1.0])),
    ("`weight` has an integer dtype", _g(weight=torch.ones(4, dtype=torch.long))),
    ("`weight` of the wrong length", _g(weight=torch.ones(3))),
    ("`weight` on another device", _g(weight=torch.ones(4, device="meta"))),
    ("`weight` with a NaN, inf or negative entry", _g(weight=torch.tensor([1.0, -1.0, 1.0, 1.0]))),
    ("every sample of the batch weighs 0 (`reduction='mean'`)", _g(weight=torch.tensor([0.0, 0.0, 1.0, 0.0]))),
]

OPTION_CASES: list[Case] = [
    ("unknown `mode`", _g(mode="log")),
    ("unknown `reduction`", _g(reduction="avg")),
    ("`temperature` is a string", _g(temperature="1")),
    ("`temperature` of 0", _g(temperature=0.0)),
    ("`temperature` of inf", _g(temperature=math.inf)),
    ("negative `smoothing`", _g(smoothing=-1.0)),
    ("`smoothing` too large for float32", _g(smoothing=1e39)),
    ("`label_smoothing` above 1", _g(label_smoothing=1.5)),
    ("`spikemax_s` with `window=None`", _s(window=None)),
    ("`window` is a float", _s(window=2.0)),
    ("`window` longer than T", _s(window=7)),
    ("`window` of 0", _s(window=0)),
    ("`stride` of 0", _s(window=2, stride=0)),
    ("negative `true_rate`", _mse(true_rate=-0.5)),
    ("`false_rate` of NaN", _mse(false_rate=math.nan)),
    ("`true_rate` too large for float32", _mse(true_rate=1e300)),
    ("a module option (checked when the module is built)", lambda: smx.SpikeMaxSLoss(window=0)),
]

GRADIENT_CASES: list[Case] = [
    ("a second derivative of a `smoothing=0` loss", _second_derivative_at_smoothing_zero),
]

SYNAPTIC_OPERATION_CASES: list[Case] = [
    ("one tensor instead of a list of layers", _ops(SPIKES, [10])),
    ("no layers", _ops([], [])),
    ("one `fan_out` for two layers", _ops([SPIKES, SPIKES], [10])),
    ("a layer with only two dimensions", _ops([SPIKES[0]], [10])),
    ("a layer of integers", _ops([SPIKES.long()], [10])),
    ("layers with different T or B", _ops([SPIKES, torch.zeros(5, 3, 4)], [10, 10])),
    ("a negative `fan_out`", _ops([SPIKES], [-1])),
    ("`fan_out` that is a number, not a sequence", _ops([SPIKES], 10)),
    ("a `fan_out` tensor of the wrong shape", _ops([SPIKES], [torch.ones(5)])),
    ("a NaN, inf or negative spike or fan-out", _ops([SPIKES - 1], [10])),
    ("`until` past the last step", _ops([SPIKES], [10], until=torch.tensor([0, 1, 6]))),
]


def _penalty(**options) -> Callable[[], object]:
    spikes = options.pop("spikes", SPIKES)
    return lambda: smx.activity_penalty(spikes, **options)


ACTIVITY_PENALTY_CASES: list[Case] = [
    ("a layer with only two dimensions", _penalty(spikes=SPIKES[0])),
    ("a layer of integers", _penalty(spikes=SPIKES.long())),
    ("a layer without neurons (`[T, B, C, 0]`)", _penalty(spikes=torch.zeros(6, 3, 4, 0))),
    ("`time_dim` outside a 5-D layer's dimensions", _penalty(spikes=torch.zeros(6, 3, 2, 4, 4), time_dim=5)),
    ("`power` of 3", _penalty(power=3)),
    ("`power` is a float or a bool", _penalty(power=1.5)),
    ("`target_rate` above 1", _penalty(target_rate=1.5)),
    ("`target_rate` is a string", _penalty(target_rate="0.1")),
    ("a NaN or inf spike (as in the losses)", _penalty(spikes=SPIKES + math.inf)),
    ("`ActivityPenalty` option (checked when the module is built)", lambda: smx.ActivityPenalty(target_rate=-0.1)),
]

RULE = early_exit.ExitRule(
    checkpoints=[2, 5], thresholds=torch.tensor([0.5, 0.5]), max_set_size=1, score="probability", smoothing=1.0,
    num_classes=4, num_steps=6,
)


def _calibrate(**options) -> Callable[[], object]:
    spikes = options.pop("spikes", SPIKES)
    target = options.pop("target", TARGET)
    return lambda: early_exit.calibrate(spikes, target, **{"method": "conformal", "alpha": 0.2, **options})


def _update_past_the_end() -> object:
    state = RULE.start(3)
    for step in SPIKES:
        state.update(step)
    return state.update(SPIKES[0])


EARLY_EXIT_CASES: list[Case] = [
    ("unknown `method`", _calibrate(method="fast")),
    ("`alpha` outside (0, 1) for \"conformal\"", _calibrate(alpha=0.0)),
    ("`alpha` of 1 for \"accuracy\"", _calibrate(method="accuracy", alpha=1.0)),
    ("unknown `score`", _calibrate(score="entropy")),
    ("`checkpoints` not increasing", _calibrate(checkpoints=[3, 1])),
    ("`checkpoints` past the last step", _calibrate(checkpoints=[2, 9])),
    ("an empty calibration set", _calibrate(spikes=torch.zeros(6, 0, 4), target=torch.zeros(0, dtype=torch.long))),
    ("a calibration set too small for `alpha`", _calibrate(alpha=0.05)),
    ("a rule whose last checkpoint is not T - 1", lambda: early_exit.ExitRule(
        checkpoints=[2], thresholds=[0.5], max_set_size=1, score="margin", smoothing=1.0, num_classes=4,
        num_steps=6)),
    ("a rule with one threshold for two checkpoints", lambda: early_exit.ExitRule(
        checkpoints=[2, 5], thresholds=[0.5], max_set_size=1, score="margin", smoothing=1.0, num_classes=4,
        num_steps=6)),
    ("`ExitRule.from_dict` with an unknown key", lambda: early_exit.ExitRule.from_dict({**RULE.to_dict(), "w": 1})),
    ("a recording of another length than the rule's", lambda: early_exit.evaluate(RULE, torch.zeros(7, 3, 4))),
    ("one step of the wrong shape to `ExitState.update`", lambda: RULE.start(3).update(SPIKES)),
    ("more steps than the rule's T to `ExitState.update`", _update_past_the_end),
    ("a streaming metric fed another number of steps", lambda: streaming.AccuracyOverTime(num_steps=5).update(
        SPIKES, TARGET)),
    ("`set_value_checks` with something else than a bool", lambda: smx.set_value_checks(0)),
]


def _snntorch_population_without_classes() -> object:
    import snntorch.functional as SF
    import spikemax_snntorch  # noqa: F401

    return SF.spikemax_g_loss(population_code=True)


def _norse_three_tuple() -> object:
    import norse.torch
    import spikemax_norse  # noqa: F401

    return norse.torch.SpikeMaxGLoss()((SPIKES, None, None), TARGET)


def _norse_state_as_spikes() -> object:
    import norse.torch
    import spikemax_norse  # noqa: F401

    _, state = norse.torch.LIF(record_states=True)(SPIKES)
    return norse.torch.SpikeMaxGLoss()(state, TARGET)


def _snntorch_weight_list() -> object:
    import snntorch.functional as SF
    import spikemax_snntorch  # noqa: F401

    return SF.spikemax_g_loss(weight=[1.0, 2.0, 1.0, 1.0])


def _norse_looping_model() -> object:
    import norse.torch
    import spikemax_norse

    model = norse.torch.SequentialState(torch.nn.Linear(4, 4), norse.torch.LIF())
    return spikemax_norse.run_early_exit(model, SPIKES, RULE)


def _import_without_host(adapter: str, host: str) -> Callable[[], object]:
    """Imports the adapter in a fresh interpreter where the host package cannot be found."""

    def run() -> object:
        code = f"import sys; sys.modules[{host!r}] = None; import {adapter}"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        raise ImportError(result.stderr.strip().splitlines()[-1].split(": ", 1)[1])

    return run


ADAPTER_CASES: list[Case] = [
    ("`SF.spikemax_g_loss(population_code=True)` without `num_classes`", _snntorch_population_without_classes),
    ("`SF.spikemax_g_loss(weight=[...])` (checked when the loss is built)", _snntorch_weight_list),
    ("a Norse output tuple that is not `(spikes, state)`", _norse_three_tuple),
    ("a Norse state passed as the spikes (e.g. `LIF(record_states=True)`'s)", _norse_state_as_spikes),
    ("`spikemax_norse.run_early_exit` with a time-looping module", _norse_looping_model),
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
    (
        "smx.spikemax_g(only_1, target, weight=torch.zeros(4), reduction='sum')",
        "all weights 0: a sum of 0 (the mean, 0 / 0, is refused)",
    ),
    (
        "torch.equal(smx.spikemax_g(only_1.permute(1, 2, 0), target, time_dim=-1), smx.spikemax_g(only_1, target))",
        "lava-dl's [B, C, T] with time_dim=-1",
    ),
    ("smx.predict(torch.tensor([[[2.0**24, 2.0**24]], [[1.0, 0.0]]]))", "2**24 + 1 against 2**24 spikes: not a tie"),
    ("smx.spikemax_g(spikes.to('meta'), target.to('meta')).device", "meta tensors: no values to check"),
    (
        "early_exit.confidence(spikes, smoothing=0.0)[0, 0]",
        "all silent with smoothing 0: the uniform distribution, the limit of smoothing -> 0",
    ),
    ("smx.predict(spikes)", "no spikes: no decision"),
    ("smx.predict(tied)", "a tie for the most spikes: no decision"),
    ("smx.accuracy(tied, torch.tensor([0, 2, 2]))", "a tie counts as wrong"),
    ("smx.accuracy_over_time(tied, torch.tensor([0, 2, 2]))", "right (class 0) while it leads, then tied"),
    ("smx.time_to_decision(only_1)", "decided from the first step"),
    ("smx.time_to_decision(tied)", "final prediction a tie: -1"),
    ("smx.spikemax_g(only_1.half(), target).dtype", "half-precision spikes are counted in float32"),
    ("torch.equal(smx.spikemax_s(only_1, target, window=6), smx.spikemax_g(only_1, target))", "window = T"),
    (
        "smx.activity_penalty(only_1, reduction='none')",
        "one of 4 neurons fires at every step: a mean firing rate of 0.25 per sample",
    ),
    ("smx.activity_penalty(only_1, target_rate=1.0)", "no neuron fires above the target rate: 0"),
]


def count_gradient(loss: Callable, spikes: torch.Tensor) -> torch.Tensor:
    """dL/d spikes at step 0, which equals dL/dc (every step of a count gets the same gradient)."""
    spikes = spikes.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(loss(spikes), spikes)
    return gradient[0]


def edge_namespace() -> dict:
    namespace = {"torch": torch, "smx": smx, "early_exit": early_exit, "count_gradient": count_gradient}
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
    "Gradients": GRADIENT_CASES,
    "synaptic_operations": SYNAPTIC_OPERATION_CASES,
    "activity_penalty": ACTIVITY_PENALTY_CASES,
    "Early exit, streaming metrics and the value-check switch": EARLY_EXIT_CASES,
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
            parts.append(f"| {description} | `{type(error).__name__}` | `{_row_text(str(error))}` |")
        parts.append("")
    parts.append("### Warnings\n\n| situation | warning | message |\n| --- | --- | --- |")
    for description, action in WARNING_CASES:
        warning = warned(action)
        parts.append(f"| {description} | `{type(warning).__name__}` | `{_row_text(str(warning))}` |")
    return "\n".join(parts) + "\n"


def edge_markdown() -> str:
    """The setup block and the results table of docs/errors.md's edge cases."""
    namespace = edge_namespace()
    rows = [f"```python\n{EDGE_SETUP}```\n", "| expression | result | what it shows |", "| --- | --- | --- |"]
    for expression, note in EDGE_CASES:
        rows.append(f"| `{expression}` | `{shown(eval(expression, namespace))}` | {note} |")
    return "\n".join(rows) + "\n"


def _row_text(text: str) -> str:
    # A table cell cannot hold a raw "|": messages are shown in code spans, where it must be escaped.
    return text.replace("|", "\\|")


BLOCKS = {"errors": markdown, "edge-cases": edge_markdown}
_BLOCK = re.compile(r"(<!-- error-catalogue:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /error-catalogue -->)", re.DOTALL)


def render_page(text: str) -> str:
    """``text`` (docs/errors.md) with every generated block replaced by what the code produces now."""
    return _BLOCK.sub(lambda match: match[1] + BLOCKS[match["name"]]() + match[4], text)


if __name__ == "__main__":
    current = PAGE.read_text(encoding="utf-8")
    if sys.argv[1:] == ["--write"]:
        PAGE.write_text(render_page(current), encoding="utf-8")
    else:
        print(markdown())
        print(edge_markdown())
