//! Throughput of the FDA translation (images/s) and the FFT floors it is measured against.
//! Run through `scripts/bench/fda.sh` (which also times the numpy and torch.fft references on the
//! same machine and thread count), or alone:
//!
//! ```text
//! cargo run --release -p uda-fda --example bench_fda -- --threads 2 --height 512 --width 1024
//! ```
//!
//! Prints `RESULT <name> <threads> <images/s by wall clock> <images per CPU-second>` lines:
//! * `rust_<prec>_translate`: one translation with the style amplitude precomputed (the s→t
//!   case, where each target's amplitude is reused for ~8 source images).
//! * `rust_<prec>_translate_with_style`: amplitude of a fresh style image + translation (the t→s
//!   case, where partners are mostly distinct).
//! * `fft2_<prec>_floor`: a full (unpruned) 2-D real FFT forward + inverse per channel
//!   (realfft rows, transpose, rustfft columns): the floor of any implementation that transforms
//!   whole spectra, i.e. the "one forward and one inverse transform" cost.
//! * `rows_<prec>_floor`: only the row real FFTs forward + inverse per channel, row by row in
//!   cache: the floor of the pruned transform used here (its column work is `bw+1` columns
//!   instead of `W/2+1`, and it keeps only `bw+1` coefficients per row).

use rayon::prelude::*;
use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use realfft::num_traits::Zero;
use rustfft::FftPlanner;
use std::time::Instant;
use uda_fda::{Fda, Real, Window};

struct Args {
    height: usize,
    width: usize,
    beta: f64,
    window: Window,
    threads: usize,
    images: usize,
    seconds: f64,
    precision: String,
    /// `all`, `translate` (skip the floors) or `floors`.
    only: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        height: 512,
        width: 1024,
        beta: 0.01,
        window: Window::Square,
        threads: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        images: 16,
        seconds: 3.0,
        precision: "both".into(),
        only: "all".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let bad = |e: &dyn std::fmt::Display| -> ! { panic!("{flag} {value}: {e}") };
        match flag.as_str() {
            "--height" => a.height = value.parse().unwrap_or_else(|e| bad(&e)),
            "--width" => a.width = value.parse().unwrap_or_else(|e| bad(&e)),
            "--beta" => a.beta = value.parse().unwrap_or_else(|e| bad(&e)),
            "--window" => a.window = value.parse().unwrap_or_else(|e| bad(&e)),
            "--threads" => a.threads = value.parse().unwrap_or_else(|e| bad(&e)),
            "--images" => a.images = value.parse().unwrap_or_else(|e| bad(&e)),
            "--seconds" => a.seconds = value.parse().unwrap_or_else(|e| bad(&e)),
            "--precision" => a.precision = value.clone(),
            "--only" => a.only = value.clone(),
            _ => panic!("unknown flag {flag}; see the doc comment of examples/bench_fda.rs"),
        }
    }
    a
}

fn random_images(count: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut s = (seed + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 56) as u8
                })
                .collect()
        })
        .collect()
}

/// CPU time of this process (all threads), from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Images/s of `batch` (which processes `per_batch` images), repeated for about `seconds`:
/// by wall clock, and per CPU-second (what the work costs even when other processes compete
/// for the cores, as on a shared build machine).
fn throughput(seconds: f64, per_batch: usize, mut batch: impl FnMut()) -> (f64, f64) {
    batch(); // warm-up: plans, pools, page faults
    let (start, cpu0) = (Instant::now(), cpu_seconds());
    let mut done = 0;
    while start.elapsed().as_secs_f64() < seconds || done == 0 {
        batch();
        done += per_batch;
    }
    let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    (done as f64 / wall, done as f64 / cpu.max(1e-3))
}

fn report(name: &str, threads: usize, (wall, cpu): (f64, f64)) {
    println!("RESULT {name} {threads} {wall:.3} {cpu:.3}");
}

fn bench<T: Real>(args: &Args, name: &str, sources: &[Vec<u8>], targets: &[Vec<u8>]) {
    let (h, w) = (args.height, args.width);
    let fda = Fda::<T>::new(h, w, 3, args.beta, args.window).expect("valid benchmark parameters");
    let styles: Vec<_> = targets
        .iter()
        .map(|t| fda.amplitude(t).expect("sized image"))
        .collect();
    let mut outs: Vec<Vec<u8>> = sources.iter().map(|s| vec![0u8; s.len()]).collect();
    if args.only != "floors" {
        translate_rates(args, name, &fda, sources, targets, &styles, &mut outs);
    }
    if args.only != "translate" {
        floors::<T>(args, name, sources);
    }
}

fn translate_rates<T: Real>(
    args: &Args,
    name: &str,
    fda: &Fda<T>,
    sources: &[Vec<u8>],
    targets: &[Vec<u8>],
    styles: &[uda_fda::Amplitude<T>],
    outs: &mut [Vec<u8>],
) {
    let n = sources.len();
    let rate = throughput(args.seconds, n, || {
        outs.par_iter_mut().enumerate().for_each(|(i, out)| {
            fda.translate(&sources[i], &styles[i % styles.len()], out)
                .expect("sized buffers");
        });
    });
    report(&format!("rust_{name}_translate"), args.threads, rate);
    let rate = throughput(args.seconds, n, || {
        outs.par_iter_mut().enumerate().for_each(|(i, out)| {
            let style = fda
                .amplitude(&targets[i % targets.len()])
                .expect("sized image");
            fda.translate(&sources[i], &style, out)
                .expect("sized buffers");
        });
    });
    report(
        &format!("rust_{name}_translate_with_style"),
        args.threads,
        rate,
    );
}

fn floors<T: Real>(args: &Args, name: &str, sources: &[Vec<u8>]) {
    let (h, w, n) = (args.height, args.width, sources.len());

    // Floors, per image = 3 channels, parallel over (image, channel) planes.
    let mut planner = RealFftPlanner::<T>::new();
    let (r2c, c2r) = (planner.plan_fft_forward(w), planner.plan_fft_inverse(w));
    let mut cplanner = FftPlanner::<T>::new();
    let (cf, ci) = (cplanner.plan_fft_forward(h), cplanner.plan_fft_inverse(h));
    let wc = w / 2 + 1;
    let planes: Vec<Vec<T>> = sources
        .iter()
        .flat_map(|s| {
            (0..3).map(move |c| {
                s.iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| T::from_u8(v).unwrap())
                    .collect()
            })
        })
        .collect();
    let row_pass =
        |plane: &[T], spec: &mut [Complex<T>], input: &mut [T], scratch: &mut [Complex<T>]| {
            for (row, out) in plane.chunks(w).zip(spec.chunks_mut(wc)) {
                input.copy_from_slice(row);
                r2c.process_with_scratch(input, out, scratch).unwrap();
            }
        };
    let row_inverse = |spec: &mut [Complex<T>], output: &mut [T], scratch: &mut [Complex<T>]| {
        for row in spec.chunks_mut(wc) {
            row[0].im = T::zero();
            if w % 2 == 0 {
                row[wc - 1].im = T::zero();
            }
            c2r.process_with_scratch(row, output, scratch).unwrap();
        }
    };
    let scratch_len = r2c
        .get_scratch_len()
        .max(c2r.get_scratch_len())
        .max(cf.get_inplace_scratch_len() * 4);
    // One set of buffers per plane, allocated before timing (the floors must not pay page faults).
    let mut bufs: Vec<_> = planes
        .iter()
        .map(|_| {
            (
                vec![Complex::<T>::zero(); h * wc],
                vec![Complex::<T>::zero(); h * wc],
                vec![T::zero(); w],
                vec![Complex::<T>::zero(); scratch_len],
            )
        })
        .collect();

    let rate = throughput(args.seconds, n, || {
        bufs.par_iter_mut()
            .zip(&planes)
            .for_each(|((spec, trans, line, scratch), plane)| {
                row_pass(plane, spec, line, scratch);
                transpose(spec, trans, h, wc);
                for col in trans.chunks_mut(h) {
                    cf.process_with_scratch(col, scratch);
                }
                for col in trans.chunks_mut(h) {
                    ci.process_with_scratch(col, scratch);
                }
                transpose(trans, spec, wc, h);
                row_inverse(spec, line, scratch);
            });
    });
    report(&format!("fft2_{name}_floor"), args.threads, rate);
    let rate = throughput(args.seconds, n, || {
        bufs.par_iter_mut()
            .zip(&planes)
            .for_each(|((spec, _, line, scratch), plane)| {
                // Row by row through one cache-resident spectrum row, as the pruned transform
                // does (it keeps only the window's coefficients of each row).
                let spec_row = &mut spec[..wc];
                for row in plane.chunks(w) {
                    line.copy_from_slice(row);
                    r2c.process_with_scratch(line, spec_row, scratch).unwrap();
                    spec_row[0].im = T::zero();
                    if w % 2 == 0 {
                        spec_row[wc - 1].im = T::zero();
                    }
                    c2r.process_with_scratch(spec_row, line, scratch).unwrap();
                }
            });
    });
    report(&format!("rows_{name}_floor"), args.threads, rate);
}

/// `src` is `rows × cols` row-major; `dst` becomes `cols × rows`. Blocked for cache use.
fn transpose<T: Copy>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

fn main() {
    let args = parse_args();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .expect("first rayon pool");
    let len = args.height * args.width * 3;
    let sources = random_images(args.images, len, 1);
    let targets = random_images(args.images.div_ceil(4).max(1), len, 1000);
    println!(
        "# {}x{} RGB (H×W), beta {}, {} window, {} rayon threads, {} images per batch",
        args.height, args.width, args.beta, args.window, args.threads, args.images
    );
    if matches!(args.precision.as_str(), "f64" | "both") {
        bench::<f64>(&args, "f64", &sources, &targets);
    }
    if matches!(args.precision.as_str(), "f32" | "both") {
        bench::<f32>(&args, "f32", &sources, &targets);
    }
}
