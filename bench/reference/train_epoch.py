"""PyTorch side of `bench/compare.ts train-epoch`: the cifar10-quick IKL-AT recipe on the small CNN, on random
data of CIFAR's shape (speed only), written the way the reference code (DKL Adv-training-dkl, TRADES-AWP) does a
step: PGD-5 on KL from x + 0.001·N(0, 1) (model in eval mode, step eps/2), AWP (proxy copy, one SGD ascent step
at lr 0.01, per-kernel v = ‖W‖/‖ΔW‖·ΔW, W += 0.005·v), the IKL-AT loss in train mode (CE + α·soft-CE + β/4·wMSE
with the class-wise weights), SGD (momentum 0.9, weight decay 5e-4), AWP restore, class-weight accumulation; then
the per-epoch validation (clean + PGD-10 CE on 500 images). Times `--steps` steps and extrapolates to the epoch.
Prints one JSON line.

  /work/pyenv/bin/python bench/reference/train_epoch.py [--batch 128] [--steps 8] [--epoch-steps 79] [--threads 1]
"""
import argparse
import copy
import json
import time

from common import build, peak_rss_gb, require_torch

require_torch()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=128)
p.add_argument("--steps", type=int, default=8)
p.add_argument("--epoch-steps", type=int, default=79, help="steps per epoch (10,000-image subset / batch 128)")
p.add_argument("--val", type=int, default=500)
p.add_argument("--threads", type=int, default=0)
a = p.parse_args()
if a.threads > 0:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)

EPS, ALPHA, BETA, TEMP, GAMMA_AWP, C = 8 / 255, 3.0, 20.0, 4.0, 0.005, 10
model = build("small-cnn")
proxy = build("small-cnn")
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
class_weights = torch.full((C, C), 1.0 / C)


def ikl_at_loss(net, x, y, x_adv):
    nat, adv = net(x), net(x_adv)
    prior = class_weights[y]  # B x C, a constant
    d = nat - adv
    # sum_jk v_j v_k (d_j - d_k)^2 = 2 (sum v)(sum v d^2) - 2 (sum v d)^2, scaled by B / sum_b (sum_j v)^2
    sv = prior.sum(1)
    pair = 2 * sv * (prior * d * d).sum(1) - 2 * (prior * d).sum(1) ** 2
    wmse = BETA / 4 * x.shape[0] / (sv ** 2).sum() * pair
    soft_ce = -(F.softmax(nat.detach(), 1) * F.log_softmax(adv, 1)).sum(1)
    return F.cross_entropy(nat, y) + (ALPHA * soft_ce + wmse).mean(), nat


def attack(x, steps=5, step=EPS / 2):
    model.eval()
    with torch.no_grad():
        p_nat = F.softmax(model(x), 1)
    x_adv = x + 0.001 * torch.randn_like(x)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.kl_div(F.log_softmax(model(x_adv), 1), p_nat, reduction="sum")
        (g,) = torch.autograd.grad(loss, [x_adv])
        x_adv = torch.min(torch.max(x_adv.detach() + step * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    model.train()
    return x_adv.detach()


def train_step(x, y):
    global class_weights
    x_adv = attack(x)
    # AWP: proxy ascent, per-kernel direction, perturb.
    proxy.load_state_dict(model.state_dict())
    proxy.train()
    popt = torch.optim.SGD(proxy.parameters(), lr=0.01)
    loss, _ = ikl_at_loss(proxy, x, y, x_adv)
    popt.zero_grad()
    (-loss).backward()
    popt.step()
    diff = {}
    for (n, w), (_, wp) in zip(model.named_parameters(), proxy.named_parameters()):
        if w.dim() > 1:
            dw = wp.detach() - w.detach()
            diff[n] = w.detach().norm() / (dw.norm() + 1e-20) * dw
    with torch.no_grad():
        for n, w in model.named_parameters():
            if n in diff:
                w.add_(GAMMA_AWP * diff[n])
    loss, nat = ikl_at_loss(model, x, y, x_adv)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for n, w in model.named_parameters():
            if n in diff:
                w.sub_(GAMMA_AWP * diff[n])
        # Class-wise weights: momentum average of softmax(z / T) per class.
        probs = F.softmax(nat / TEMP, 1)
        for c in y.unique():
            class_weights[c] = 0.9 * class_weights[c] + 0.1 * probs[y == c].mean(0)
    return loss.item()


def validate(n, steps=10):
    model.eval()
    x = torch.rand(n, 3, 32, 32)
    y = torch.randint(0, C, (n,))
    correct = robust = 0
    for s in range(0, n, a.batch):
        xb, yb = x[s:s + a.batch], y[s:s + a.batch]
        x_adv = (xb + torch.empty_like(xb).uniform_(-EPS, EPS)).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(x_adv), yb), [x_adv])
            x_adv = torch.min(torch.max(x_adv.detach() + EPS / 4 * g.sign(), xb - EPS), xb + EPS).clamp(0, 1)
        with torch.no_grad():
            correct += int((model(xb).argmax(1) == yb).sum())
            robust += int((model(x_adv).argmax(1) == yb).sum())
    model.train()
    return correct, robust


x = torch.rand(a.batch, 3, 32, 32)
y = torch.arange(a.batch) % C
train_step(x, y)  # warm-up
t0 = time.perf_counter()
for _ in range(a.steps):
    train_step(x, y)
step_sec = (time.perf_counter() - t0) / a.steps
t0 = time.perf_counter()
validate(a.val)
val_sec = time.perf_counter() - t0
print(json.dumps({"stepSec": step_sec, "valSec": val_sec, "epochSec": step_sec * a.epoch_steps + val_sec, "peakRssGb": peak_rss_gb(), "threads": torch.get_num_threads()}))
