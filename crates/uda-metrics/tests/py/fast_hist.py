"""The reference evaluation code's confusion matrix (FDA's / ADVENT's `fast_hist`).

Usage: fast_hist.py GT.bin PRED.bin  (raw u8 maps of equal length)
Prints the 19x19 matrix as a JSON list of lists.
"""
import json
import sys

import numpy as np


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


gt = np.fromfile(sys.argv[1], dtype=np.uint8)
pred = np.fromfile(sys.argv[2], dtype=np.uint8)
print(json.dumps(fast_hist(gt, pred, 19).tolist()))
