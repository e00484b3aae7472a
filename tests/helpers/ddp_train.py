"""Run by tests/test_train.py under torchrun: two CPU processes (gloo) train one model with DDP."""
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, sys.argv[2])
from test_train import TinyTagger  # noqa: E402

from wsss.data import build_dataset  # noqa: E402
from wsss.data.transforms import TrainTransform  # noqa: E402
from wsss.train import TrainConfig, train  # noqa: E402

torch.manual_seed(0)
model = TinyTagger()
data = build_dataset("synthetic", sys.argv[1], "train_aug", transform=TrainTransform(32))
hist = train(model, data, TrainConfig(steps=4, batch_size=2, device="cpu", progress=False, log_every=2))
weights = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.zeros_like(weights) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, weights)
if dist.get_rank() == 0:
    same = all(torch.equal(gathered[0], g) for g in gathered)
    print(f"ranks={dist.get_world_size()} steps={hist[-1]['step']} weights_equal={same}")
dist.destroy_process_group()
