"""Tutorial: train a small sinabs network with SpikeMax (``sinabs.SpikeMaxGLoss``), then exit early.

Run it with ``python docs/tutorials/code/sinabs_spikemax.py`` (a few seconds on a CPU).
"""

import sinabs
import sinabs.layers as sl
import spikemax_sinabs  # the import adds SpikeMaxGLoss, SpikeMaxSLoss, MSECountLoss to sinabs
import torch
from synthetic_data import NUM_CLASSES, NUM_INPUTS, NUM_STEPS, make_spike_data
from torch import nn

from spikemax_plugins import early_exit, metrics


def batch_first_data(num_samples: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets = make_spike_data(num_samples, generator)
    return inputs.transpose(0, 1), targets  # sinabs reads [B, T, ...]


def main(epochs: int = 6, batch_size: int = 32, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = batch_first_data(128, generator)
    calibration_inputs, calibration_targets = batch_first_data(256, generator)
    test_inputs, test_targets = batch_first_data(256, generator)

    # IAF layers with sinabs' default MultiSpike: graded spike counts, which the losses take as they are.
    net = nn.Sequential(nn.Linear(NUM_INPUTS, 32), sl.IAF(), nn.Linear(32, NUM_CLASSES), sl.IAF())
    loss_fn = sinabs.SpikeMaxGLoss()  # time_dim=1: [B, T, C]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)

    def output_spikes(inputs: torch.Tensor) -> torch.Tensor:
        sinabs.reset_states(net)  # sinabs keeps the states between calls
        return net(inputs)

    for epoch in range(epochs):
        for start in range(0, train_targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            loss = loss_fn(output_spikes(train_inputs[batch]), train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: training loss {loss.item():.3f}")

    with torch.no_grad():
        test_spikes = output_spikes(test_inputs)
        rule = early_exit.calibrate(output_spikes(calibration_inputs), calibration_targets, method="accuracy",
                                    alpha=0.01, time_dim=1)
    test_accuracy = metrics.accuracy(test_spikes, test_targets, time_dim=1).item()
    print(f"test accuracy {test_accuracy:.3f} (chance {1 / NUM_CLASSES:.2f}), "
          f"at most {int(test_spikes.max())} spikes in one step")

    # The same network stepped [B, 1, ...] at a time, until every sample has exited.
    report = spikemax_sinabs.run_early_exit(net, test_inputs, rule, target=test_targets)
    print(f"early exit: accuracy {report.accuracy:.3f} using {report.exit_fraction:.3f} of the {NUM_STEPS} steps")
    return {
        "final_loss": loss.item(),
        "test_accuracy": test_accuracy,
        "early_exit_accuracy": report.accuracy,
        "exit_fraction": report.exit_fraction,
        "chance": 1 / NUM_CLASSES,
    }


if __name__ == "__main__":
    main()
