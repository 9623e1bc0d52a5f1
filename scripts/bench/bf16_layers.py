#!/usr/bin/env python3
"""Which layers make bf16 logits differ from fp32: on the parity tests' reference model (a random
network with calibrated BatchNorm, as `bf16_autocast_logits_agree_with_fp32_for_every_backbone` in
crates/uda-models/src/tests.rs), the relative L2 error of the eval-mode logits

- under full autocast, and with one op family kept in fp32 (BatchNorm, PReLU, max-pool/unpool), or
  with every convolution's output cast back to fp32 at once (only the convolutions' own
  arithmetic in bf16), or (ENet) with its initial block, the first convolution, in fp32;
- with only one convolution's input and weight rounded to bf16 (everything else fp32), for every
  convolution; the largest are printed. This says where the rounding enters, not how trained
  weights would react to it.

    .venv/bin/python scripts/bench/bf16_layers.py [--backbone enet] [--height 64 --width 96] [--top 8] [--seed 7]
"""

import argparse
import os
import sys

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(here, "..", "..", "crates", "uda-models", "tests", "py")]
import reference_models as rm  # noqa: E402

PATCHED = (nn.BatchNorm2d, nn.PReLU, nn.MaxPool2d, nn.MaxUnpool2d, nn.Conv2d, nn.ConvTranspose2d)
ORIGINAL = {c: c.forward for c in PATCHED}


def in_fp32(cls):
    def forward(self, x, *a, **k):
        with torch.autocast("cpu", enabled=False):
            return ORIGINAL[cls](self, x.float(), *a, **k)

    return forward


def output_fp32(cls):
    def forward(self, x, *a, **k):
        return ORIGINAL[cls](self, x, *a, **k).float()

    return forward


def rel_err(out, exact):
    return ((out.float() - exact).norm() / exact.norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="enet", choices=["enet", "deeplabv2-resnet101", "fcn8s-vgg16"])
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7, help="the random network and input")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    net = rm.build(a.backbone, 19)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().max() == 0:  # FCN-8s' zero-initialised score layers
                p.copy_(torch.randn_like(p) * 0.01)
        net.train()
        for _ in range(20):  # BatchNorm statistics of the kind of input it is evaluated on
            net(torch.randn(2, 3, a.height, a.width))
    net.eval()
    x = torch.randn(2, 3, a.height, a.width)
    original_stem = rm.InitialBlock.forward

    def stem_in_fp32(self, x):
        with torch.autocast("cpu", enabled=False):
            return original_stem(self, x.float())

    variants = {
        "full autocast": [],
        "BatchNorm in fp32": [(nn.BatchNorm2d, in_fp32)],
        "PReLU in fp32": [(nn.PReLU, in_fp32)],
        "max-pool/unpool in fp32": [(nn.MaxPool2d, in_fp32), (nn.MaxUnpool2d, in_fp32)],
        "conv outputs cast to fp32": [(nn.Conv2d, output_fp32), (nn.ConvTranspose2d, output_fp32)],
    }
    if a.backbone == "enet":
        variants["initial block in fp32"] = "stem"
    with torch.no_grad():
        exact = net(x)[0]
        for name, patches in variants.items():
            for cls in PATCHED:
                cls.forward = ORIGINAL[cls]
            rm.InitialBlock.forward = stem_in_fp32 if patches == "stem" else original_stem
            for cls, make in patches if patches != "stem" else []:
                cls.forward = make(cls)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(x)[0]
            agree = (out.float().argmax(1) == exact.argmax(1)).float().mean().item()
            print(f"VARIANT {name:<28} rel_l2={rel_err(out, exact):.4f} argmax_agree={agree:.4f}")
        for cls in PATCHED:
            cls.forward = ORIGINAL[cls]
        rm.InitialBlock.forward = original_stem

        singles = []
        for name, m in net.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                continue
            weight = m.weight.data
            m.weight.data = weight.bfloat16().float()
            pre = m.register_forward_pre_hook(lambda _m, inp: tuple(t.bfloat16().float() for t in inp[:1]) + inp[1:])
            singles.append((rel_err(net(x)[0], exact), name))
            pre.remove()
            m.weight.data = weight
    singles.sort(reverse=True)
    for err, name in singles[: a.top]:
        print(f"SINGLE {name:<40} rel_l2={err:.4f}")
    print(f"SINGLE root-sum-square over {len(singles)} convolutions: {sum(e * e for e, _ in singles) ** 0.5:.4f}")


if __name__ == "__main__":
    main()
