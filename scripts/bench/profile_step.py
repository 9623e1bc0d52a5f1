#!/usr/bin/env python3
"""Where a training step's time goes: PyTorch's profiler over the step of
scripts/bench/step_torch.py (same models, optimiser and settings), with the operators grouped into
convolution, autocast casts, elementwise, normalisation and the rest, as shares of the self CPU
time, and the optimiser step (profiled on its own, so none of its ops is counted twice). The Rust step runs the same libtorch kernels at the same speed (step.sh: within
about 12 %), so this profile says what bounds both.

    .venv/bin/python scripts/bench/profile_step.py --backbone fcn8s-vgg16 [--height 128 --width 256]
        [--batch 1] [--threads 1] [--precision fp32|bf16] [--channels-last false|true]
        [--optimizer sgd|adam] [--iters 3] [--top 12]

Prints one line per group (`GROUP <name> <share %> <ms per step>`) and the top operators.
"""

import argparse
import collections
import os
import sys

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(here, "..", "..", "crates", "uda-models", "tests", "py")]
import reference_models as rm  # noqa: E402

# Substrings of ATen operator names, tried in this order; the first match names the group.
GROUPS = [
    ("convolution", ("conv", "mkldnn_convolution", "_convolution")),
    ("casts", ("to_copy", "_to_copy", "copy_", "aten::to")),
    ("normalisation", ("batch_norm", "native_batch_norm")),
    ("matmul", ("mm", "matmul", "linear")),
    ("elementwise", ("relu", "prelu", "threshold", "add", "mul", "div", "sub", "where", "clamp", "max_pool", "max_unpool", "dropout", "cat", "fill_")),
]


def group_of(name):
    for group, keys in GROUPS:
        if any(k in name for k in keys):
            return group
    return "other"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="enet", choices=["enet", "deeplabv2-resnet101", "fcn8s-vgg16"])
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--channels-last", default="false", choices=["false", "true"])
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    model = rm.build(a.backbone, 19)
    model.train()
    if a.backbone == "deeplabv2-resnet101":
        rm.freeze_bn(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if a.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=1e-3)
    else:
        opt = torch.optim.SGD(params, lr=2.5e-4, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, a.height, a.width)
    if a.channels_last == "true":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    labels = torch.randint(0, 19, (a.batch, a.height, a.width))

    def forward_backward():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits, _ = model(x)
        logits = logits.float()
        if logits.shape[-2:] != labels.shape[-2:]:
            logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=True)
        loss = F.cross_entropy(logits, labels, ignore_index=255)
        opt.zero_grad()
        loss.backward()

    forward_backward()  # warm-up: oneDNN primitive creation, optimiser state
    opt.step()
    per_group = collections.Counter()
    events_all = collections.Counter()
    for _ in range(a.iters):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            forward_backward()
        for e in prof.key_averages():
            per_group[group_of(e.key)] += e.self_cpu_time_total
            events_all[e.key] += e.self_cpu_time_total
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            opt.step()
        for e in prof.key_averages():
            per_group["optimizer"] += e.self_cpu_time_total
            events_all[e.key + " (optimizer)"] += e.self_cpu_time_total
    total = sum(per_group.values())
    print(
        f"PROFILE {a.backbone} batch={a.batch} {a.height}x{a.width} {a.precision} "
        f"channels_last={a.channels_last} {a.optimizer} threads={a.threads}: "
        f"{total / 1e3 / a.iters:.1f} ms self CPU per step"
    )
    for g, us in per_group.most_common():
        print(f"GROUP {g:<14} {100 * us / total:5.1f} % {us / 1e3 / a.iters:9.1f} ms")
    for key, us in events_all.most_common(a.top):
        print(f"OP {key:<52} {100 * us / total:5.1f} %")


if __name__ == "__main__":
    main()
