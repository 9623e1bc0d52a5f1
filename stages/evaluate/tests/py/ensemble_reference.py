"""FDA's ensemble evaluation (`evaluation_multi.py` of github.com/YanchaoYang/FDA) in PyTorch and
numpy, on the members' logits that the Rust test computed with the networks themselves.

    ensemble_reference.py DIR UPSAMPLE HEIGHT WIDTH

DIR/logits.safetensors holds `m0`, `m1`, ...: each member's logits (N, 19, h, w) in member order;
DIR/labels.bin the (N, HEIGHT, WIDTH) u8 ground truth (255 = ignored). UPSAMPLE is what is resized
to the label size (bilinear, align_corners=True): `softmax` (the members' probabilities) or
`logits` (then the softmax at label size). The members are summed in order and divided by their
number (FDA weights three models by 0.3333, 0.3333, 0.3334; equal weights here).

Writes to DIR:
  pred.bin              (N, HEIGHT, WIDTH) u8 arg-max of the mean probabilities
  probs_fda.safetensors `probs`: FDA's order (softmax, mean at the output size, then resize),
                        only for UPSAMPLE=softmax
  scores.json           `hist` (19x19, FDA's fast_hist summed over images), `miou` (nanmean of
                        per_class_iu), `per_image_miou`
"""

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

torch.set_num_threads(1)
NUM_CLASSES = 19


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def per_class_iu(hist):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))


def main():
    root, upsample, height, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    tensors = load_file(f"{root}/logits.safetensors")
    members = [tensors[f"m{k}"] for k in range(len(tensors))]
    size = (height, width)

    total = None
    for logits in members:
        if upsample == "softmax":
            p = F.interpolate(F.softmax(logits, dim=1), size, mode="bilinear", align_corners=True)
        elif upsample == "logits":
            p = F.softmax(F.interpolate(logits, size, mode="bilinear", align_corners=True), dim=1)
        else:
            raise SystemExit(f"unknown upsample {upsample}")
        total = p if total is None else total + p
    mean = total / len(members)
    pred = mean.argmax(dim=1).to(torch.uint8).numpy()
    pred.tofile(f"{root}/pred.bin")

    if upsample == "softmax":
        fda = sum(F.softmax(m, dim=1) for m in members) / len(members)
        fda = F.interpolate(fda, size, mode="bilinear", align_corners=True)
        save_file({"probs": fda.contiguous()}, f"{root}/probs_fda.safetensors")

    labels = np.fromfile(f"{root}/labels.bin", dtype=np.uint8).reshape(pred.shape)
    hist = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    per_image = []
    for gt, pr in zip(labels, pred):
        h = fast_hist(gt.flatten().astype(np.int64), pr.flatten().astype(np.int64), NUM_CLASSES)
        per_image.append(float(np.nanmean(per_class_iu(h))))
        hist += h
    json.dump(
        {
            "hist": hist.tolist(),
            "miou": float(np.nanmean(per_class_iu(hist))),
            "per_image_miou": per_image,
        },
        open(f"{root}/scores.json", "w"),
    )


if __name__ == "__main__":
    main()
