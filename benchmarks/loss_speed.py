"""Loss speed against snnTorch's own count losses, measured as ratios in one run with the contenders alternating.

    python benchmarks/loss_speed.py [--device cpu|cuda] [--repeats 400] [--out docs/results/loss_speed]

Targets (issue 12), printed as met or not with the measured ratio:

* ``spikemax_g`` (probability mode, default options, value checks on) <= 1.0x snnTorch's ``ce_count_loss``, at
  (T, B, C) = (300, 128, 10) and (100, 64, 1000); ``spikemax_g(mode="softmax")`` <= 1.0x ``ce_count_loss``;
  ``mse_count`` <= 1.0x ``mse_count_loss``.
* The modules (``SpikeMaxGLoss``, the snnTorch adapter's ``SF.spikemax_g_loss``, the Norse adapter's
  ``norse.torch.SpikeMaxGLoss``) add <= 5 % over the functional call.
* ``spikemax_s`` with window T/2 <= 1.5x window 2 (its cost does not grow with the window); its cost against
  ``spikemax_g`` is reported.
* The loss's share of one training step of the bench networks (forward + loss + backward + Adam step) < 2 %.

Reported beside the targets, to show where the time of ``spikemax_g`` goes: the same call with value checks off;
the same checks written out inline, without helper functions (the floor for trimming the argument handling); the
bare chain ``cross_entropy(log1p(spikes.sum(0)), target)`` (SpikeMax's arithmetic with no argument handling at
all); and the fixed cost of one call at (T, B, C) = (2, 2, 3), warm and cold (after 64 MiB were
written, as the large passes of a training step evict the interpreter's code and data from the CPU caches).

Timing: one forward + backward pass per sample; each round runs every contender once, in a random order drawn
afresh every round (seeded), so that machine noise and the state each contender leaves behind hit all alike.
A ratio is the median over rounds of the per-round
ratio; the spread is its interquartile range. The sliding-window losses (and ``spikemax_g`` as their yardstick)
rotate in a round of their own, with a tenth of the rounds: their large buffers would otherwise slow the
contender that follows them. ``--out`` writes ``results.json`` (with provenance) and
``results.md``, from which the README's table is generated (``python docs/render_speed.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import spikemax_plugins as smx

SHAPES = [(300, 128, 10), (100, 64, 1000)]  # (T, B, C)
Contender = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _once(loss_fn: Contender, spikes: torch.Tensor, target: torch.Tensor) -> None:
    spikes.grad = None
    loss_fn(spikes, target).backward()


def alternate(
    contenders: dict[str, Contender],
    spikes: torch.Tensor,
    target: torch.Tensor,
    rounds: int,
    before_each: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Seconds of one forward + backward pass per contender and round, the contenders taking turns;
    ``before_each`` runs, untimed, before every timed pass."""
    names = list(contenders)
    for name in names:  # warm-up: allocator, caches, lazy initialisation
        for _ in range(5):
            _once(contenders[name], spikes, target)
    samples: dict[str, list[float]] = {name: [] for name in names}
    # A fresh order every round: each contender runs first, last and after every other one equally often, so the
    # state one leaves behind (allocator, caches) does not always fall on the same neighbour.
    order = random.Random(0)
    for _ in range(rounds):
        for name in order.sample(names, len(names)):
            if before_each is not None:
                before_each()
            _synchronise(spikes.device)
            start = time.perf_counter()
            _once(contenders[name], spikes, target)
            _synchronise(spikes.device)
            samples[name].append(time.perf_counter() - start)
    return samples


def ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> dict[str, float]:
    """Median and interquartile range of the per-round ratio ``numerator / denominator``."""
    ratios = sorted(a / b for a, b in zip(samples[numerator], samples[denominator], strict=True))
    quartiles = statistics.quantiles(ratios, n=4)
    return {"median": statistics.median(ratios), "q1": quartiles[0], "q3": quartiles[2]}


def saved_tensor_bytes(loss_fn: Contender, spikes: torch.Tensor, target: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward (distinct storages), excluding the input itself."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() != spikes.untyped_storage().data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss_fn(spikes, target)
    return sum(storages.values())


def bare_chain(spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SpikeMax's arithmetic (smoothing 1) and nothing else: no checks, no options, no layouts. The floor."""
    return torch.nn.functional.cross_entropy(torch.log1p(spikes.sum(0)), target)


_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_FakeTensor = torch._subclasses.FakeTensor


def inlined_checks(spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``spikemax_g(spikes, target)`` for the inputs timed here only (float32 ``[T, B, C]`` spikes, int64 ``[B]``
    class indices), its argument handling written out inline: the same type, shape, device and value checks and
    the same conditions for skipping the value checks, but no helper functions and no option lookup. What the
    checks would cost with no structure around them at all: the floor for trimming the argument handling."""
    if not isinstance(spikes, torch.Tensor) or spikes.dtype != torch.float32 or spikes.dim() != 3:
        raise TypeError("spikes must be a float32 [T, B, C] tensor (the only input this yardstick times)")
    num_steps, batch_size, num_classes = spikes.shape
    if num_steps == 0 or batch_size == 0 or num_classes < 2:
        raise ValueError(f"spikes must have T, B >= 1 and C >= 2, got shape {tuple(spikes.shape)}")
    if not isinstance(target, torch.Tensor) or target.device != spikes.device:
        raise TypeError("target must be a tensor on the spikes' device")
    if target.dtype != torch.int64 or target.dim() != 1 or target.shape[0] != batch_size:
        raise TypeError(f"target must be int64 [B] = [{batch_size}], got {target.dtype} {tuple(target.shape)}")
    counts = spikes.sum(0)
    if (
        smx.value_checks_enabled()
        and not torch.compiler.is_compiling()
        and not (spikes.is_meta or target.is_meta or _functorch_wrapped(spikes) or _functorch_wrapped(target))
        and not (isinstance(spikes, _FakeTensor) or isinstance(target, _FakeTensor))
    ):
        count_min, count_max = torch.aminmax(counts.detach())
        target_min, target_max = torch.aminmax(target.detach())
        count_min, count_max = count_min.item(), count_max.item()
        if not (math.isfinite(count_min) and math.isfinite(count_max)) or count_min < 0:
            raise ValueError(f"spikes must be finite and >= 0, got counts in [{count_min}, {count_max}]")
        if target_min.item() < 0 or target_max.item() >= num_classes:
            raise ValueError(f"target class indices must be in [0, {num_classes - 1}]")
    return torch.nn.functional.cross_entropy(torch.log1p(counts), target)


@smx.value_checks(False)
def spikemax_g_unchecked(spikes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return smx.spikemax_g(spikes, target)


def loss_contenders(num_steps: int) -> dict[str, Contender]:
    """Every timed loss: ours, the modules and adapters, and snnTorch's own (when installed)."""
    contenders: dict[str, Contender] = {
        "spikemax_g": smx.spikemax_g,
        "spikemax_g, value checks off": spikemax_g_unchecked,
        "spikemax_g, checks inlined": inlined_checks,
        "sum, log1p, cross_entropy": bare_chain,
        "spikemax_g softmax": lambda s, y: smx.spikemax_g(s, y, mode="softmax"),
        "mse_count": lambda s, y: smx.mse_count(s, y, true_rate=0.8, false_rate=0.1),
        "SpikeMaxGLoss": smx.SpikeMaxGLoss(),
        "spikemax_s window 2": lambda s, y: smx.spikemax_s(s, y, window=2),
        f"spikemax_s window {num_steps // 2}": lambda s, y: smx.spikemax_s(s, y, window=num_steps // 2),
    }
    try:
        import snntorch.functional as SF
        import spikemax_snntorch  # noqa: F401
    except ImportError:
        pass
    else:
        contenders["snntorch ce_count_loss"] = SF.ce_count_loss()
        contenders["snntorch mse_count_loss"] = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.1)
        contenders["snntorch adapter spikemax_g_loss"] = SF.spikemax_g_loss()
    try:
        import norse.torch
        import spikemax_norse  # noqa: F401
    except ImportError:
        pass
    else:
        contenders["norse adapter SpikeMaxGLoss"] = norse.torch.SpikeMaxGLoss()
    return contenders


# (name, numerator, denominator, target ratio or None for "reported only")
COMPARISONS = [
    ("spikemax_g / ce_count_loss", "spikemax_g", "snntorch ce_count_loss", 1.0),
    ("spikemax_g, value checks off / ce_count_loss", "spikemax_g, value checks off", "snntorch ce_count_loss", None),
    ("spikemax_g, checks inlined / ce_count_loss", "spikemax_g, checks inlined", "snntorch ce_count_loss", None),
    ("sum, log1p, cross_entropy / ce_count_loss", "sum, log1p, cross_entropy", "snntorch ce_count_loss", None),
    ("spikemax_g softmax / ce_count_loss", "spikemax_g softmax", "snntorch ce_count_loss", 1.0),
    ("mse_count / mse_count_loss", "mse_count", "snntorch mse_count_loss", 1.0),
    ("SpikeMaxGLoss / spikemax_g", "SpikeMaxGLoss", "spikemax_g", 1.05),
    ("snnTorch adapter / spikemax_g", "snntorch adapter spikemax_g_loss", "spikemax_g", 1.05),
    ("Norse adapter / spikemax_g", "norse adapter SpikeMaxGLoss", "spikemax_g", 1.05),
    ("spikemax_s window T/2 / window 2", "spikemax_s window {half}", "spikemax_s window 2", 1.5),
    ("spikemax_s window 2 / spikemax_g", "spikemax_s window 2", "spikemax_g (beside spikemax_s)", None),
]


# The sliding-window losses take turns only among themselves (and with spikemax_g, their yardstick): they allocate
# O(T * B * C) buffers, and the page faults of those would slow whichever contender ran next.
WINDOWED = ("spikemax_s", "spikemax_g")


def loss_inputs(shape: tuple[int, int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes ``[T, B, C]`` (firing probability 0.2, requiring grad) and class indices ``[B]``, seed 0."""
    num_steps, batch_size, classes = shape
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(num_steps, batch_size, classes, generator=generator) < 0.2).float().to(device)
    target = torch.randint(0, classes, (batch_size,), generator=generator).to(device)
    return spikes.requires_grad_(), target


def check_yardsticks(spikes: torch.Tensor, target: torch.Tensor) -> None:
    """The yardsticks compute ``spikemax_g``'s value exactly: one that drifted would time something else."""
    expected = smx.spikemax_g(spikes, target)
    for name, yardstick in (("spikemax_g, checks inlined", inlined_checks), ("sum, log1p, cross_entropy", bare_chain)):
        value = yardstick(spikes, target)
        if not torch.equal(value, expected):
            raise AssertionError(f"the yardstick {name!r} gives {value.item()!r}, spikemax_g {expected.item()!r}")


def measure_shape(shape: tuple[int, int, int], device: torch.device, rounds: int) -> dict:
    num_steps, batch_size, classes = shape
    spikes, target = loss_inputs(shape, device)
    check_yardsticks(spikes, target)
    contenders = loss_contenders(num_steps)
    windowed = {name: contenders[name] for name in contenders if name.startswith(WINDOWED[0])}
    windowed[WINDOWED[1]] = contenders[WINDOWED[1]]
    others = {name: contender for name, contender in contenders.items() if name not in windowed or name == "spikemax_g"}
    samples = alternate(others, spikes, target, rounds)
    window_samples = alternate(windowed, spikes, target, max(rounds // 10, 20))
    samples.update({name: values for name, values in window_samples.items() if name != "spikemax_g"})
    samples["spikemax_g (beside spikemax_s)"] = window_samples["spikemax_g"]
    result = {
        "shape": {"T": num_steps, "B": batch_size, "C": classes},
        "milliseconds": {name: statistics.median(values) * 1e3 for name, values in samples.items()},
        "saved_mib": {
            name: saved_tensor_bytes(contender, spikes, target) / 2**20 for name, contender in contenders.items()
        },
        "comparisons": [],
    }
    for title, numerator, denominator, target_ratio in COMPARISONS:
        numerator = numerator.format(half=num_steps // 2)
        if numerator not in samples or denominator not in samples:
            continue
        measured = ratio(samples, numerator, denominator)
        result["comparisons"].append(
            {
                "comparison": title,
                **measured,
                "target": target_ratio,
                "met": None if target_ratio is None else measured["median"] <= target_ratio,
            }
        )
    return result


OVERHEAD_SHAPE = (2, 2, 3)  # (T, B, C): the arithmetic is negligible, what is timed is the cost of a call
OVERHEAD_CONTENDERS = (
    "sum, log1p, cross_entropy",
    "spikemax_g, checks inlined",
    "spikemax_g, value checks off",
    "spikemax_g",
    "snntorch ce_count_loss",
)
_EVICTION_VALUES = 16 * 2**20  # float32: 64 MiB, more than the CPU's last-level cache


def call_overhead(device: torch.device, rounds: int) -> dict:
    """Microseconds of one forward + backward pass at :data:`OVERHEAD_SHAPE`, warm (right after another call) and
    cold (after 64 MiB were written, as after the large tensor passes of a training step, which evict the
    interpreter's code and data from the CPU caches)."""
    spikes, target = loss_inputs(OVERHEAD_SHAPE, device)
    available = loss_contenders(OVERHEAD_SHAPE[0])
    contenders = {name: available[name] for name in OVERHEAD_CONTENDERS if name in available}
    eviction = torch.zeros(_EVICTION_VALUES)
    warm = alternate(contenders, spikes, target, rounds)
    cold = alternate(contenders, spikes, target, rounds, before_each=lambda: eviction.add_(1.0))
    return {
        "shape": dict(zip("TBC", OVERHEAD_SHAPE, strict=True)),
        "microseconds": {
            name: {"warm": statistics.median(warm[name]) * 1e6, "cold": statistics.median(cold[name]) * 1e6}
            for name in contenders
        },
    }


def _time_training_steps(network, loss_fn, frames, labels, device: torch.device, rounds: int) -> dict:
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)

    def step() -> torch.Tensor:
        output = network(frames).output
        loss = loss_fn(output, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return output.detach()

    output = step()
    step_seconds, loss_seconds = [], []
    for _ in range(rounds):
        _synchronise(device)
        start = time.perf_counter()
        output = step()
        _synchronise(device)
        step_seconds.append(time.perf_counter() - start)
        loss_seconds.append(alternate({"loss": loss_fn}, output.clone().requires_grad_(), labels, 3)["loss"][1])
    share = statistics.median(a / b for a, b in zip(loss_seconds, step_seconds, strict=True))
    return {
        "step_milliseconds": statistics.median(step_seconds) * 1e3,
        "loss_milliseconds": statistics.median(loss_seconds) * 1e3,
        "share": share,
        "target": 0.02,
        "met": share < 0.02,
    }


def training_step_share(device: torch.device, rounds: int) -> list[dict]:
    """The loss's share of one training step of the default bench network (digits-dvs shapes), per framework.

    Each round times a full step (network forward, SpikeMax loss, backward, Adam step) and, right after, the
    loss's own forward + backward on a detached copy of the same output: what the loss adds to the step.
    """
    from spikemax_bench.models import build_network
    from spikemax_bench.sweep import make_loss

    generator = torch.Generator().manual_seed(1)
    frames = (torch.rand(30, 64, 2, 22, 22, generator=generator) < 0.05).float().to(device)  # a digits-dvs batch
    labels = torch.randint(0, 10, (64,), generator=generator).to(device)
    shares = []
    for framework in ("snntorch", "norse"):
        try:
            network = build_network(framework, architecture="mlp", input_shape=(2, 22, 22), num_classes=10)
        except ImportError:
            continue
        loss_fn = make_loss(framework, "spikemax_g", {"smoothing": 1.0})
        timing = _time_training_steps(network.to(device), loss_fn, frames, labels, device, rounds)
        shares.append({"framework": framework, **timing})
    return shares


def profile_tables(shape: tuple[int, int, int], device: torch.device, iterations: int = 50) -> dict[str, str]:
    """torch.profiler's table of the operators of ``spikemax_g`` and of ``ce_count_loss`` (forward + backward),
    by their own CPU time: where the time of the one target a run may miss goes."""
    from torch.profiler import ProfilerActivity, profile

    spikes, target = loss_inputs(shape, device)
    contenders = loss_contenders(shape[0])
    tables = {}
    for name in ("spikemax_g", "snntorch ce_count_loss"):
        if name not in contenders:
            continue
        for _ in range(5):
            _once(contenders[name], spikes, target)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(iterations):
                _once(contenders[name], spikes, target)
        averages = profiler.key_averages()
        tables[name] = averages.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=60)
    return tables


def provenance(device: torch.device, rounds: int, argv: list[str]) -> dict:
    """The bench's own provenance helpers (one implementation of git, versions and CPU name)."""
    from spikemax_bench.provenance import cpu_name, git_commit, package_versions

    return {
        "command": ["python", "benchmarks/loss_speed.py", *argv],
        "git": git_commit(),
        "packages": package_versions(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "rounds": rounds,
        "python": platform.python_version(),
    }


def markdown(document: dict) -> str:
    """The table the README shows (between its loss-speed markers)."""
    info = document["provenance"]
    lines = [
        f"torch {info['packages']['torch']}, snnTorch {info['packages']['snntorch']}, device {info['device']} "
        f"({info['device_name'] or 'unknown CPU'}), {info['torch_threads']} threads, {info['rounds']} alternating "
        "rounds; ratio = median of the per-round ratios [interquartile range].",
        "",
        "| (T, B, C) | comparison | ratio | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for shape in document["shapes"]:
        size = f"({shape['shape']['T']}, {shape['shape']['B']}, {shape['shape']['C']})"
        for item in shape["comparisons"]:
            target = "reported" if item["target"] is None else f"<= {item['target']:.2f}x"
            met = "" if item["met"] is None else ("yes" if item["met"] else "**no**")
            lines.append(
                f"| {size} | {item['comparison']} | {item['median']:.2f}x [{item['q1']:.2f}, {item['q3']:.2f}] | "
                f"{target} | {met} |"
            )
    for name, table in document.get("profile", {}).items():
        shape = document["profile_shape"]
        lines += [
            "",
            f"Profile of `{name}` at (T, B, C) = ({shape[0]}, {shape[1]}, {shape[2]}), forward + backward, "
            "operators by their own CPU time:",
            "",
            "```text",
            table.rstrip(),
            "```",
        ]
    if document.get("profile"):
        lines += [
            "",
            "Both spend most of their time in the same two memory-bound operations: `aten::sum` (the counts "
            "over time) and the `aten::copy_` under `AccumulateGrad` that writes the broadcast gradient "
            "`[T, B, C]` into `spikes.grad`; their cost varies from run to run with page faults on fresh "
            "buffers, so the alternating ratios above, not these totals, compare the two. What `spikemax_g` "
            "adds is small: `log1p` of the counts and its backward, and two `aminmax` value checks.",
        ]
    if document.get("call_overhead"):
        overhead = document["call_overhead"]
        shape = overhead["shape"]
        lines += [
            "",
            'Where the rest goes: the rows "value checks off" and "sum, log1p, cross_entropy" above separate the '
            "value checks and the argument handling from SpikeMax's own arithmetic, which takes `log1p` of the counts "
            '`[B, C]` (and its backward) where `ce_count_loss` uses the counts as logits; the row "checks inlined" '
            "runs every check of `spikemax_g` written out inline, without helper functions: the most that trimming "
            "the argument handling could gain. The fixed cost of one call, "
            f"forward + backward at (T, B, C) = ({shape['T']}, {shape['B']}, {shape['C']}) where the arithmetic is "
            "negligible, straight after another call (warm) and after 64 MiB were written (cold, as after the large "
            "passes of a training step):",
            "",
            "| call | warm (µs) | cold (µs) |",
            "| --- | --- | --- |",
        ]
        for name, times in overhead["microseconds"].items():
            lines.append(f"| {name} | {times['warm']:.1f} | {times['cold']:.1f} |")
    if document["training_step"]:
        lines += [
            "",
            "| framework | training step (ms) | loss forward + backward (ms) | loss share | target | met |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for item in document["training_step"]:
            lines.append(
                f"| {item['framework']} | {item['step_milliseconds']:.1f} | {item['loss_milliseconds']:.3f} | "
                f"{item['share'] * 100:.2f} % | < 2 % | {'yes' if item['met'] else '**no**'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=400, help="alternating rounds per shape (default 400)")
    parser.add_argument("--step-rounds", type=int, default=20, help="training steps timed per framework")
    parser.add_argument("--out", default=None, help="folder for results.json and results.md")
    parser.add_argument(
        "--profile", action="store_true", help=f"add profiler tables of spikemax_g and ce_count_loss at {SHAPES[-1]}"
    )
    arguments = parser.parse_args(argv)
    if arguments.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    device = torch.device(arguments.device)
    document = {
        "provenance": provenance(device, arguments.repeats, sys.argv[1:] if argv is None else argv),
        "shapes": [measure_shape(shape, device, arguments.repeats) for shape in SHAPES],
        "training_step": training_step_share(device, arguments.step_rounds),
        "call_overhead": call_overhead(device, arguments.repeats),
    }
    if arguments.profile:
        document["profile_shape"] = list(SHAPES[-1])
        document["profile"] = profile_tables(SHAPES[-1], device)
    text = markdown(document)
    print(text)
    for shape in document["shapes"]:
        print(
            f"({shape['shape']['T']}, {shape['shape']['B']}, {shape['shape']['C']}) median ms: "
            + ", ".join(f"{name} {value:.3f}" for name, value in shape["milliseconds"].items())
        )
    if arguments.out:
        out = Path(arguments.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
        (out / "results.md").write_text(text)
        print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
