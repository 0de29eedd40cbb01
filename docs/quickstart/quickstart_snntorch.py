import snntorch.functional as SF
import spikemax_snntorch  # noqa: F401  (registers SF.spikemax_g_loss, SF.spikemax_s_loss, ...)
import torch

spk_out = (torch.rand(100, 32, 10) < 0.1).float().requires_grad_()  # stands for torch.stack of a net's spikes
targets = torch.randint(0, 10, (32,))

loss_fn = SF.spikemax_g_loss()  # sliding window: SF.spikemax_s_loss(window=10)
loss = loss_fn(spk_out, targets)
loss.backward()
print(f"loss {loss.item():.3f}, accuracy {SF.accuracy_rate(spk_out, targets):.2f}")
print("time to decision", SF.time_to_decision(spk_out)[:8])
