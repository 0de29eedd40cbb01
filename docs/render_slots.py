"""Draw the picture of the early-exit engine's rows over time: ``docs/img/slots_over_time.png``.

    python docs/render_slots.py           # draw it
    python docs/render_slots.py --check   # exit 1 if the committed picture is not what this draws

A small stream (40 samples, T = 30, 8 rows) goes through :func:`spikemax_plugins.early_exit.stream` and, for
comparison, through :func:`spikemax_plugins.early_exit.run` one batch of 8 at a time. The network only replays a
recording: each input carries its own sample number and step (``x[:, 0]``, ``x[:, 1]``), so the trace of which
sample sits in which row at which call is read from what the engine itself feeds the network, not re-derived.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import torch
from torch import Tensor

from spikemax_plugins import early_exit

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "img" / "slots_over_time.png"
NUM_SAMPLES, NUM_STEPS, NUM_CLASSES, SLOTS = 40, 30, 4, 8


def example() -> tuple[Tensor, early_exit.ExitRule]:
    """Output spikes ``[T, N, C]`` of samples that are clear (exit early) or ambiguous (late), and a rule."""
    generator = torch.Generator().manual_seed(7)
    target = torch.arange(NUM_SAMPLES) % NUM_CLASSES
    clarity = torch.rand(NUM_SAMPLES, generator=generator) ** 0.5  # how much the true class stands out
    rates = torch.full((NUM_SAMPLES, NUM_CLASSES), 0.15)
    rates[torch.arange(NUM_SAMPLES), target] += 0.6 * clarity + 0.2
    recording = torch.bernoulli(rates.expand(NUM_STEPS, -1, -1), generator=generator)
    # One threshold at every step: 18 % of the steps on average here, 0.975 accuracy.
    rule = early_exit.ExitRule(
        checkpoints=list(range(NUM_STEPS)),
        thresholds=[0.45] * NUM_STEPS,
        max_set_size=1,
        score="probability",
        smoothing=1.0,
        num_classes=NUM_CLASSES,
        num_steps=NUM_STEPS,
    )
    return recording, rule


class _Replay:
    """A :class:`~spikemax_plugins.early_exit.SlotNetwork` that replays ``recording`` and logs every call's rows.

    Its inputs are ``[T, N, 2]``: ``(sample, step)`` of each row, so that the log is what the engine fed it.
    """

    def __init__(self, recording: Tensor) -> None:
        self.recording = recording
        self.calls: list[list[int]] = []  # per call, the sample in each row

    def step(self, x: Tensor) -> Tensor:
        sample, step = x[:, 0].long(), x[:, 1].long()
        self.calls.append(sample.tolist())
        return self.recording[step, sample]

    def reset_rows(self, rows: Tensor) -> None:  # the replay has no state to reset
        pass

    def keep_rows(self, rows: Tensor) -> None:
        pass


def _labelled_inputs() -> Tensor:
    """``[T, N, 2]``: every sample's number and the step."""
    samples = torch.arange(NUM_SAMPLES, dtype=torch.float64).expand(NUM_STEPS, -1)
    steps = torch.arange(NUM_STEPS, dtype=torch.float64).unsqueeze(-1).expand(-1, NUM_SAMPLES)
    return torch.stack([samples, steps], -1)


def stream_trace(slots: int = SLOTS) -> tuple[list[list[int]], early_exit.ExitReport]:
    """Per call of the engine, the sample in each live row (rows in order), and the engine's report."""
    recording, rule = example()
    network = _Replay(recording)
    report = early_exit.stream(network, _labelled_inputs(), rule, slots=slots)
    return network.calls, report


def run_trace(slots: int = SLOTS) -> list[list[int]]:
    """Per call of batch-synchronous :func:`~spikemax_plugins.early_exit.run`, one batch of ``slots`` samples
    after another, the sample in each row (all rows step until the batch's last sample exits: deciding at every
    step, so that the picture shows no steps past it)."""
    recording, rule = example()
    network = _Replay(recording)
    inputs = _labelled_inputs()
    for start in range(0, NUM_SAMPLES, slots):
        early_exit.run(network.step, inputs[:, start : start + slots], rule, decide_every=1)
    return network.calls


def _grid(calls: list[list[int]], exit_step: Tensor, slots: int, batch_synchronous: bool) -> tuple[Tensor, Tensor]:
    """``(sample [slots, calls], useful bool [slots, calls])``; -1 where a row is empty."""
    grid = torch.full((slots, len(calls)), -1)
    useful = torch.zeros(slots, len(calls), dtype=torch.bool)
    steps_done = torch.zeros(NUM_SAMPLES, dtype=torch.long)
    for call, samples in enumerate(calls):
        for row, sample in enumerate(samples):
            grid[row, call] = sample
            # In a synchronous batch a row keeps stepping after its sample exited: wasted work.
            useful[row, call] = not batch_synchronous or bool(steps_done[sample] <= exit_step[sample])
            steps_done[sample] += 1
    return grid, useful


def figure():  # noqa: ANN201 (a matplotlib Figure)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    calls, report = stream_trace()
    synchronous = run_trace()
    panels = [
        (f"early_exit.run, batches of {SLOTS}: {len(synchronous)} calls", synchronous, True),
        (f"early_exit.stream, {SLOTS} slots: {len(calls)} calls", calls, False),
    ]
    width = max(len(synchronous), len(calls))
    fig = Figure(figsize=(11, 5.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True)
    palette = ListedColormap([f"C{index}" for index in range(10)])
    for axis, (title, trace, batch_synchronous) in zip(axes, panels, strict=True):
        grid, useful = _grid(trace, report.exit_step, SLOTS, batch_synchronous)
        colours = torch.full((SLOTS, width, 4), 1.0)
        rgba = torch.tensor(palette((grid % 10).numpy()), dtype=torch.float32)
        shade = torch.where(useful.unsqueeze(-1), rgba, 0.55 + 0.25 * rgba)  # wasted steps washed out
        colours[:, : grid.shape[1]] = torch.where((grid >= 0).unsqueeze(-1), shade, torch.ones(4))
        axis.imshow(colours.numpy(), aspect="auto", interpolation="nearest", extent=(0, width, SLOTS, 0))
        for row in range(SLOTS):
            for call in range(grid.shape[1]):
                starts = grid[row, call] >= 0 and (call == 0 or grid[row, call - 1] != grid[row, call])
                if starts:
                    axis.text(call + 0.15, row + 0.5, str(int(grid[row, call])), va="center", fontsize=6)
        axis.set(title=title, ylabel="row", yticks=[row + 0.5 for row in range(SLOTS)],
                 yticklabels=[str(row) for row in range(SLOTS)])  # fmt: skip
        axis.title.set_fontsize("small")
    axes[-1].set_xlabel("network call")
    fig.suptitle(
        f"Which sample is in which row at each network call ({NUM_SAMPLES} samples, T = {NUM_STEPS}). Number: the "
        "sample, where it enters a row; pale: a row stepping a sample that has already exited;\nonce no sample "
        "waits, the engine drops finished rows and the live ones close up (keep_rows), so a sample may move up",
        fontsize="small",
    )
    fig.tight_layout()
    return fig


def picture_bytes() -> bytes:
    buffer = io.BytesIO()
    figure().savefig(buffer, dpi=110, format="png", metadata={"Software": None})
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        raise SystemExit(f"usage: python docs/render_slots.py [--check], got {argv}")
    drawn = picture_bytes()
    if argv == ["--check"]:
        if not PICTURE.is_file() or PICTURE.read_bytes() != drawn:
            print(f"{PICTURE.relative_to(ROOT)} is not what docs/render_slots.py draws: run it and commit the picture")
            return 1
        return 0
    PICTURE.write_bytes(drawn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
