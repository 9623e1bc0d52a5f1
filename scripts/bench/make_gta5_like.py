"""Writes N GTA5-sized (1914x1052) image/label pairs in the GTA5 layout for benchmarks.

Images are smooth gradients plus texture (so PNG compression is realistic, not white noise);
labels are palette PNGs of Cityscapes label ids, as the real GTA5 labels are.
Usage: make_gta5_like.py ROOT N
"""
import sys, os
import numpy as np
from PIL import Image

root, n = sys.argv[1], int(sys.argv[2])
h, w = 1052, 1914
os.makedirs(f"{root}/images", exist_ok=True)
os.makedirs(f"{root}/labels", exist_ok=True)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:h, 0:w]
ids = np.array([7, 8, 11, 17, 21, 23, 24, 26, 0], dtype=np.uint8)
palette = (np.arange(256 * 3) * 37 % 256).astype(np.uint8).tolist()
for i in range(n):
    base = np.stack([(xx * (i + 1)) % 256, (yy * 2) % 256, (xx + yy) % 256], -1).astype(np.int16)
    tex = rng.integers(-12, 12, size=(h, w, 1), dtype=np.int16)
    img = np.clip(base + tex, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(f"{root}/images/{i:05d}.png", compress_level=6)
    lab = ids[((yy // 97 + xx // 131 + i) % len(ids))]
    p = Image.fromarray(lab, mode="P")
    p.putpalette(palette)
    p.save(f"{root}/labels/{i:05d}.png")
