"""PyTorch side of `bench/compare.ts models`: training-mode forward + backward (mean CE, all weights) of one
architecture at one batch size, in a fresh process so its peak RSS is its own. Prints one JSON line.

  /work/pyenv/bin/python bench/reference/fwdbwd.py --arch wrn-34-10 --batch 32 --iters 2 [--threads 2]
"""
import argparse
import json
import time

from common import build, peak_rss_gb, require_torch

require_torch()
import torch  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--arch", default="wrn-34-10")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = build(a.arch).train()
params = [q for q in model.parameters() if q.requires_grad]
x = torch.rand(a.batch, 3, 32, 32)
y = torch.randint(0, 10, (a.batch,))


def step():
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.item()


step()  # warm-up
t0 = time.perf_counter()
for _ in range(a.iters):
    step()
sec = (time.perf_counter() - t0) / a.iters
print(json.dumps({"arch": a.arch, "batch": a.batch, "sec": sec, "peakRssGb": peak_rss_gb(), "threads": torch.get_num_threads()}))
