"""Reference timings for scripts/bench/fda.sh: the FDA numpy function and a torch.fft version.

Prints `RESULT <name> <threads> <images/s by wall clock> <images per CPU-second>` lines for
3-channel H x W float images of 0..255 values (per CPU-second: not counting time other processes
take from the cores; for the numpy worker pool it counts only the parent, so it is left at 0).
* numpy_fn: the official FDA_source_to_target_np (both FFTs every call), single-threaded per
  process (numpy's pocketfft has no threads); with --threads N > 1 it runs N worker processes,
  so the core count matches the Rust run.
* numpy_reuse: the same with the target amplitude computed once (the algorithmic trick the Rust
  stage uses), for a like-for-like view.
* torch_f64 / torch_f32: the same algorithm with torch.fft (fft2/abs/angle/fftshift/polar/ifft2)
  and torch.set_num_threads(N).
"""

import argparse
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "crates" / "uda-fda" / "tests"))
import numpy as np  # noqa: E402
from fda_np import fda_source_to_target_np, low_freq_mutate_np  # noqa: E402


def images(n, h, w, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(3, h, w), dtype=np.uint8).astype(np.float64) for _ in range(n)]


def throughput(seconds, per_batch, batch):
    """(images/s by wall clock, images per CPU-second of this process and its threads)."""
    batch()
    start, cpu0 = time.perf_counter(), time.process_time()
    done = 0
    while time.perf_counter() - start < seconds or done == 0:
        batch()
        done += per_batch
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return done / wall, done / max(cpu, 1e-3)


def report(name, threads, rates):
    print(f"RESULT {name} {threads} {rates[0]:.3f} {rates[1]:.3f}", flush=True)


def numpy_reuse(src, amp_trg, beta):
    fft_src = np.fft.fft2(src, axes=(-2, -1))
    amp_src, pha_src = np.abs(fft_src), np.angle(fft_src)
    amp = low_freq_mutate_np(amp_src, amp_trg, beta)
    return np.real(np.fft.ifft2(amp * np.exp(1j * pha_src), axes=(-2, -1)))


def torch_fda(torch, src, trg, beta):
    fs = torch.fft.fft2(src, dim=(-2, -1))
    ft = torch.fft.fft2(trg, dim=(-2, -1))
    amp_src, pha_src = torch.abs(fs), torch.angle(fs)
    a_src = torch.fft.fftshift(amp_src, dim=(-2, -1))
    a_trg = torch.fft.fftshift(torch.abs(ft), dim=(-2, -1))
    _, h, w = a_src.shape
    b = int(np.floor(min(h, w) * beta))
    ch, cw = h // 2, w // 2
    a_src[:, ch - b:ch + b + 1, cw - b:cw + b + 1] = a_trg[:, ch - b:ch + b + 1, cw - b:cw + b + 1]
    a_src = torch.fft.ifftshift(a_src, dim=(-2, -1))
    return torch.fft.ifft2(torch.polar(a_src, pha_src), dim=(-2, -1)).real


_WORK = {}


def _init_worker(h, w, beta, n):
    os.environ["OMP_NUM_THREADS"] = "1"
    _WORK["src"] = images(n, h, w, 1)
    _WORK["trg"] = images(max(1, n // 4), h, w, 2)
    _WORK["beta"] = beta


def _numpy_one(i):
    src, trg = _WORK["src"], _WORK["trg"]
    fda_source_to_target_np(src[i % len(src)], trg[i % len(trg)], _WORK["beta"])
    return i


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--beta", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--skip-torch", action="store_true")
    a = ap.parse_args()
    src = images(a.images, a.height, a.width, 1)
    trg = images(max(1, a.images // 4), a.height, a.width, 2)
    print(f"# numpy {np.__version__}, {a.height}x{a.width} RGB, beta {a.beta}, {a.threads} threads/processes")

    if a.threads == 1:
        rate = throughput(a.seconds, len(src), lambda: [fda_source_to_target_np(s, trg[i % len(trg)], a.beta) for i, s in enumerate(src)])
    else:
        with Pool(a.threads, initializer=_init_worker, initargs=(a.height, a.width, a.beta, a.images)) as pool:
            n = a.threads * 2
            rate = (throughput(a.seconds, n, lambda: pool.map(_numpy_one, range(n), chunksize=1))[0], 0.0)
    report("numpy_fn", a.threads, rate)

    amps = [np.abs(np.fft.fft2(t, axes=(-2, -1))) for t in trg]
    if a.threads == 1:
        rate = throughput(a.seconds, len(src), lambda: [numpy_reuse(s, amps[i % len(amps)], a.beta) for i, s in enumerate(src)])
        report("numpy_reuse", a.threads, rate)

    if a.skip_torch:
        return
    import torch

    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, dtype in (("torch_f64", torch.float64), ("torch_f32", torch.float32)):
        ts = [torch.from_numpy(s).to(dtype) for s in src]
        tt = [torch.from_numpy(t).to(dtype) for t in trg]
        with torch.no_grad():
            rate = throughput(a.seconds, len(ts), lambda: [torch_fda(torch, s, tt[i % len(tt)], a.beta) for i, s in enumerate(ts)])
        report(name, a.threads, rate)


if __name__ == "__main__":
    main()
