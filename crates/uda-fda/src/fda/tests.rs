//! The pruned transform against a direct, unpruned DFT implementation of the reference numpy
//! algorithm (full spectrum, amplitude/phase split, fftshift window, inverse, real part). The
//! numpy parity test itself is `tests/parity.rs`.

use super::*;
use realfft::num_complex::Complex64;
use std::f64::consts::TAU;

/// Deterministic pseudo-random bytes (xorshift), with some smooth structure so the low
/// frequencies are not all alike.
fn image(h: usize, w: usize, c_n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(h * w * c_n);
    for y in 0..h {
        for x in 0..w {
            for c in 0..c_n {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let smooth = 100.0 + 60.0 * ((y as f64 * 0.7 + c as f64) / h as f64 * TAU).sin()
                    - 0.3 * x as f64;
                out.push((smooth + (s % 90) as f64 - 45.0).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Direct 1-D DFT (sign −1 forward, +1 inverse, unnormalised).
fn dft(data: &[Complex64], sign: f64) -> Vec<Complex64> {
    let n = data.len();
    (0..n)
        .map(|k| {
            data.iter()
                .enumerate()
                .map(|(j, v)| {
                    let angle = sign * TAU * ((k * j) % n) as f64 / n as f64;
                    v * Complex64::new(angle.cos(), angle.sin())
                })
                .sum()
        })
        .collect()
}

fn dft2(plane: &[Complex64], h: usize, w: usize, sign: f64) -> Vec<Complex64> {
    let mut rows: Vec<Complex64> = plane.chunks(w).flat_map(|r| dft(r, sign)).collect();
    for x in 0..w {
        let col: Vec<Complex64> = (0..h).map(|y| rows[y * w + x]).collect();
        for (y, v) in dft(&col, sign).into_iter().enumerate() {
            rows[y * w + x] = v;
        }
    }
    rows
}

/// The reference algorithm, unpruned, on `HWC` bytes; returns `HWC` values before rounding.
fn reference(
    src: &[u8],
    trg: &[u8],
    h: usize,
    w: usize,
    c_n: usize,
    extent: WindowExtent,
) -> Vec<f64> {
    let in_window = |i: usize, n: usize, b: usize| i <= b || i >= n - b;
    let mut out = vec![0.0; h * w * c_n];
    for c in 0..c_n {
        let plane = |img: &[u8]| -> Vec<Complex64> {
            (0..h * w)
                .map(|p| Complex64::new(f64::from(img[p * c_n + c]), 0.0))
                .collect()
        };
        let (fs, ft) = (dft2(&plane(src), h, w, -1.0), dft2(&plane(trg), h, w, -1.0));
        let mutated: Vec<Complex64> = (0..h * w)
            .map(|p| {
                let (ky, kx) = (p / w, p % w);
                let inside =
                    in_window(ky, h, extent.half_height) && in_window(kx, w, extent.half_width);
                let amp = if inside { ft[p].norm() } else { fs[p].norm() };
                let phase = fs[p].im.atan2(fs[p].re);
                Complex64::new(amp * phase.cos(), amp * phase.sin())
            })
            .collect();
        for (p, v) in dft2(&mutated, h, w, 1.0).into_iter().enumerate() {
            out[p * c_n + c] = v.re / (h * w) as f64;
        }
    }
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn matches_unpruned_reference_for_odd_and_even_sizes() {
    let cases = [
        (8, 12, 3, 0.2, Window::Square),
        (9, 13, 3, 0.25, Window::Square),
        (7, 7, 1, 0.45, Window::Square),
        (10, 6, 2, 0.3, Window::Rect),
        (11, 16, 3, 0.2, Window::Rect),
        (12, 9, 3, 0.05, Window::Square), // b = 0: DC only
    ];
    for (i, &(h, w, c_n, beta, window)) in cases.iter().enumerate() {
        let (src, trg) = (
            image(h, w, c_n, 2 * i as u64 + 1),
            image(h, w, c_n, 2 * i as u64 + 2),
        );
        let fda = Fda::<f64>::new(h, w, c_n, beta, window).unwrap();
        let style = fda.amplitude(&trg).unwrap();
        let mut ours = vec![0.0; src.len()];
        fda.translate_real(&src, &style, &mut ours).unwrap();
        let want = reference(&src, &trg, h, w, c_n, fda.extent());
        let err = max_abs_diff(&ours, &want);
        assert!(
            err < 1e-9,
            "{h}×{w}×{c_n} β={beta} {window}: max error {err}"
        );
        // Something actually changed (the test would be vacuous otherwise).
        let moved = max_abs_diff(
            &ours,
            &src.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
        );
        assert!(
            moved > 1.0,
            "{h}×{w} β={beta}: translation changed nothing ({moved})"
        );
        // Bytes are the rounded, clipped values.
        let mut bytes = vec![0u8; src.len()];
        fda.translate(&src, &style, &mut bytes).unwrap();
        for (b, v) in bytes.iter().zip(&want) {
            assert!((f64::from(*b) - v.round().clamp(0.0, 255.0)).abs() <= 1.0);
        }
    }
}

#[test]
fn own_style_gives_back_the_image() {
    let (h, w) = (24, 40);
    let img = image(h, w, 3, 7);
    let fda = Fda::<f64>::new(h, w, 3, 0.1, Window::Rect).unwrap();
    let style = fda.amplitude(&img).unwrap();
    let mut out = vec![0u8; img.len()];
    fda.translate(&img, &style, &mut out).unwrap();
    assert_eq!(out, img);
}

#[test]
fn amplitude_window_is_hermitian_and_dc_is_the_sum() {
    let (h, w) = (10, 14);
    let img = image(h, w, 3, 3);
    let fda = Fda::<f64>::new(h, w, 3, 0.25, Window::Square).unwrap();
    let amp = fda.amplitude(&img).unwrap();
    for c in 0..3 {
        let sum: f64 = (0..h * w).map(|p| f64::from(img[p * 3 + c])).sum();
        assert!((amp.get(c, 0, 0).unwrap() - sum).abs() < 1e-9);
        for ky in -2..=2 {
            for kx in -2..=2 {
                let (a, b) = (amp.get(c, ky, kx).unwrap(), amp.get(c, -ky, -kx).unwrap());
                assert!((a - b).abs() < 1e-9);
            }
        }
    }
    assert_eq!(amp.get(0, 3, 0), None);
    assert_eq!(amp.get(3, 0, 0), None);
}

#[test]
fn f32_agrees_with_f64() {
    let (h, w) = (32, 48);
    let (src, trg) = (image(h, w, 3, 11), image(h, w, 3, 12));
    let run = |out: &mut [f64], single: bool| {
        if single {
            let fda = Fda::<f32>::new(h, w, 3, 0.09, Window::Square).unwrap();
            fda.translate_real(&src, &fda.amplitude(&trg).unwrap(), out)
                .unwrap();
        } else {
            let fda = Fda::<f64>::new(h, w, 3, 0.09, Window::Square).unwrap();
            fda.translate_real(&src, &fda.amplitude(&trg).unwrap(), out)
                .unwrap();
        }
    };
    let (mut a, mut b) = (vec![0.0; src.len()], vec![0.0; src.len()]);
    run(&mut a, false);
    run(&mut b, true);
    assert!(max_abs_diff(&a, &b) < 1e-3, "{}", max_abs_diff(&a, &b));
}

#[test]
fn wrong_sizes_are_errors_naming_the_buffer() {
    let fda = Fda::<f64>::new(8, 8, 3, 0.2, Window::Square).unwrap();
    let err = fda.amplitude(&[0u8; 10]).unwrap_err().to_string();
    assert!(
        err.contains("style image") && err.contains("192 bytes"),
        "{err}"
    );
    let style = fda.amplitude(&[0u8; 192]).unwrap();
    let err = fda
        .translate(&[0u8; 192], &style, &mut [0u8; 191])
        .unwrap_err()
        .to_string();
    assert!(err.contains("output buffer"), "{err}");
    let other = Fda::<f64>::new(8, 9, 3, 0.2, Window::Square).unwrap();
    let other_style = other.amplitude(&[0u8; 216]).unwrap();
    let err = fda
        .translate(&[0u8; 192], &other_style, &mut [0u8; 192])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("style amplitude") && err.contains("8×9×3"),
        "{err}"
    );
    let err = Fda::<f64>::new(8, 8, 0, 0.2, Window::Square)
        .unwrap_err()
        .to_string();
    assert!(err.contains("channels"), "{err}");
}

#[test]
fn all_black_images_translate_without_nan() {
    // F = 0 everywhere but DC: numpy's angle(0) = 0 path; the result must stay finite.
    let (h, w) = (6, 8);
    let black = vec![0u8; h * w * 3];
    let grey = vec![128u8; h * w * 3];
    let fda = Fda::<f64>::new(h, w, 3, 0.3, Window::Square).unwrap();
    let mut out = vec![0.0; black.len()];
    fda.translate_real(&black, &fda.amplitude(&grey).unwrap(), &mut out)
        .unwrap();
    assert!(out.iter().all(|v| (v - 128.0).abs() < 1e-9), "{out:?}");
}
