#!/usr/bin/env python3
"""Where a training step's time goes: PyTorch's profiler over the step of
scripts/bench/step_torch.py (its own setup and step functions, so the same models, optimiser and
settings; here 1 thread by default), with the operators grouped into convolution, autocast casts,
elementwise, normalisation and the rest, as shares of the self CPU time, and the optimiser step
(profiled on its own, so none of its ops is counted twice). The Rust step runs the same libtorch
kernels at the same speed (step.sh: within about 12 %), so this profile says what bounds both.

    .venv/bin/python scripts/bench/profile_step.py --backbone fcn8s-vgg16 [--height 128 --width 256]
        [--batch 1] [--threads 1] [--precision fp32|bf16|fp16] [--channels-last false|true]
        [--optimizer sgd|adam] [--iters 3] [--top 12]

Prints one line per group (`GROUP <name> <share %> <ms per step>`) and the top operators.
"""

import argparse
import collections
import os
import sys

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import step_torch  # noqa: E402

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
    step_torch.add_args(ap)
    ap.set_defaults(threads=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    model, opt, x, labels, dev = step_torch.setup(a)

    def forward_backward():
        step_torch.forward_backward(model, opt, x, labels, a, dev)

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
