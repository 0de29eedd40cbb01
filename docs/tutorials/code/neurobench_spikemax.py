"""Tutorial: an snnTorch network trained with SpikeMax, reported through NeuroBench, with and without early exit.

Run it with ``python docs/tutorials/code/neurobench_spikemax.py`` (a few seconds on a CPU).
"""

import snntorch as snn
import snntorch.functional as SF
import snntorch.utils
import spikemax_snntorch  # noqa: F401  (the import adds SF.spikemax_g_loss to snntorch.functional)
import torch
from neurobench.benchmarks import Benchmark
from neurobench.metrics.workload import ActivationSparsity, ClassificationAccuracy, SynapticOperations
from neurobench.models import SNNTorchModel
from spikemax_neurobench import AccuracyOverTime, EarlyExitModel, ExitStep, TimeToDecision
from synthetic_data import NUM_CLASSES, NUM_INPUTS, NUM_STEPS, make_spike_data
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikemax_plugins import early_exit


def batch_first_data(num_samples: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = make_spike_data(num_samples, generator)
    return inputs.transpose(0, 1), targets  # NeuroBench's data is [B, T, ...]


def output_spikes(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The full window, stepped as NeuroBench's SNNTorchModel does: inputs [B, T, 20] -> spikes [B, T, 4]."""
    snntorch.utils.reset(net)
    return torch.stack([net(inputs[:, step])[0] for step in range(inputs.shape[1])], 1)


def main(epochs: int = 6, batch_size: int = 32, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = batch_first_data(128, generator)
    calibration_inputs, calibration_targets = batch_first_data(256, generator)
    test_inputs, test_targets = batch_first_data(256, generator)

    net = nn.Sequential(
        nn.Linear(NUM_INPUTS, 32), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(32, NUM_CLASSES), snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )
    loss_fn = SF.spikemax_g_loss(time_dim=1)  # batch-first spikes [B, T, C]
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for epoch in range(epochs):
        for start in range(0, train_targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            loss = loss_fn(output_spikes(net, train_inputs[batch]), train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: training loss {loss.item():.3f}")

    # The early-exit rule, calibrated on held-out recordings: at most 0.01 accuracy below the full window.
    with torch.no_grad():
        rule = early_exit.calibrate(output_spikes(net, calibration_inputs), calibration_targets, method="accuracy",
                                    alpha=0.01, time_dim=1)

    # NeuroBench takes metric classes and keys the results by class name.
    test_loader = DataLoader(TensorDataset(test_inputs, test_targets), batch_size=64)
    full = Benchmark(
        SNNTorchModel(net), test_loader, [], [],
        [[], [AccuracyOverTime, TimeToDecision, SynapticOperations, ActivationSparsity]],
    ).run(quiet=True)
    early = Benchmark(
        EarlyExitModel(net, rule, slots=64), test_loader, [], [],
        [[], [ClassificationAccuracy, SynapticOperations, ActivationSparsity, ExitStep]],
    ).run(quiet=True)

    test_accuracy = full["AccuracyOverTime"][-1]  # the running prediction's accuracy at the last step
    decided = full["TimeToDecision"]["mean_fraction"]
    print(f"full window: accuracy {test_accuracy:.3f} (chance {1 / NUM_CLASSES:.2f}), running prediction final "
          f"after {decided:.3f} of the {NUM_STEPS} steps, {full['SynapticOperations']['Effective_ACs']:.0f} "
          "synaptic operations per sample")
    print(f"early exit:  accuracy {early['ClassificationAccuracy']:.3f} using {early['ExitStep']['exit_fraction']:.3f} "
          f"of the steps, {early['SynapticOperations']['Effective_ACs']:.0f} synaptic operations per sample")
    return {
        "final_loss": loss.item(),
        "test_accuracy": test_accuracy,
        "accuracy_over_time": full["AccuracyOverTime"],
        "time_to_decision_fraction": decided,
        "full_window_operations": full["SynapticOperations"]["Effective_ACs"],
        "full_window_sparsity": full["ActivationSparsity"],
        "early_exit_accuracy": early["ClassificationAccuracy"],
        "exit_fraction": early["ExitStep"]["exit_fraction"],
        "early_exit_operations": early["SynapticOperations"]["Effective_ACs"],
        "early_exit_sparsity": early["ActivationSparsity"],
        "chance": 1 / NUM_CLASSES,
    }


if __name__ == "__main__":
    main()
