"""Early exit: train with the sliding-window loss, calibrate exit rules on held-out spikes, stop when decided.

Run it with ``python docs/tutorials/code/early_exit_snntorch.py`` (a few seconds on a CPU).
"""

import snntorch.functional as SF
import spikemax_snntorch  # the import adds SF.spikemax_s_loss; run_early_exit steps an snnTorch network
import torch
from snntorch_spikemax import build_network, output_spikes
from synthetic_data import NUM_STEPS, make_spike_data

from spikemax_plugins import early_exit, metrics


def train(net, inputs, targets, epochs: int = 6, batch_size: int = 32) -> None:
    loss_fn = SF.spikemax_s_loss(window=8)  # every window of 8 steps is scored: be right early, stay right
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(epochs):
        for start in range(0, targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            loss = loss_fn(output_spikes(net, inputs[:, batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def main(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = make_spike_data(256, generator)
    calibration_inputs, calibration_targets = make_spike_data(400, generator)  # held out: never the test split
    test_inputs, test_targets = make_spike_data(400, generator)
    net = build_network()
    train(net, train_inputs, train_targets)

    with torch.no_grad():
        calibration_spikes = output_spikes(net, calibration_inputs)  # recorded once, [T, B, C]
        test_spikes = output_spikes(net, test_inputs)
    full_accuracy = metrics.accuracy(test_spikes, test_targets).item()
    print(f"full window ({NUM_STEPS} steps): test accuracy {full_accuracy:.3f}")

    trade_off = {}
    for alpha in (0.0, 0.01, 0.05):  # tolerated accuracy loss on the calibration split
        rule = early_exit.calibrate(calibration_spikes, calibration_targets, method="accuracy", alpha=alpha)
        report = early_exit.evaluate(rule, test_spikes, test_targets)
        trade_off[alpha] = (report.accuracy, report.exit_fraction)
        print(f"alpha {alpha:<4}: accuracy {report.accuracy:.3f} using {report.exit_fraction:.3f} of the steps")

    conformal = early_exit.calibrate(calibration_spikes, calibration_targets, method="conformal", alpha=0.1)
    sets = early_exit.evaluate(conformal, test_spikes, test_targets)
    print(f"conformal, alpha 0.1: true class in the prediction set for {sets.coverage:.3f} of the samples "
          f"(guaranteed >= 0.9 on average), exit at {sets.exit_fraction:.3f} of the steps")

    # Online: the network is stepped only until every sample of the batch has exited.
    rule = early_exit.calibrate(calibration_spikes, calibration_targets, method="accuracy", alpha=0.01)
    # One sample, latency first: decide at every step, so the network stops right after the exit.
    online = spikemax_snntorch.run_early_exit(net, test_inputs[:, :1], rule, target=test_targets[:1], decide_every=1)
    print(f"one sample online: decided after {online.steps_simulated} of {NUM_STEPS} steps")
    return {
        "full_accuracy": full_accuracy,
        "trade_off": trade_off,
        "conformal_coverage": sets.coverage,
        "online_steps": online.steps_simulated,
        "online_exit_step": int(online.exit_step[0]),
    }


if __name__ == "__main__":
    main()
