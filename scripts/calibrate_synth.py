#!/usr/bin/env python3
"""Calibrate the synthetic benchmark (stage `synth-scenes`, crate `uda-synth`).

Trains a small fully-convolutional net (~80k params, sized for a shared 2-core CPU) on a generated dataset and reports
target-val mIoU for the baselines the benchmark must separate:

  source    source-only (GTA5-layout images, fixed mean/std)
  oracle    trained on the labelled target train split (upper bound)
  fda       FDA (Yang & Soatto 2020), numpy spectral transfer with beta=0.01 on raw 0..255 images
            before normalisation; like the pipeline's fda-translate-cache stage, each source image
            is translated once per style (--fda-styles random target-train images), rounded to
            8 bits, and training samples from that cache
  meanstd   per-image, per-channel mean/std normalisation in training and test (trivial)
  hist      source images histogram-matched per channel to the pooled target-train histogram
            (trivial, uses target statistics like FDA but globally)

Usage (CPU, 2 threads; the dataset folders come from the stage):
  target/debug/synth-scenes --out /tmp/synth0 --param seed=0
  target/debug/synth-scenes --out /tmp/synth1 --param seed=1
  .venv/bin/python scripts/calibrate_synth.py /tmp/synth0 /tmp/synth1 \
      --iters 600 --methods source,fda,meanstd,oracle --json /tmp/calib.json

Not part of the pipeline: a tool for choosing the generator's default shift strengths.
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
from PIL import Image

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 19
# Cityscapes label id -> train id (the 19 evaluated classes; everything else 255).
LABEL_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole", "light", "sign", "veg", "terrain",
         "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
LUT = np.full(256, 255, np.uint8)
for t, l in enumerate(LABEL_IDS):
    LUT[l] = t


def load_pairs(images, labels):
    x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images])
    y = np.stack([LUT[np.asarray(Image.open(p))] for p in labels])
    return x, y


def load_dataset(root):
    gta_img = sorted(glob.glob(os.path.join(root, "gta5/images/*.png")))
    gta_lbl = [p.replace("/images/", "/labels/") for p in gta_img]
    out = {"source": load_pairs(gta_img, gta_lbl)}
    for split in ["train", "val"]:
        imgs = sorted(glob.glob(os.path.join(root, f"cityscapes/leftImg8bit/{split}/*/*_leftImg8bit.png")))
        lbls = [p.replace("/leftImg8bit/", "/gtFine/").replace("_leftImg8bit.png", "_gtFine_labelIds.png") for p in imgs]
        out[split] = load_pairs(imgs, lbls)
    if min(len(v[0]) for v in out.values()) == 0:
        sys.exit(f"{root}: no images found; is this a synth-scenes output folder?")
    return out


def fda_np(src, trg, beta):
    """Reference numpy FDA: swap the centred (2b+1)^2 low-frequency amplitude square."""
    fs = np.fft.fft2(src, axes=(0, 1))
    ft = np.fft.fft2(trg, axes=(0, 1))
    amp_s, pha_s = np.abs(fs), np.angle(fs)
    a_s = np.fft.fftshift(amp_s, axes=(0, 1))
    a_t = np.fft.fftshift(np.abs(ft), axes=(0, 1))
    h, w = src.shape[:2]
    b = int(np.floor(min(h, w) * beta))
    ch, cw = h // 2, w // 2
    a_s[ch - b:ch + b + 1, cw - b:cw + b + 1] = a_t[ch - b:ch + b + 1, cw - b:cw + b + 1]
    a_s = np.fft.ifftshift(a_s, axes=(0, 1))
    return np.real(np.fft.ifft2(a_s * np.exp(1j * pha_s), axes=(0, 1)))


def hist_match(images, target_images):
    """Per-channel mapping of each image's CDF onto the pooled target CDF."""
    out = np.empty_like(images)
    tq = [np.cumsum(np.bincount(target_images[..., c].ravel(), minlength=256)) for c in range(3)]
    tq = [q / q[-1] for q in tq]
    for i, img in enumerate(images):
        for c in range(3):
            cdf = np.cumsum(np.bincount(img[..., c].ravel(), minlength=256))
            cdf = cdf / cdf[-1]
            lut = np.searchsorted(tq[c], cdf).clip(0, 255).astype(np.uint8)
            out[i, ..., c] = lut[img[..., c]]
    return out


class Net(nn.Module):
    """Small FCN: two stride-2 convs, dilated context, 1x1 classifier, bilinear x4."""

    def __init__(self, width=48):
        super().__init__()

        def block(i, o, s=1, d=1):
            return nn.Sequential(nn.Conv2d(i, o, 3, s, d, d, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(3, 16, 2), block(16, 32, 2), block(32, width), block(width, width, d=2),
                                  block(width, width, d=4), block(width, width, d=8))
        self.head = nn.Conv2d(width, NUM_CLASSES, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        return F.interpolate(self.head(self.body(x)), size=(h, w), mode="bilinear", align_corners=False)


def normalise(x, per_image):
    """x: float N,H,W,3 in 0..255 -> N,3,H,W."""
    if per_image:
        m = x.mean(axis=(1, 2), keepdims=True)
        s = x.std(axis=(1, 2), keepdims=True) + 1.0
        x = (x - m) / s
    else:
        x = (x - 128.0) / 64.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


def train(method, data, iters, batch, crop, rng, log, fda_styles):
    src_x, src_y = data["train"] if method == "oracle" else data["source"]
    if method == "fda":
        styles = data["train"][0]
        copies = []
        for _ in range(fda_styles):
            pick = rng.integers(0, len(styles), len(src_x))
            copies.append(np.stack([fda_np(x.astype(np.float64), styles[j].astype(np.float64), 0.01)
                                    for x, j in zip(src_x, pick)]).round().clip(0, 255).astype(np.uint8))
        src_x, src_y = np.concatenate(copies), np.concatenate([src_y] * fda_styles)
    if method == "hist":
        src_x = hist_match(src_x, data["train"][0])
    per_image = method == "meanstd"
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (1 - i / iters) ** 0.9)
    n, h, w = src_x.shape[:3]
    ch, cw = crop
    t0 = time.time()
    for it in range(iters):
        idx = rng.integers(0, n, batch)
        xb = src_x[idx].astype(np.float32)
        yb = src_y[idx]
        oy, ox = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        xb, yb = xb[:, oy:oy + ch, ox:ox + cw], yb[:, oy:oy + ch, ox:ox + cw]
        if rng.random() < 0.5:
            xb, yb = xb[:, :, ::-1], yb[:, :, ::-1]
        loss = F.cross_entropy(net(normalise(xb, per_image)), torch.from_numpy(np.ascontiguousarray(yb)).long(),
                               ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (it + 1) % 200 == 0:
            log(f"    {method} it {it + 1}/{iters} loss {loss.item():.3f} ({(time.time() - t0) / (it + 1):.3f} s/it)")
    return net, per_image


@torch.no_grad()
def evaluate(net, per_image, x, y):
    net.eval()
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for i in range(0, len(x), 16):
        pred = net(normalise(x[i:i + 16].astype(np.float32), per_image)).argmax(1).numpy()
        gt = y[i:i + 16]
        m = gt != 255
        conf += np.bincount(gt[m].astype(np.int64) * NUM_CLASSES + pred[m], minlength=NUM_CLASSES ** 2).reshape(
            NUM_CLASSES, NUM_CLASSES)
    tp = np.diag(conf)
    denom = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / denom, np.nan)
    return float(np.nanmean(iou) * 100), iou


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="synth-scenes output folders (one per generator seed)")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", default="64x128", help="training crop HxW (full images are evaluated)")
    ap.add_argument("--methods", default="source,oracle,fda,meanstd")
    ap.add_argument("--fda-styles", type=int, default=2, help="FDA translations per source image")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    crop = tuple(int(v) for v in args.crop.split("x"))
    methods = args.methods.split(",")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    results = {}
    for root in args.roots:
        data = load_dataset(root)
        h, w = data["val"][0].shape[1:3]
        if crop[0] > h or crop[1] > w:
            sys.exit(f"crop {crop} larger than images {h}x{w}")
        log(f"{root}: source {len(data['source'][0])}, target train {len(data['train'][0])}, val {len(data['val'][0])}, {h}x{w}")
        results[root] = {}
        for method in methods:
            torch.manual_seed(args.seed)
            rng = np.random.default_rng(args.seed)
            t0 = time.time()
            net, per_image = train(method, data, args.iters, args.batch, crop, rng, log, args.fda_styles)
            miou, iou = evaluate(net, per_image, *data["val"])
            results[root][method] = {"miou": miou, "iou": {NAMES[c]: (None if np.isnan(v) else round(float(v) * 100, 1))
                                                          for c, v in enumerate(iou)}, "seconds": time.time() - t0}
            per_class = " ".join(f"{NAMES[c]}={v * 100:.0f}" for c, v in enumerate(iou) if not np.isnan(v))
            log(f"  {method:8s} mIoU {miou:5.1f}  ({time.time() - t0:.0f} s)  {per_class}")
    print("| method | " + " | ".join(os.path.basename(r.rstrip('/')) for r in args.roots) + " | mean |")
    print("|---|" + "---|" * (len(args.roots) + 1))
    for method in methods:
        vals = [results[r][method]["miou"] for r in args.roots]
        print(f"| {method} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {np.mean(vals):.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
