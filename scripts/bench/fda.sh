#!/usr/bin/env bash
# FDA translation throughput: the Rust transform (uda-fda) against the FDA numpy function and a
# torch.fft version, on the same random 1024x512 RGB images, machine and thread count.
#
#   scripts/bench/fda.sh [THREADS] [BETA] [SECONDS]
#
# Runs at 1 thread and, if THREADS (default: all cores) is more, at THREADS too. The thread count
# is used for rayon, torch.set_num_threads, OMP/MKL/OpenBLAS, and as the number of numpy worker
# processes (numpy's FFT itself is single-threaded). Prints images/s for each (by wall clock,
# and per CPU-second, which stays meaningful when other jobs share the cores), the ratios, and
# the FFT floors (see crates/uda-fda/examples/bench_fda.rs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-$(nproc)}"
beta="${2:-0.01}"
seconds="${3:-4}"
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "fda.sh: $py not found: run scripts/setup.sh" >&2; exit 1; }

# numpy's FFT is pocketfft (not BLAS), so OPENBLAS_CORETYPE cannot change it; shown for the record.
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
(cd "$root" && cargo build --quiet --release -p uda-fda --example bench_fda)
counts=1
[ "$threads" -gt 1 ] && counts="1 $threads"
for t in $counts; do
  export RAYON_NUM_THREADS="$t" OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t"
  "$root/target/release/examples/bench_fda" --threads "$t" --beta "$beta" --seconds "$seconds" | tee -a "$out/results.txt"
  "$py" "$root/scripts/bench/fda_ref.py" --threads "$t" --beta "$beta" --seconds "$seconds" | tee -a "$out/results.txt"
done

"$py" - "$out/results.txt" <<'PY'
import sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        _, name, threads, wall, cpu = line.split()
        r[(name, int(threads))] = (float(wall), float(cpu))
print("\n# images/s at 1024x512 RGB; ratio = Rust / reference (by wall clock; per CPU-second in brackets)")
for t in sorted({k[1] for k in r}):
    print(f"## {t} thread(s)")
    refs = [n for n in ("numpy_fn", "numpy_reuse", "torch_f64", "torch_f32") if (n, t) in r]
    for ours in ("rust_f64_translate", "rust_f64_translate_with_style", "rust_f32_translate", "rust_f32_translate_with_style"):
        if (ours, t) not in r:
            continue
        w, c = r[(ours, t)]
        parts = []
        for ref in refs:
            rw, rc = r[(ref, t)]
            parts.append(f"{ref} x{w / rw:.1f}" + (f" [x{c / rc:.1f}]" if rc > 0 else ""))
        print(f"  {ours:30} {w:8.1f} img/s [{c:6.1f}/CPU-s]  vs " + ", ".join(parts))
    for prec in ("f64", "f32"):
        full, rows, ours = (r.get((f"{k}_{prec}_{s}", t)) for k, s in (("fft2", "floor"), ("rows", "floor"), ("rust", "translate")))
        if full and rows and ours:
            print(f"  {prec}: floors (per CPU-s) full 2-D rfft fwd+inv {full[1]:.1f}, row FFTs only {rows[1]:.1f}; "
                  f"translate = {ours[1] / rows[1]:.0%} of the row floor, {ours[1] / full[1]:.1f}x the full-FFT floor")
PY
