"""Early-exit throughput: decisions per second of the bench's networks, full window against early exit.

    python benchmarks/early_exit_throughput.py [--repeats 10] [--rounds 5] [--device cpu|cuda]
        [--out docs/results/early_exit_throughput]

For each framework x loss the bench's network is trained as the committed default run chose it (seed 0, its
hyper-parameters and learning rate, ``docs/results/default/results.json``), the alpha = 0.01 "accuracy" rule is
calibrated on the validation split, and the test split, repeated ``--repeats`` times, is the stream of decisions.
Contenders, timed alternating (every round runs each once, in a fresh random order):

* ``full window``: batches of ``--batch-size``, every step simulated, decided on the full counts;
* ``run``: :func:`spikemax_plugins.early_exit.run` on each batch (the batch steps until its last sample exits);
* ``stream, S slots``: :func:`spikemax_plugins.early_exit.stream`, continuous batching with S rows;
* ``one sample at a time``: ``run`` with batches of 1, on the first ``--single`` samples only (it is slow).

Before anything is timed, every contender's decisions are checked: the full window's equal
:func:`spikemax_plugins.metrics.predict` on the recorded test outputs, the early-exit contenders' exit steps,
predictions and prediction sets equal :func:`spikemax_plugins.early_exit.evaluate` on that recording, sample by
sample. Ratios are decisions/s over the full window's, per round, median over rounds (interquartile range
beside). The ideal speed-up of early exit is ``1 / exit fraction``. ``--out`` writes ``results.json`` (with the
CPU, threads and versions) and ``results.md``, which ``python docs/render_speed.py`` puts into the README.

``--device cuda`` trains, records and times everything on the GPU (each timed call ends with a synchronisation);
a short check: ``--device cuda --frameworks snntorch --losses spikemax_g --repeats 2 --rounds 2 --epochs 2``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from spikemax_plugins import early_exit, metrics

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "docs" / "results" / "default" / "results.json"


def _bench():
    """The bench application's pieces this benchmark reuses (imported late: ``--help`` needs none of them)."""
    from spikemax_bench import provenance
    from spikemax_bench.data import load_dataset
    from spikemax_bench.loaders import make_loader
    from spikemax_bench.models import build_network
    from spikemax_bench.models.slots import NetworkSlots
    from spikemax_bench.sweep import make_loss
    from spikemax_bench.train import train_network

    return provenance, load_dataset, build_network, NetworkSlots, make_loader, make_loss, train_network


class _Silent:
    def advance(self, amount: int = 1) -> None:
        pass


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _record(network, frames: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The network's output spikes over the full window, ``[T, N, C]``."""
    with torch.no_grad():
        return torch.cat([network(frames[:, start:start + batch_size]).output
                          for start in range(0, frames.shape[1], batch_size)], 1)


def _full_window(network, frames: torch.Tensor, batch_size: int) -> torch.Tensor:
    return metrics.predict(_record(network, frames, batch_size))


def _run_batched(network, frames: torch.Tensor, rule, batch_size: int) -> early_exit.ExitReport:
    parts = []
    for start in range(0, frames.shape[1], batch_size):
        network.reset_state()
        parts.append(early_exit.run(lambda x: network.step(x)[-1], frames[:, start:start + batch_size], rule))
    return _joined(parts)


def _joined(parts: list[early_exit.ExitReport]) -> early_exit.ExitReport:
    exit_step = torch.cat([part.exit_step for part in parts])
    return early_exit.ExitReport(
        exit_step=exit_step,
        prediction=torch.cat([part.prediction for part in parts]),
        prediction_set=torch.cat([part.prediction_set for part in parts]),
        num_steps=parts[0].num_steps,
        steps_simulated=sum(part.steps_simulated for part in parts),
        mean_exit_step=float(exit_step.double().mean()),
        exit_fraction=float(((exit_step + 1).double() / parts[0].num_steps).mean()),
        sample_steps_simulated=sum(part.sample_steps_simulated for part in parts),
    )


def _same_decisions(report: early_exit.ExitReport, expected: early_exit.ExitReport) -> bool:
    return (torch.equal(report.exit_step, expected.exit_step) and torch.equal(report.prediction, expected.prediction)
            and torch.equal(report.prediction_set, expected.prediction_set))


def _quartiles(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [values[0], values[0]]
    quartiles = statistics.quantiles(values, n=4)
    return [quartiles[0], quartiles[2]]


def measure_cell(framework: str, loss: str, record: dict, dataset, arguments, bench) -> dict:
    _, _, build_network, NetworkSlots, make_loader, make_loss, train_network = bench
    device = torch.device(arguments.device)
    torch.manual_seed(0)
    network = build_network(framework, architecture="mlp", input_shape=dataset.input_shape,
                            num_classes=dataset.num_classes, seed=0).to(device)
    started = time.perf_counter()
    train_network(network, make_loss(framework, loss, record["hyper_parameters"]),
                  make_loader(dataset.train, 64, shuffle=True, seed=0),
                  make_loader(dataset.validation, 256, shuffle=False, seed=0),
                  epochs=arguments.epochs, learning_rate=record["learning_rate"], device=device,
                  task=_Silent())
    training_seconds = time.perf_counter() - started
    network.eval()
    validation = [tensor.to(device) for tensor in next(iter(make_loader(dataset.validation, len(dataset.validation),
                                                                         shuffle=False, seed=0)))]
    test_frames, test_labels = (tensor.to(device) for tensor in next(iter(make_loader(dataset.test, len(dataset.test),
                                                                                      shuffle=False, seed=0))))
    rule = early_exit.calibrate(_record(network, validation[0], arguments.batch_size), validation[1],
                                method="accuracy", alpha=0.01)
    frames = test_frames.repeat(1, arguments.repeats, *([1] * (test_frames.dim() - 2)))  # [T, N, ...]
    labels = test_labels.repeat(arguments.repeats)
    recording = _record(network, frames, arguments.batch_size)
    expected = early_exit.evaluate(rule, recording, labels)
    single = frames[:, :arguments.single]

    contenders: dict[str, Callable[[], object]] = {
        "full window": lambda: _full_window(network, frames, arguments.batch_size),
        "run": lambda: _run_batched(network, frames, rule, arguments.batch_size),
        **{f"stream, {slots} slots": (lambda slots=slots: early_exit.stream(NetworkSlots(network), frames, rule,
                                                                          slots=slots))
           for slots in arguments.slots},
        "one sample at a time": lambda: _run_batched(network, single, rule, 1),
    }
    decisions = {name: (single.shape[1] if name == "one sample at a time" else frames.shape[1]) for name in contenders}
    # Every contender's decisions, checked before anything is timed.
    outputs = {name: contender() for name, contender in contenders.items()}  # the reports give the work done too
    checks = {"full window": bool(torch.equal(outputs["full window"], metrics.predict(recording)))}
    for name, output in outputs.items():
        if name == "full window":
            continue
        reference = expected
        if name == "one sample at a time":
            reference = early_exit.evaluate(rule, recording[:, :arguments.single])
        checks[name] = _same_decisions(output, reference)
    if not all(checks.values()):
        raise SystemExit(f"{framework} {loss}: decisions differ from the reference: {checks}")

    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    generator = random.Random(0)
    for _ in range(arguments.rounds):
        generator.shuffle(order)
        for name in order:
            started = time.perf_counter()
            contenders[name]()
            _synchronise(device)
            seconds[name].append(time.perf_counter() - started)
    rates = {name: [decisions[name] / value for value in values] for name, values in seconds.items()}
    ratios = {name: [rate / full for rate, full in zip(rates[name], rates["full window"], strict=True)]
              for name in contenders}
    full_window_calls = -(-frames.shape[1] // arguments.batch_size) * rule.num_steps
    early_exit_reports = {name: output for name, output in outputs.items() if name != "full window"}
    return {
        "framework": framework,
        "loss": loss,
        "hyper_parameters": record["hyper_parameters"],
        "learning_rate": record["learning_rate"],
        "training_seconds": training_seconds,
        "rule": rule.to_dict(),
        "decisions": frames.shape[1],
        "accuracy_full_window": float(metrics.accuracy(recording, labels)),
        "accuracy_early_exit": expected.accuracy,
        "exit_fraction": expected.exit_fraction,
        "ideal_speed_up": 1 / expected.exit_fraction,
        # Per contender ("one sample at a time" over its --single samples): what the network executed.
        "sample_steps": {"full window": frames.shape[1] * rule.num_steps,
                         **{name: report.sample_steps_simulated for name, report in early_exit_reports.items()}},
        "network_calls": {"full window": full_window_calls,
                          **{name: report.steps_simulated for name, report in early_exit_reports.items()}},
        "decisions_checked": checks,
        "decisions_per_second": {name: statistics.median(values) for name, values in rates.items()},
        "ratio_to_full_window": {name: statistics.median(values) for name, values in ratios.items()},
        "ratio_interquartile_range": {name: _quartiles(values) for name, values in ratios.items()},
    }


def render(document: dict) -> str:
    provenance = document["provenance"]
    slots = document["config"]["slots"]
    best = f"stream, {max(slots)} slots"
    lines = [
        f"Decisions per second relative to the full window in batches of {document['config']['batch_size']} "
        f"(median of {document['config']['rounds']} alternating rounds), digits-dvs test split repeated "
        f"{document['config']['repeats']}x ({document['cells'][0]['decisions']} decisions), the alpha = 0.01 "
        f"accuracy rule; {provenance['cpu']}, {provenance['threads']} thread(s), "
        + (f"GPU {provenance['device_name']}, " if provenance.get("device") == "cuda" else "")
        + f"torch {provenance['torch']}, "
        f"commit {provenance['git']['commit'][:7]}{' (dirty)' if provenance['git']['dirty'] else ''}. Every "
        "contender's decisions were checked equal to `evaluate` (early exit) or `predict` (full window) first.",
        "",
        "| framework | loss | accuracy, full window | accuracy, early exit | exit fraction | ideal speed-up "
        "| `run`, batched " + "".join(f"| `stream`, {count} slots " for count in slots)
        + f"| {best}: share of ideal | one sample at a time |",
        "|---|---|---|---|---|---|---" + "|---" * len(slots) + "|---|---|",
    ]
    for cell in document["cells"]:
        ratio = cell["ratio_to_full_window"]
        lines.append(
            f"| {cell['framework']} | {cell['loss']} | {cell['accuracy_full_window']:.3f} | "
            f"{cell['accuracy_early_exit']:.3f} | {cell['exit_fraction']:.3f} | {cell['ideal_speed_up']:.1f}x | "
            f"{ratio['run']:.2f}x " + "".join(f"| {ratio[f'stream, {count} slots']:.2f}x " for count in slots)
            + f"| {ratio[best] / cell['ideal_speed_up']:.2f} | {ratio['one sample at a time']:.2f}x |"
        )
    targets = [cell for cell in document["cells"] if cell["loss"] == "spikemax_g"]
    lines.append("")
    for cell in targets:
        ratio = cell["ratio_to_full_window"]
        target_slots = 128 if 128 in slots else max(slots)  # the targets are stated at 128 slots
        name = f"stream, {target_slots} slots"
        stream_ratio, (low, high) = ratio[name], cell["ratio_interquartile_range"][name]
        share = stream_ratio / cell["ideal_speed_up"]
        run_low, run_high = cell["ratio_interquartile_range"]["run"]
        lines.append(
            f"- {cell['framework']}, spikemax_g: `stream` ({target_slots} slots) {stream_ratio:.2f}x, interquartile "
            f"range {low:.2f}x to {high:.2f}x ({'met' if stream_ratio >= 6 else 'missed'}: target >= 6x), "
            f"{share:.3f} of the ideal, interquartile range {low / cell['ideal_speed_up']:.3f} to "
            f"{high / cell['ideal_speed_up']:.3f} ({'met' if share >= 0.75 else 'missed'}: target >= 0.75), "
            f"{cell['network_calls'].get(name, 'n/a')} network calls for {cell['sample_steps'].get(name, 'n/a')} "
            f"sample-steps (full window: {cell['network_calls']['full window']} calls); `run` batched "
            f"{ratio['run']:.2f}x, interquartile range {run_low:.2f}x to {run_high:.2f}x "
            f"({'met' if ratio['run'] >= 1.0 else 'missed'}: target >= 1.0x)."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--slots", type=lambda text: [int(value) for value in text.split(",")], default=[32, 128, 512])
    parser.add_argument("--single", type=int, default=359, help="samples timed one at a time")
    parser.add_argument("--epochs", type=int, default=None, help="default: the committed default run's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frameworks", default="snntorch,norse")
    parser.add_argument("--losses", default="spikemax_g,spikemax_s,ce_count,mse_count")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", type=Path, default=None)
    arguments = parser.parse_args(argv)
    if arguments.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    torch.set_num_threads(arguments.threads)
    bench = _bench()
    provenance, load_dataset = bench[0], bench[1]
    committed = json.loads(DEFAULT_RESULTS.read_text(encoding="utf-8"))
    arguments.epochs = arguments.epochs or committed["config"]["epochs"]
    dataset = load_dataset(committed["config"]["dataset"], seed=0)
    records = {(record["framework"], record["loss"]): record for record in committed["records"]}
    cells = []
    for framework in arguments.frameworks.split(","):
        for loss in arguments.losses.split(","):
            cell = measure_cell(framework, loss, records[framework, loss], dataset, arguments, bench)
            print(f"{framework:9s} {loss:11s} exit fraction {cell['exit_fraction']:.3f}  "
                  + "  ".join(f"{name} {value:.2f}x" for name, value in cell["ratio_to_full_window"].items()),
                  flush=True)
            cells.append(cell)
    document = {
        "benchmark": "early_exit_throughput",
        "config": {key: value for key, value in vars(arguments).items() if key != "out"},
        "provenance": {
            "cpu": provenance.cpu_name(),
            "device": arguments.device,
            "device_name": torch.cuda.get_device_name() if arguments.device == "cuda" else None,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "git": provenance.git_commit(),
            "packages": provenance.package_versions(),
        },
        "cells": cells,
    }
    table = render(document)
    print(table)
    if arguments.out is not None:
        arguments.out.mkdir(parents=True, exist_ok=True)
        (arguments.out / "results.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        (arguments.out / "results.md").write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
