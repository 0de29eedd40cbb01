"""Tutorial 3: read decision latency with ``accuracy_over_time`` and ``time_to_decision``.

Trains the network of tutorial 1 twice, with the global loss ``SF.spikemax_g_loss`` and with the sliding-window
loss ``SF.spikemax_s_loss(window=5)``, then asks when each network's prediction becomes right and stays put.
Run it with ``python docs/tutorials/code/decision_latency.py``.
"""

import snntorch.functional as SF
import spikemax_snntorch  # noqa: F401  (registers SF.spikemax_g_loss, SF.accuracy_over_time, ...)
import torch
from snntorch_spikemax import build_network, output_spikes
from synthetic_data import NUM_CLASSES, NUM_STEPS, make_spike_data

import spikemax_plugins as smx


def train(loss_fn, inputs: torch.Tensor, targets: torch.Tensor, epochs: int = 4, batch_size: int = 32):
    torch.manual_seed(0)  # the same initial weights for every loss
    net = build_network()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(epochs):
        for start in range(0, targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            loss = loss_fn(output_spikes(net, inputs[:, batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net


def main(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = make_spike_data(128, generator)
    test_inputs, test_targets = make_spike_data(256, generator)
    losses = {"spikemax_g": SF.spikemax_g_loss(), "spikemax_s window 5": SF.spikemax_s_loss(window=5)}

    results = {}
    for name, loss_fn in losses.items():
        net = train(loss_fn, train_inputs, train_targets)
        with torch.no_grad():
            spk_out = output_spikes(net, test_inputs)  # [T, B, C]
        # Accuracy of the prediction from the spikes of steps 0..t, for every t: [T]
        over_time = SF.accuracy_over_time(spk_out, test_targets)
        # First step after which each sample's running prediction never changes: [B], -1 = never decided
        decided_at = SF.time_to_decision(spk_out)
        decided = decided_at >= 0
        results[name] = {
            "accuracy_over_time": over_time.tolist(),
            "final_accuracy": smx.accuracy(spk_out, test_targets).item(),
            "median_time_to_decision": decided_at[decided].median().item() if decided.any() else None,
            "undecided_fraction": 1 - decided.float().mean().item(),
            "time_to_decision": decided_at.tolist(),
        }
        steps = ", ".join(f"t={t}: {over_time[t]:.2f}" for t in (0, 1, 2, 4, 9, NUM_STEPS - 1))
        print(f"{name}: accuracy {steps}")
        print(f"{name}: median time to decision {results[name]['median_time_to_decision']} of {NUM_STEPS} steps, "
              f"{results[name]['undecided_fraction']:.1%} undecided")
    results["chance"] = 1 / NUM_CLASSES
    return results


if __name__ == "__main__":
    main()
