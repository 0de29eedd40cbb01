import torch

import spikemax_plugins as smx

spikes = (torch.rand(100, 32, 10) < 0.1).float().requires_grad_()  # [T, B, C] output spikes, time first
target = torch.randint(0, 10, (32,))

loss = smx.spikemax_g(spikes, target)  # or smx.SpikeMaxGLoss()(spikes, target)
loss.backward()
print(f"loss {loss.item():.3f}, accuracy {smx.accuracy(spikes, target).item():.2f}")
print("accuracy over time", smx.accuracy_over_time(spikes, target)[::20])
print("time to decision", smx.time_to_decision(spikes)[:8])
