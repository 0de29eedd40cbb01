"""Tutorial: train a small SpikingJelly network with SpikeMax (``functional.spikemax_g``), then exit early.

Run it with ``python docs/tutorials/code/spikingjelly_spikemax.py`` (a few seconds on a CPU).
"""

import spikemax_spikingjelly  # the import adds spikemax_g, spikemax_s and two metrics to functional
import torch
from spikingjelly.activation_based import functional, layer, neuron
from synthetic_data import NUM_CLASSES, NUM_INPUTS, make_spike_data
from torch import nn

from spikemax_plugins import early_exit


def main(epochs: int = 6, batch_size: int = 32, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = make_spike_data(128, generator)  # [T, N, NUM_INPUTS], time first
    calibration_inputs, calibration_targets = make_spike_data(256, generator)
    test_inputs, test_targets = make_spike_data(256, generator)

    # A threshold of 0.5 (SpikingJelly's default is 1.0) makes the untrained network fire from the start.
    net = nn.Sequential(
        layer.Linear(NUM_INPUTS, 32),
        neuron.LIFNode(tau=2.0, v_threshold=0.5),
        layer.Linear(32, NUM_CLASSES),
        neuron.LIFNode(tau=2.0, v_threshold=0.5),
    )
    functional.set_step_mode(net, "m")  # multi-step: [T, N, NUM_INPUTS] -> [T, N, NUM_CLASSES]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)

    def output_spikes(inputs: torch.Tensor) -> torch.Tensor:
        functional.reset_net(net)  # SpikingJelly keeps the membrane between calls
        return net(inputs)

    for epoch in range(epochs):
        for start in range(0, train_targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            loss = functional.spikemax_g(output_spikes(train_inputs[:, batch]), train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: training loss {loss.item():.3f}")

    with torch.no_grad():
        test_spikes = output_spikes(test_inputs)
        rule = early_exit.calibrate(output_spikes(calibration_inputs), calibration_targets, method="accuracy",
                                    alpha=0.01)
    over_time = functional.accuracy_over_time(test_spikes, test_targets)
    print(f"test accuracy {over_time[-1]:.3f} (chance {1 / NUM_CLASSES:.2f}), after 5 steps {over_time[4]:.3f}")

    # Early exit steps the same network in single-step mode; its step modes come back afterwards.
    report = spikemax_spikingjelly.run_early_exit(net, test_inputs, rule, target=test_targets)
    print(f"early exit: accuracy {report.accuracy:.3f} using {report.exit_fraction:.3f} of the time steps")
    return {
        "final_loss": loss.item(),
        "test_accuracy": over_time[-1].item(),
        "early_exit_accuracy": report.accuracy,
        "exit_fraction": report.exit_fraction,
        "step_mode_after": net[1].step_mode,
        "chance": 1 / NUM_CLASSES,
    }


if __name__ == "__main__":
    main()
