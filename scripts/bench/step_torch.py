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


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_args(ap):
    """The step's settings, shared with profile_step.py (which profiles this same step)."""
    ap.add_argument("--backbone", default="enet", choices=["enet", "deeplabv2-resnet101", "fcn8s-vgg16"])
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--channels-last", default="false", choices=["false", "true"])
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"],
                    help="sgd: the Rust twin's (momentum 0.9, wd 5e-4); adam: the default pipeline's (lr 1e-3)")


def setup(a):
    """Model (train mode; frozen BN for DeepLabV2), optimiser (head at 10x lr), input and labels."""
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
    lr = 1e-3 if a.optimizer == "adam" else 2.5e-4
    groups = [
        {"params": [p for p in params if id(p) not in head], "lr": lr},
        {"params": [p for p in params if id(p) in head], "lr": 10 * lr},
    ]
    if a.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=lr)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, a.height, a.width, device=dev)
    if a.channels_last == "true":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    labels = torch.randint(0, 19, (a.batch, a.height, a.width), device=dev)
    return model, opt, x, labels, dev


def forward(model, x, a, dev):
    """The logits under autocast at `a.precision`, cast to fp32."""
    with torch.autocast(dev.type, dtype=DTYPES[a.precision], enabled=a.precision != "fp32"):
        logits, _ = model(x)
    return logits.float()


def forward_backward(model, opt, x, labels, a, dev):
    """A training step without its optimiser update: forward, CE in fp32, zero_grad, backward."""
    logits = forward(model, x, a, dev)
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    loss = F.cross_entropy(logits, labels, ignore_index=255)
    opt.zero_grad()
    loss.backward()


def main():
    ap = argparse.ArgumentParser()
    add_args(ap)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--count-flops", default="false", choices=["false", "true"])
    a = ap.parse_args()
    model, opt, x, labels, dev = setup(a)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times = []
    if a.mode == "infer":
        model.eval()
    for i in range(a.warmup + a.iters):
        sync()
        t0 = time.perf_counter()
        if a.mode == "infer":
            with torch.no_grad():
                forward(model, x, a, dev)
        else:
            forward_backward(model, opt, x, labels, a, dev)
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
            forward_backward(model, opt, x, labels, a, dev)
        extra += f" flops={fc.get_total_flops()}"
    print(
        f"RESULT torch {a.backbone} {a.height}x{a.width} {a.device} {a.precision} {a.mode} threads={a.threads} "
        f"median_ms={statistics.median(times):.2f} mean_ms={statistics.mean(times):.2f}{extra}"
    )


if __name__ == "__main__":
    main()
