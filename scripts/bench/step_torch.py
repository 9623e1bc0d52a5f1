#!/usr/bin/env python3
"""One training step (forward, cross-entropy, backward, SGD with momentum), or with `--mode
infer` one inference forward pass (eval mode, `torch.no_grad`), in PyTorch: the reference side of
scripts/bench/step.sh. Same model definitions as the parity tests
(crates/uda-models/tests/py/reference_models.py), same settings as the Rust twin
(crates/uda-models/examples/step_bench.rs): ModelConfig::paper (19 classes, frozen BN for
DeepLabV2), lr 2.5e-4 with the head at 10x, momentum 0.9, weight decay 5e-4, batch 1, DeepLab
logits upsampled bilinearly (align_corners=True, as FDA) to the label size, ignore index 255.

    step_torch.py --backbone enet --height 128 --width 256 [--iters 10 --warmup 2 --threads 2 --device cpu]

Prints `RESULT torch <backbone> <H>x<W> <device> threads=<T> median_ms=<m> mean_ms=<a>`.
"""

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
# Beside this script (a GPU bundle) or in the repository.
sys.path[:0] = [here, os.path.join(here, "..", "..", "crates", "uda-models", "tests", "py")]
import reference_models as rm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="enet", choices=["enet", "deeplabv2-resnet101", "fcn8s-vgg16"])
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--channels-last", default="false", choices=["false", "true"])
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--count-flops", default="false", choices=["false", "true"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as FDA trains

    model = rm.build(a.backbone, 19).to(dev)
    model.train()
    if a.backbone == "deeplabv2-resnet101":
        rm.freeze_bn(model)
    head = {id(p) for p in model.head_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    lr = 2.5e-4
    opt = torch.optim.SGD(
        [
            {"params": [p for p in params if id(p) not in head], "lr": lr},
            {"params": [p for p in params if id(p) in head], "lr": 10 * lr},
        ],
        lr=lr,
        momentum=0.9,
        weight_decay=5e-4,
    )
    x = torch.randn(1, 3, a.height, a.width, device=dev)
    if a.channels_last == "true":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    labels = torch.randint(0, 19, (1, a.height, a.width), device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    times = []
    if a.mode == "infer":
        model.eval()
    for i in range(a.warmup + a.iters):
        sync()
        t0 = time.perf_counter()
        if a.mode == "infer":
            with torch.no_grad(), torch.autocast(dev.type, dtype=dtypes[a.precision], enabled=a.precision != "fp32"):
                logits, _ = model(x)
            logits = logits.float()
        else:
            with torch.autocast(dev.type, dtype=dtypes[a.precision], enabled=a.precision != "fp32"):
                logits, _ = model(x)
            logits = logits.float()
            if logits.shape[-2:] != labels.shape[-2:]:
                logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=True)
            loss = F.cross_entropy(logits, labels, ignore_index=255)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    extra = ""
    if dev.type == "cuda":
        extra += f" peak_mib={torch.cuda.max_memory_allocated(dev) / 2**20:.0f}"
    if a.count_flops == "true":
        # FLOPs of one step (forward + backward), counted by PyTorch's own flop counter.
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as fc:
            with torch.autocast(dev.type, dtype=dtypes[a.precision], enabled=a.precision != "fp32"):
                lo, _ = model(x)
            lo = lo.float()
            if lo.shape[-2:] != labels.shape[-2:]:
                lo = F.interpolate(lo, size=labels.shape[-2:], mode="bilinear", align_corners=True)
            F.cross_entropy(lo, labels, ignore_index=255).backward()
        extra += f" flops={fc.get_total_flops()}"
    print(
        f"RESULT torch {a.backbone} {a.height}x{a.width} {a.device} {a.precision} {a.mode} threads={a.threads} "
        f"median_ms={statistics.median(times):.2f} mean_ms={statistics.mean(times):.2f}{extra}"
    )


if __name__ == "__main__":
    main()
