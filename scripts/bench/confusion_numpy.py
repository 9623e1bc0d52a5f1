"""Benchmark side of the reference: FDA's / ADVENT's numpy `fast_hist` accumulating a 19x19
confusion matrix over label maps, timed per map (generation excluded).

Usage: confusion_numpy.py MAPS HEIGHT WIDTH SEED
The maps are generated in memory, one at a time, by the same hash as
crates/uda-metrics/examples/confusion_bench.rs (so both score identical data without disk):
ground truth = 64x64 blocks of one train id, 10 % of blocks 255 (ignore); prediction = the
ground-truth class, with 30 % of pixels replaced by a hashed class. Each map's `fast_hist` is
timed as the best of 3 runs (as the Rust side; the machine may be shared), once with uint8 labels
(numpy's fastest case) and once with the int64 labels FDA's `label_mapping` produces. Prints both
rates and the summed matrix (the shell script checks the two sides agree).
"""
import json
import sys
import time

import numpy as np

REPEATS = 3
C1 = np.uint64(0x9E3779B97F4A7C15)
C2 = np.uint64(0xBF58476D1CE4E5B9)
C3 = np.uint64(0x94D049BB133111EB)


def splitmix(z):
    z = z + C1
    z = (z ^ (z >> np.uint64(30))) * C2
    z = (z ^ (z >> np.uint64(27))) * C3
    return z ^ (z >> np.uint64(31))


def make_map(seed, m, h, w):
    y = np.arange(h, dtype=np.uint64)[:, None]
    x = np.arange(w, dtype=np.uint64)[None, :]
    base = np.uint64(seed) ^ (np.uint64(m) << np.uint64(32))
    blocks_per_row = np.uint64((w + 63) // 64)
    block = (y >> np.uint64(6)) * blocks_per_row + (x >> np.uint64(6))
    hb = splitmix(base ^ (block << np.uint64(1)))
    gt = np.where(hb % np.uint64(10) == 0, np.uint64(255), (hb >> np.uint64(8)) % np.uint64(19))
    class_or_fallback = np.where(gt == 255, (hb >> np.uint64(16)) % np.uint64(19), gt)
    i = y * np.uint64(w) + x
    hp = splitmix(base ^ ((i << np.uint64(1)) | np.uint64(1)))
    pred = np.where(hp % np.uint64(100) < 30, (hp >> np.uint64(8)) % np.uint64(19), class_or_fallback)
    return gt.astype(np.uint8), pred.astype(np.uint8)


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


def best_time(labels, pred):
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        counts = fast_hist(labels.flatten(), pred.flatten(), 19)
        best = min(best, time.perf_counter() - start)
    return best, counts


def main():
    maps, h, w, seed = (int(v) for v in sys.argv[1:5])
    hist = np.zeros((19, 19))
    timed_u8 = timed_i64 = 0.0
    for m in range(maps):
        label, pred = make_map(seed, m, h, w)
        t, counts = best_time(label, pred)
        timed_u8 += t
        hist += counts
        # FDA's evaluation feeds the int64 array its label_mapping returns.
        t, counts64 = best_time(label.astype(np.int64), pred)
        timed_i64 += t
        assert (counts64 == counts).all()
        if (m + 1) % 50 == 0:
            print(f"  numpy: {m + 1}/{maps} maps", file=sys.stderr, flush=True)
    print(f"numpy fast_hist, uint8 labels (1 thread): {maps} maps of {h}x{w} in {timed_u8:.3f} s = {maps / timed_u8:.2f} maps/s")
    print(f"numpy fast_hist, int64 labels as FDA passes them (1 thread): {timed_i64:.3f} s = {maps / timed_i64:.2f} maps/s")
    print("matrix: " + json.dumps(hist.astype(np.int64).tolist(), separators=(",", ":")))


if __name__ == "__main__":
    main()
