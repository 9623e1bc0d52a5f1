#!/usr/bin/env bash
# FDA translation throughput: the Rust transform (uda-fda) against the FDA numpy function and a
# torch.fft version, on the same random 1024x512 RGB images, machine and thread count.
#
#   scripts/bench/fda.sh [THREADS] [BETA] [SECONDS]
#
# THREADS (default: all cores) is used for rayon, torch.set_num_threads, OMP/MKL/OpenBLAS, and
# for the number of numpy worker processes (numpy's FFT itself is single-threaded). Prints
# images/s for each and the ratios, plus the FFT floors (see crates/uda-fda/examples/bench_fda.rs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
threads="${1:-$(nproc)}"
beta="${2:-0.01}"
seconds="${3:-4}"
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "fda.sh: $py not found: run scripts/setup.sh" >&2; exit 1; }

export RAYON_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" \
  OPENBLAS_NUM_THREADS="$threads"
# numpy's FFT is pocketfft (not BLAS), so OPENBLAS_CORETYPE cannot change it; shown for the record.
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads=$threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
(cd "$root" && cargo build --quiet --release -p uda-fda --example bench_fda)
"$root/target/release/examples/bench_fda" --threads "$threads" --beta "$beta" --seconds "$seconds" | tee "$out/rust.txt"
"$py" "$root/scripts/bench/fda_ref.py" --threads "$threads" --beta "$beta" --seconds "$seconds" | tee "$out/ref.txt"

"$py" - "$out/rust.txt" "$out/ref.txt" <<'PY'
import sys
r = {}
for path in sys.argv[1:]:
    for line in open(path):
        if line.startswith("RESULT "):
            _, name, value = line.split()
            r[name] = float(value)
print("\n# images/s at 1024x512 RGB (ratio = Rust / reference)")
for ours in ("rust_f64_translate", "rust_f64_translate_with_style", "rust_f32_translate"):
    if ours not in r:
        continue
    ratios = ", ".join(f"{ref} x{r[ours] / r[ref]:.1f}" for ref in ("numpy_fn", "numpy_reuse", "torch_f64", "torch_f32") if ref in r)
    print(f"{ours:32} {r[ours]:9.1f} img/s   vs {ratios}")
for prec in ("f64", "f32"):
    full, rows, ours = r.get(f"fft2_{prec}_floor"), r.get(f"rows_{prec}_floor"), r.get(f"rust_{prec}_translate")
    if full and rows and ours:
        print(f"{prec}: full 2-D rfft fwd+inv floor {full:.1f} img/s, row-FFT floor (pruned) {rows:.1f} img/s; "
              f"translate reaches {ours / rows:.0%} of the row floor and {ours / full:.1f}x the full-FFT floor")
PY
