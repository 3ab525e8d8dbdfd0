"""Shared by the PyTorch reference benchmarks: the torch guard, the networks, the weight reader.

Run by hand with /work/pyenv/bin/python (or any Python with torch); never needed by npm test or CI. Each script
prints one JSON line on stdout, which bench/compare.ts reads, so ours and PyTorch's run back to back.
"""
import json
import resource
import sys


def require_torch():
    """Exits 0 with a message when torch is not importable (the comparison is then skipped, not failed)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print(json.dumps({"skipped": "torch is not importable"}))
        sys.exit(0)


def peak_rss_gb():
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def build(arch, num_classes=10):
    """The architectures of our zoo, written as the PyTorch references define them (TRADES/AWP WideResNet,
    a conv-BN-ReLU small CNN equal to ours layer for layer)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        # Pre-activation basic block; the 1x1 shortcut reads the activated input when the width changes.
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(cin)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.shortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

        def forward(self, x):
            a = F.relu(self.bn1(x))
            out = self.conv2(F.relu(self.bn2(self.conv1(a))))
            return out + (x if self.shortcut is None else self.shortcut(a))

    class WideResNet(nn.Module):
        def __init__(self, depth, widen):
            super().__init__()
            n = (depth - 4) // 6
            w = [16, 16 * widen, 32 * widen, 64 * widen]
            self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
            blocks = []
            for g in range(3):
                for i in range(n):
                    blocks.append(Block(w[g] if i == 0 else w[g + 1], w[g + 1], 2 if (i == 0 and g > 0) else 1))
            self.blocks = nn.Sequential(*blocks)
            self.bn = nn.BatchNorm2d(w[3])
            self.fc = nn.Linear(w[3], num_classes)

        def forward(self, x):
            x = F.relu(self.bn(self.blocks(self.conv1(x))))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    class SmallCNN(nn.Module):
        # Ours (src/models/archs.ts): three conv3x3-BN-ReLU stages (16, 32, 64 channels; strides 1, 2, 2), GAP, linear.
        def __init__(self):
            super().__init__()
            chans = [3, 16, 32, 64]
            for i in range(3):
                setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, 1 if i == 0 else 2, 1, bias=False))
                setattr(self, f"bn{i + 1}", nn.BatchNorm2d(chans[i + 1]))
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            for i in range(3):
                x = F.relu(getattr(self, f"bn{i + 1}")(getattr(self, f"conv{i + 1}")(x)))
            return self.fc(x.mean(dim=(2, 3)))

    if arch == "wrn-34-10":
        return WideResNet(34, 10)
    if arch == "wrn-28-10":
        return WideResNet(28, 10)
    if arch == "small-cnn":
        return SmallCNN()
    raise SystemExit(f"--arch: expected wrn-34-10|wrn-28-10|small-cnn, got {arch!r}")


def load_small_cnn(path):
    """A SmallCNN with the weights of our small-cnn (tfjs layout) read from a safetensors file written by
    bench/compare.ts, plus the images (NHWC -> NCHW) and labels stored beside them."""
    import torch
    from safetensors.numpy import load_file

    t = load_file(path)
    model = build("small-cnn", int(t["fc/bias"].shape[0]))
    state = {}
    for i in range(1, 4):
        state[f"conv{i}.weight"] = t[f"conv{i}/kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        for ours, theirs in [("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var")]:
            state[f"bn{i}.{theirs}"] = t[f"bn{i}/{ours}"]
    state["fc.weight"] = t["fc/kernel"].T
    state["fc.bias"] = t["fc/bias"]
    full = model.state_dict()
    for k, v in state.items():
        full[k] = torch.from_numpy(v.copy())
    model.load_state_dict(full)
    model.eval()
    x = torch.from_numpy(t["x"].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(t["y"].astype("int64"))
    return model, x, y
