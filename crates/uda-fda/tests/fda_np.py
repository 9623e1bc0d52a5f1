"""Reference FDA (Yang & Soatto 2020) in numpy, for the parity test and the benchmark.

`fda_source_to_target_np` follows the official `FDA_source_to_target_np` / `low_freq_mutate_np`:
per channel fft2 over the last two axes, amplitude = |F|, phase = angle(F), fftshift the
amplitudes, swap the (2b+1)x(2b+1) square centred at (floor(H/2), floor(W/2)) with
b = floor(min(H, W)*beta), ifftshift, amp*exp(1j*phase), ifft2, real part. No clipping.
`rect=True` is the paper's window [-beta*H : beta*H, -beta*W : beta*W] (bh = floor(H*beta),
bw = floor(W*beta)), the same code with separate half-sizes.

Command line (parity test): fda_np.py DIR, where DIR/cases.json lists cases
{"name", "h", "w", "c", "beta", "rect"} and DIR/<name>.src / .trg hold raw HWC uint8 bytes;
writes DIR/<name>.ref (float64 HWC, little-endian) for each case.
"""

import json
import sys
from pathlib import Path

import numpy as np


def low_freq_mutate_np(amp_src, amp_trg, beta=0.1, rect=False):
    a_src = np.fft.fftshift(amp_src, axes=(-2, -1))
    a_trg = np.fft.fftshift(amp_trg, axes=(-2, -1))
    _, h, w = a_src.shape
    if rect:
        bh = int(np.floor(h * beta))
        bw = int(np.floor(w * beta))
    else:
        bh = bw = int(np.floor(np.amin((h, w)) * beta))
    c_h = int(np.floor(h / 2.0))
    c_w = int(np.floor(w / 2.0))
    h1, h2 = c_h - bh, c_h + bh + 1
    w1, w2 = c_w - bw, c_w + bw + 1
    a_src[:, h1:h2, w1:w2] = a_trg[:, h1:h2, w1:w2]
    return np.fft.ifftshift(a_src, axes=(-2, -1))


def fda_source_to_target_np(src_img, trg_img, beta=0.1, rect=False):
    """src_img, trg_img: float arrays (C, H, W) of 0..255 values. Returns float64 (C, H, W)."""
    fft_src = np.fft.fft2(src_img, axes=(-2, -1))
    fft_trg = np.fft.fft2(trg_img, axes=(-2, -1))
    amp_src, pha_src = np.abs(fft_src), np.angle(fft_src)
    amp_trg = np.abs(fft_trg)
    amp_src_ = low_freq_mutate_np(amp_src, amp_trg, beta=beta, rect=rect)
    fft_src_ = amp_src_ * np.exp(1j * pha_src)
    src_in_trg = np.fft.ifft2(fft_src_, axes=(-2, -1))
    return np.real(src_in_trg)


def main(folder):
    folder = Path(folder)
    cases = json.loads((folder / "cases.json").read_text())
    for case in cases:
        h, w, c = case["h"], case["w"], case["c"]

        def load(ext):
            raw = np.fromfile(folder / f"{case['name']}.{ext}", dtype=np.uint8)
            return raw.reshape(h, w, c).transpose(2, 0, 1).astype(np.float64)

        out = fda_source_to_target_np(load("src"), load("trg"), case["beta"], case["rect"])
        out.transpose(1, 2, 0).astype("<f8").tofile(folder / f"{case['name']}.ref")


if __name__ == "__main__":
    main(sys.argv[1])
