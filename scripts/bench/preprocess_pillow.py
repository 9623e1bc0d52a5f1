"""Reference: Pillow decode + resize (bicubic image, nearest label) + id->trainId mapping,
as the FDA/ADVENT GTA5 loaders do. Prints images/s. Usage: preprocess_pillow.py ROOT H W"""
import sys, os, time
import numpy as np
from PIL import Image

root, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lut = np.full(256, 255, dtype=np.uint8)
for label_id, train_id in zip([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33], range(19)):
    lut[label_id] = train_id
names = sorted(os.listdir(f"{root}/images"))
t0 = time.perf_counter()
checksum = 0
for name in names:
    img = Image.open(f"{root}/images/{name}").convert("RGB").resize((w, h), Image.BICUBIC)
    lab = Image.open(f"{root}/labels/{name}").resize((w, h), Image.NEAREST)
    img_arr = np.asarray(img)
    train = lut[np.asarray(lab)]
    checksum += int(img_arr[0, 0, 0]) + int(train[0, 0])
dt = time.perf_counter() - t0
print(f"pillow: {len(names)} images in {dt:.2f} s = {len(names) / dt:.2f} images/s (checksum {checksum})")
