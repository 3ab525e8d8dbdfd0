"""PyTorch side of `bench/compare.ts autoattack`: the official AutoAttack (fra31/auto-attack, version
'standard') on our small CNN with our weights and images, read from the safetensors file bench/compare.ts
writes. The official code is extracted from the local mirror to a temporary directory at run time (never
committed). Prints one JSON line: time and attacked points per stage, final robust accuracy, peak RSS.

  /work/pyenv/bin/python bench/reference/autoattack_ref.py --inputs /tmp/x.safetensors --eps 0.0039 [--threads 2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import load_small_cnn, peak_rss_gb, require_torch

require_torch()
import torch  # noqa: E402

MIRROR = os.environ.get("AUTOATTACK_MIRROR", "/work/.mirror/fra31+auto-attack/repo")

p = argparse.ArgumentParser()
p.add_argument("--inputs", required=True)
p.add_argument("--eps", type=float, required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)

tmp = tempfile.mkdtemp(prefix="autoattack-")
# Only the package's .py files: the mirror may lack the example weights (large blobs), which `git archive` needs.
names = subprocess.run(["git", "-C", MIRROR, "ls-tree", "--name-only", "HEAD", "autoattack/"], check=True, capture_output=True, text=True).stdout.split()
sources = [n for n in names if n.endswith(".py")]
archive = subprocess.run(["git", "-C", MIRROR, "archive", "HEAD", "--", *sources], check=True, capture_output=True).stdout
subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
sys.path.insert(0, tmp)
from autoattack import AutoAttack  # noqa: E402

model, x, y = load_small_cnn(a.inputs)
adversary = AutoAttack(model, norm="Linf", eps=a.eps, version="standard", seed=a.seed, verbose=False, device="cpu")
stages = []


def timed(name, attack):
    orig = attack.perturb

    def perturb(xs, ys, *rest, **kw):
        t0 = time.perf_counter()
        out = orig(xs, ys, *rest, **kw)
        stages.append({"name": name, "attacked": int(xs.shape[0]), "sec": time.perf_counter() - t0})
        return out

    attack.perturb = perturb


timed("apgd-ce", adversary.apgd)
timed("apgd-t", adversary.apgd_targeted)
timed("fab-t", adversary.fab)
timed("square", adversary.square)
t0 = time.perf_counter()
with torch.no_grad():
    clean = int((model(x).argmax(1) == y).sum())
x_adv = adversary.run_standard_evaluation(x, y, bs=x.shape[0])
total = time.perf_counter() - t0
with torch.no_grad():
    robust = int((model(x_adv).argmax(1) == y).sum())
print(json.dumps({"n": int(x.shape[0]), "clean": clean, "robust": robust, "stages": stages, "sec": total, "peakRssGb": peak_rss_gb(), "threads": torch.get_num_threads()}))
