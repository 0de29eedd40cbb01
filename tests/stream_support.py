"""One harness for the hosts' ``stream_early_exit``: the stream must decide exactly as ``early_exit.evaluate`` on
the full recording, whatever the number of rows, the batch boundaries and the order of the samples.

A host test supplies ``stream(inputs, rule, **options)`` (its wrapper around one network) and the full recording
of that network; everything else (data, rules, the input forms, the comparisons) is shared here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from spikemax_plugins import early_exit

NUM_STEPS, NUM_SAMPLES, NUM_FEATURES, NUM_CLASSES = 12, 10, 6, 3
SLOT_COUNTS = (1, 3, NUM_SAMPLES, NUM_SAMPLES + 5)


def continuous_batching_schedule(exit_steps: list[int], slots: int) -> list[list[int]]:
    """Per network call, the samples in the live rows, simulated on its own (no engine code): before each call
    the free rows take the next waiting samples in order; after it, every sample that reached its exit step
    (``exit_steps[n] + 1`` steps done) frees its row. Rows are listed in the order samples took them."""
    waiting = list(range(len(exit_steps)))
    rows: list[list[int]] = []  # [sample, steps done]
    calls = []
    while waiting or rows:
        while waiting and len(rows) < slots:
            rows.append([waiting.pop(0), 0])
        calls.append(sorted(sample for sample, _ in rows))
        for row in rows:
            row[1] += 1
        rows = [row for row in rows if row[1] < exit_steps[row[0]] + 1]
    return calls


def make_data(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Bernoulli input spikes ``[T, B, F]`` whose rates depend on the class, and the classes ``[B]``."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,), generator=generator)
    preferred = torch.arange(NUM_FEATURES) % NUM_CLASSES == target[:, None]
    rates = torch.where(preferred, 0.6, 0.1).expand(NUM_STEPS, -1, -1)
    return torch.bernoulli(rates, generator=generator).to(dtype), target


def hand_rule(threshold: float = 0.45) -> early_exit.ExitRule:
    """A low threshold at every step, so that samples exit early, at different steps."""
    return early_exit.ExitRule(
        checkpoints=list(range(NUM_STEPS)),
        thresholds=[threshold] * NUM_STEPS,
        max_set_size=1,
        score="probability",
        smoothing=1.0,
        num_classes=NUM_CLASSES,
        num_steps=NUM_STEPS,
    )


def rules(recording: Tensor, target: Tensor) -> dict[str, early_exit.ExitRule]:
    return {
        "calibrated": early_exit.calibrate(recording, target, method="accuracy", alpha=0.2),
        "hand-made": hand_rule(),
    }


def batches(inputs: Tensor, target: Tensor, sizes: tuple[int, ...] = (3, 1, 4, 2)) -> list[tuple[Tensor, Tensor]]:
    """``(inputs [T, b, ...], target [b])`` pairs with uneven boundaries."""
    pairs, start = [], 0
    for size in sizes:
        pairs.append((inputs[:, start:start + size], target[start:start + size]))
        start += size
    assert start == inputs.shape[1]
    return pairs


def _time_first(items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    return torch.stack([sample for sample, _ in items], 1), torch.stack([label for _, label in items])


def loader(inputs: Tensor, target: Tensor, batch_size: int = 4) -> DataLoader:
    """A DataLoader over batch-first samples whose collation makes time-first batches ``(T, b, ...)``."""
    return DataLoader(TensorDataset(inputs.movedim(1, 0), target), batch_size=batch_size, collate_fn=_time_first)


def assert_same_decisions(report: early_exit.ExitReport, expected: early_exit.ExitReport) -> None:
    assert torch.equal(report.exit_step, expected.exit_step)
    assert torch.equal(report.prediction, expected.prediction)
    assert torch.equal(report.prediction_set, expected.prediction_set)
    assert report.accuracy == expected.accuracy
    assert report.coverage == expected.coverage


def assert_stream_equals_recording(
    stream: Callable[..., early_exit.ExitReport], recording: Tensor, inputs: Tensor, target: Tensor
) -> None:
    """For both rules, every slot count and every input form: the stream decides as the recording does."""
    for name, rule in rules(recording, target).items():
        expected = early_exit.evaluate(rule, recording, target)
        if name == "hand-made":  # the rule must really exit early, at different steps
            assert expected.exit_step.unique().numel() > 1, expected.exit_step
        for slots in SLOT_COUNTS:
            report = stream(inputs, rule, slots=slots, target=target)
            assert_same_decisions(report, expected)
            assert report.sample_steps_simulated == int((expected.exit_step + 1).sum())
            if name == "hand-made":
                assert report.sample_steps_simulated < NUM_SAMPLES * NUM_STEPS
        for slots in (2, NUM_SAMPLES):
            assert_same_decisions(stream(batches(inputs, target), rule, slots=slots), expected)
            assert_same_decisions(stream(loader(inputs, target), rule, slots=slots), expected)


def assert_order_does_not_matter(stream: Callable[..., early_exit.ExitReport], inputs: Tensor, target: Tensor) -> None:
    """A sample's decision does not depend on which samples used its row before it."""
    rule = hand_rule()
    base = stream(inputs, rule, slots=2, target=target)
    for seed in range(3):
        order = torch.randperm(NUM_SAMPLES, generator=torch.Generator().manual_seed(seed))
        shuffled = stream(inputs[:, order], rule, slots=2, target=target[order])
        assert torch.equal(shuffled.exit_step, base.exit_step[order])
        assert torch.equal(shuffled.prediction, base.prediction[order])
        assert torch.equal(shuffled.prediction_set, base.prediction_set[order])
    # and each sample alone decides the same
    for sample in range(0, NUM_SAMPLES, 3):
        alone = stream(inputs[:, sample:sample + 1], rule, slots=1)
        assert int(alone.exit_step) == int(base.exit_step[sample])
        assert int(alone.prediction) == int(base.prediction[sample])


def assert_core_errors_surface(stream: Callable[..., early_exit.ExitReport], inputs: Tensor, target: Tensor) -> None:
    """The core's argument checks reach the user unchanged through the host wrapper."""
    import pytest

    rule = hand_rule()
    with pytest.raises(ValueError, match="slots must be >= 1, got 0"):
        stream(inputs, rule, slots=0)
    with pytest.raises(TypeError, match="slots must be an int, got float"):
        stream(inputs, rule, slots=1.5)
    with pytest.raises(TypeError, match="rule must be an ExitRule, got dict"):
        stream(inputs, rule.to_dict(), slots=2)
    with pytest.raises(ValueError, match=f"must have the rule's T = {NUM_STEPS} steps .* got {NUM_STEPS - 1}"):
        stream(inputs[:-1], rule, slots=2)
    with pytest.raises(ValueError, match=rf"target must be \[N\] = \[{NUM_SAMPLES}\]"):
        stream(inputs, rule, slots=2, target=target[:-1])
