"""The torchmetrics twins: streaming over any split equals the function on the whole, in one or two processes."""

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as multiprocessing
from hypothesis import given
from hypothesis import strategies as st

import spikemax_plugins as smx
from spikemax_plugins import early_exit, reference, streaming

from .strategies import spike_problems


def _split_points(draw, batch_size: int) -> list[int]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, batch_size - 1)), max_size=4)))
    return [0, *[cut for cut in cuts if cut < batch_size], batch_size]


def _chunks(tensor: torch.Tensor, points: list[int], dim: int):
    return [tensor.narrow(dim, start, stop - start) for start, stop in zip(points, points[1:], strict=False)]


@given(problem=spike_problems(soft_targets=False), data=st.data())
def test_streaming_equals_the_function_on_the_whole(problem, data):
    spikes, target = problem.torch_spikes(), problem.torch_target()
    points = _split_points(data.draw, spikes.shape[1])
    classes = problem.num_classes
    accuracy = streaming.SpikeAccuracy(classes)
    over_time = streaming.AccuracyOverTime(spikes.shape[0], classes)
    decision = streaming.TimeToDecision(classes)
    operations = streaming.SynapticOperations()
    fan_out = torch.arange(spikes.shape[2], dtype=torch.float64) + 1
    for spike_chunk, target_chunk in zip(_chunks(spikes, points, 1), _chunks(target, points, 0), strict=True):
        accuracy.update(spike_chunk, target_chunk)
        over_time.update(spike_chunk, target_chunk)
        decision.update(spike_chunk)
        operations.update([spike_chunk], [fan_out])
    # Independent oracle: the NumPy reference on the whole data set.
    assert accuracy.compute().item() == pytest.approx(reference.accuracy(problem.spikes, problem.target, classes))
    np.testing.assert_allclose(
        over_time.compute().numpy(), reference.accuracy_over_time(problem.spikes, problem.target, classes), atol=1e-6
    )
    steps = reference.time_to_decision(problem.spikes, classes)
    decided = steps[steps >= 0]
    summary = decision.compute()
    if len(decided):
        assert summary["mean_step"].item() == pytest.approx(decided.mean())
        assert summary["mean_fraction"].item() == pytest.approx(((decided + 1) / spikes.shape[0]).mean())
    else:
        assert math.isnan(summary["mean_step"].item()) and math.isnan(summary["mean_fraction"].item())
    assert summary["no_decision_fraction"].item() == pytest.approx(np.mean(steps < 0))
    expected_operations = reference.synaptic_operations([problem.spikes], [fan_out.numpy()]).mean()
    assert operations.compute().item() == pytest.approx(expected_operations, rel=1e-12)


@given(problem=spike_problems(soft_targets=False, max_steps=20), data=st.data())
def test_early_exit_metric_streams_like_evaluate(problem, data):
    spikes, target = problem.torch_spikes(), problem.torch_target()
    rule = early_exit.calibrate(
        spikes, target, method="accuracy", alpha=0.05, num_classes=problem.num_classes,
        score=data.draw(st.sampled_from(["probability", "margin"])),
    )
    metric = streaming.EarlyExitMetric(rule)
    points = _split_points(data.draw, spikes.shape[1])
    for spike_chunk, target_chunk in zip(_chunks(spikes, points, 1), _chunks(target, points, 0), strict=True):
        metric.update(spike_chunk, target_chunk)
    whole = early_exit.evaluate(rule, spikes, target)
    result = metric.compute()
    assert result["accuracy"].item() == pytest.approx(whole.accuracy)
    assert result["coverage"].item() == pytest.approx(whole.coverage)
    assert result["mean_exit_step"].item() == pytest.approx(whole.mean_exit_step)
    assert result["exit_fraction"].item() == pytest.approx(whole.exit_fraction)
    assert result["mean_set_size"].item() == pytest.approx(whole.prediction_set.double().sum(-1).mean().item())


def test_accuracy_over_time_refuses_another_length_and_options_are_checked_when_built():
    metric = streaming.AccuracyOverTime(num_steps=5)
    with pytest.raises(ValueError, match=r"spikes must have num_steps = 5 time steps .* got 4"):
        metric.update(torch.ones(4, 2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"num_classes must be >= 2"):
        streaming.SpikeAccuracy(num_classes=1)
    with pytest.raises(TypeError, match=r"rule must be an ExitRule"):
        streaming.EarlyExitMetric(rule={"thresholds": [0.5]})


def test_reset_starts_the_accumulation_over():
    metric = streaming.SpikeAccuracy()
    metric.update(torch.eye(3).unsqueeze(0), torch.tensor([0, 1, 1]))
    assert metric.compute().item() == pytest.approx(2 / 3)
    metric.reset()
    metric.update(torch.eye(3).unsqueeze(0), torch.tensor([0, 1, 2]))
    assert metric.compute().item() == 1.0


def _distributed_worker(rank: int, world_size: int, init_file: str, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        generator = torch.Generator().manual_seed(0)
        spikes = (torch.rand(9, 11, 4, generator=generator) < 0.3).float()
        target = torch.randint(0, 4, (11,), generator=generator)
        shard = slice(rank, None, world_size)  # uneven shards (6 and 5 samples): no padding, no duplicates
        accuracy, over_time = streaming.SpikeAccuracy(), streaming.AccuracyOverTime(9)
        decision = streaming.TimeToDecision()
        accuracy.update(spikes[:, shard], target[shard])
        over_time.update(spikes[:, shard], target[shard])
        decision.update(spikes[:, shard])
        queue.put((rank, accuracy.compute().item(), over_time.compute().tolist(),
                   {key: value.item() for key, value in decision.compute().items()}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_sync_to_the_single_process_value(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    init_file = str(tmp_path / "rendezvous")
    processes = [context.Process(target=_distributed_worker, args=(rank, 2, init_file, queue)) for rank in range(2)]
    environment = dict(os.environ)
    try:
        for process in processes:
            process.start()
        results = [queue.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
    finally:
        os.environ.clear()
        os.environ.update(environment)
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(9, 11, 4, generator=generator) < 0.3).float()
    target = torch.randint(0, 4, (11,), generator=generator)
    steps = smx.time_to_decision(spikes)
    for _, accuracy, over_time, decision in results:
        assert accuracy == pytest.approx(smx.accuracy(spikes, target).item())
        assert over_time == pytest.approx(smx.accuracy_over_time(spikes, target).tolist())
        assert decision["mean_step"] == pytest.approx(steps[steps >= 0].double().mean().item())
