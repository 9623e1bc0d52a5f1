use super::*;
use rand::Rng;

/// Eq. 4 evaluated literally, in f64, over all pixel pairs of one image pair: the reference the
/// tensor implementation must match when nothing is sampled away.
fn naive_eq4(fa: &[Vec<f64>], ya: &[i64], fk: &[Vec<f64>], yk: &[i64], tau: f64) -> Option<f64> {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let valid_keys: Vec<usize> = (0..yk.len()).filter(|&k| yk[k] != 255).collect();
    let mut total = 0.0;
    let mut anchors = 0usize;
    for p in 0..ya.len() {
        if ya[p] == 255 {
            continue;
        }
        let n_pos = valid_keys.iter().filter(|&&q| yk[q] == ya[p]).count();
        if n_pos == 0 {
            continue;
        }
        let denom: f64 = valid_keys
            .iter()
            .map(|&k| (dot(&fa[p], &fk[k]) / tau).exp())
            .sum();
        let mut s = 0.0;
        for &q in &valid_keys {
            if yk[q] == ya[p] {
                s += ((dot(&fa[p], &fk[q]) / tau).exp() / denom).ln();
            }
        }
        total += -s / n_pos as f64;
        anchors += 1;
    }
    (anchors > 0).then(|| total / anchors as f64)
}

/// Random unit features `(1, d, h, w)` as a Double tensor and as per-pixel vectors.
fn random_features(rng: &mut ChaCha8Rng, d: usize, h: usize, w: usize) -> (Tensor, Vec<Vec<f64>>) {
    let n = h * w;
    let mut pixels: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..d).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    for v in &mut pixels {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
    }
    let mut chw = vec![0f64; d * n];
    for (p, v) in pixels.iter().enumerate() {
        for (c, x) in v.iter().enumerate() {
            chw[c * n + p] = *x;
        }
    }
    let t = Tensor::from_slice(&chw).view([1, d as i64, h as i64, w as i64]);
    (t, pixels)
}

fn labels(values: &[i64], h: usize, w: usize) -> Tensor {
    Tensor::from_slice(values).view([1, h as i64, w as i64])
}

const EXACT: ContrastiveConfig = ContrastiveConfig {
    temperature: 0.1,
    max_anchors_per_class: None,
    max_keys_per_class: None,
};

fn check_against_naive(ya: &[i64], yk: &[i64], h: usize, w: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (ta, fa) = random_features(&mut rng, 8, h, w);
    let (tk, fk) = random_features(&mut rng, 8, h, w);
    let (loss, stats) =
        pixel_contrastive_loss(&ta, &labels(ya, h, w), &tk, &labels(yk, h, w), &EXACT, 7);
    let got = loss.double_value(&[]);
    match naive_eq4(&fa, ya, &fk, yk, EXACT.temperature) {
        Some(want) => {
            assert!((got - want).abs() <= 1e-5, "loss {got} vs naive {want}");
            assert_eq!(stats.images, 1);
        }
        None => {
            assert_eq!(got, 0.0, "no valid anchor must give 0");
            assert_eq!(stats.images, 0);
        }
    }
}

#[test]
fn equals_naive_eq4_on_random_labels_with_ignore_pixels() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for trial in 0..5 {
        let (h, w) = (5, 7);
        let draw = |rng: &mut ChaCha8Rng| -> Vec<i64> {
            (0..h * w)
                .map(|_| match rng.random_range(0..6) {
                    5 => 255,
                    c => c,
                })
                .collect()
        };
        let ya = draw(&mut rng);
        let yk = draw(&mut rng);
        check_against_naive(&ya, &yk, h, w, trial);
    }
}

#[test]
fn class_zero_counts_and_classes_in_one_view_only_are_skipped() {
    // Class 0 everywhere but in the corner; class 3 only among the anchors, class 4 only among
    // the keys.
    let (h, w) = (4, 4);
    let mut ya = vec![0i64; h * w];
    let mut yk = vec![0i64; h * w];
    ya[0] = 3;
    ya[1] = 3;
    yk[15] = 4;
    yk[14] = 255;
    check_against_naive(&ya, &yk, h, w, 2);
    // Class 0 alone must give a non-zero loss: class id 0 (road) is a class like any other, not
    // "no label" (a `label > 0` mask would drop it).
    let ya = vec![0i64; h * w];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (ta, _) = random_features(&mut rng, 8, h, w);
    let (tk, _) = random_features(&mut rng, 8, h, w);
    let (loss, stats) =
        pixel_contrastive_loss(&ta, &labels(&ya, h, w), &tk, &labels(&ya, h, w), &EXACT, 0);
    assert_eq!(stats.anchors, 16);
    // One class: every key is a positive, so the loss is log N − mean similarity (> 0 unless all
    // features coincide).
    assert!(loss.double_value(&[]) > 0.0);
    check_against_naive(&ya, &ya, h, w, 4);
}

#[test]
fn all_ignore_images_give_zero_with_a_graph() {
    let (h, w) = (3, 4);
    let ignore = vec![255i64; h * w];
    check_against_naive(&ignore, &ignore, h, w, 5);
    let f = Tensor::randn([1, 8, h as i64, w as i64], (Kind::Float, Device::Cpu))
        .set_requires_grad(true);
    let (loss, _) = pixel_contrastive_loss(
        &unit_normalize(&f),
        &labels(&ignore, h, w),
        &unit_normalize(&f),
        &labels(&ignore, h, w),
        &EXACT,
        0,
    );
    loss.backward();
    assert_eq!(f.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);
}

#[test]
fn batch_loss_is_the_mean_over_images_with_anchors() {
    let (h, w) = (3, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (a0, fa0) = random_features(&mut rng, 4, h, w);
    let (k0, fk0) = random_features(&mut rng, 4, h, w);
    let (a1, _) = random_features(&mut rng, 4, h, w);
    let (k1, _) = random_features(&mut rng, 4, h, w);
    let y0: Vec<i64> = vec![0, 1, 1, 2, 2, 2, 0, 1, 255];
    let y1 = vec![255i64; 9];
    let fa = Tensor::cat(&[a0, a1], 0);
    let fk = Tensor::cat(&[k0, k1], 0);
    let y = Tensor::cat(&[labels(&y0, h, w), labels(&y1, h, w)], 0);
    let (loss, stats) = pixel_contrastive_loss(&fa, &y, &fk, &y, &EXACT, 0);
    let want = naive_eq4(&fa0, &y0, &fk0, &y0, EXACT.temperature).unwrap();
    assert!((loss.double_value(&[]) - want).abs() < 1e-5);
    assert_eq!(stats.images, 1);
}

#[test]
fn gradients_are_finite_through_the_projection_head() {
    // 32 hidden units: a pixel whose hidden ReLUs are all zero (zero output, as conv biases start
    // at 0) has probability 2^-32, so every output vector is a unit vector.
    uda_models::tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let head = ProjectionHead::new(&vs.root(), 32, 4);
    let x = Tensor::randn([2, 32, 8, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let z = head.forward(&x);
    let norms = z.square().sum_dim_intlist(1, false, Kind::Float);
    assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    let y = Tensor::randint(3, [2, 8, 8], (Kind::Int64, Device::Cpu));
    let cfg = ContrastiveConfig {
        max_anchors_per_class: Some(5),
        max_keys_per_class: Some(7),
        ..EXACT
    };
    let (loss, _) = pixel_contrastive_loss(&z, &y, &z.flip([3]), &y.flip([2]), &cfg, 1);
    loss.backward();
    let g = x.grad();
    assert!(bool::try_from(g.isfinite().all()).unwrap());
    assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn sampling_with_caps_not_reached_is_exact_and_caps_bound_the_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (h, w) = (6, 6);
    let (ta, fa) = random_features(&mut rng, 8, h, w);
    let (tk, fk) = random_features(&mut rng, 8, h, w);
    let y: Vec<i64> = (0..h * w).map(|_| rng.random_range(0..3)).collect();
    let capped_high = ContrastiveConfig {
        max_anchors_per_class: Some(1000),
        max_keys_per_class: Some(1000),
        ..EXACT
    };
    let (loss, _) = pixel_contrastive_loss(
        &ta,
        &labels(&y, h, w),
        &tk,
        &labels(&y, h, w),
        &capped_high,
        3,
    );
    let want = naive_eq4(&fa, &y, &fk, &y, EXACT.temperature).unwrap();
    assert!((loss.double_value(&[]) - want).abs() < 1e-5);

    // With caps the matrix size stops growing with the image; without them it grows as N².
    let capped = ContrastiveConfig {
        max_anchors_per_class: Some(16),
        max_keys_per_class: Some(32),
        ..EXACT
    };
    let mut pairs = Vec::new();
    for side in [8i64, 32, 64] {
        let f = unit_normalize(&Tensor::randn(
            [1, 4, side, side],
            (Kind::Float, Device::Cpu),
        ));
        let y = Tensor::randint(19, [1, side, side], (Kind::Int64, Device::Cpu));
        let (loss, stats) = pixel_contrastive_loss(&f, &y, &f, &y, &capped, 0);
        assert!(loss.double_value(&[]).is_finite());
        assert!(stats.max_pairs <= (19 * 16) * (19 * 32), "{stats:?}");
        pairs.push(stats.max_pairs);
        let (_, exact) = pixel_contrastive_loss(&f, &y, &f, &y, &EXACT, 0);
        assert_eq!(
            exact.max_pairs,
            (side * side) as usize * (side * side) as usize
        );
    }
    assert_eq!(
        pairs[1], pairs[2],
        "capped matrix size must not grow: {pairs:?}"
    );
}

#[test]
fn sampled_estimate_is_close_to_the_exact_loss_and_deterministic_per_seed() {
    let (h, w) = (32, 32);
    let f = unit_normalize(&Tensor::randn([1, 8, h, w], (Kind::Double, Device::Cpu)));
    let g = unit_normalize(&(&f + Tensor::randn([1, 8, h, w], (Kind::Double, Device::Cpu)) * 0.5));
    let y = Tensor::randint(4, [1, h, w], (Kind::Int64, Device::Cpu));
    let (exact, _) = pixel_contrastive_loss(&f, &y, &g, &y, &EXACT, 0);
    let capped = ContrastiveConfig {
        max_anchors_per_class: Some(64),
        max_keys_per_class: Some(128),
        ..EXACT
    };
    let mean: f64 = (0..20)
        .map(|s| {
            pixel_contrastive_loss(&f, &y, &g, &y, &capped, s)
                .0
                .double_value(&[])
        })
        .sum::<f64>()
        / 20.0;
    let exact = exact.double_value(&[]);
    assert!(
        (mean - exact).abs() / exact < 0.02,
        "sampled mean {mean} vs exact {exact}"
    );
    let a = pixel_contrastive_loss(&f, &y, &g, &y, &capped, 5)
        .0
        .double_value(&[]);
    let b = pixel_contrastive_loss(&f, &y, &g, &y, &capped, 5)
        .0
        .double_value(&[]);
    assert_eq!(a, b);
}

#[test]
fn labels_follow_pytorch_nearest_downsampling() {
    // PyTorch: F.interpolate(x, size=(2, 3), mode='nearest') picks rows floor(i·4/2) = 0, 2 and
    // columns floor(j·6/3) = 0, 2, 4.
    let y = Tensor::arange(24, (Kind::Int64, Device::Cpu)).view([1, 4, 6]);
    let small = labels_to_grid(&y, 2, 3);
    let got = Vec::<i64>::try_from(small.view([-1])).unwrap();
    assert_eq!(got, vec![0, 2, 4, 12, 14, 16]);
    let big = labels_to_grid(&y, 4, 6);
    assert_eq!(
        Vec::<i64>::try_from(big.view([-1])).unwrap(),
        (0..24).collect::<Vec<_>>()
    );
}

/// Under bf16 autocast the loss is still computed in fp32: the same fp32 features give the same
/// loss to the bit, and features that went through bf16 (what a bf16 forward pass hands over)
/// stay within bf16's rounding of the exact value.
#[test]
fn the_loss_under_autocast_is_the_fp32_loss() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let (h, w) = (6, 7);
    let (ta, _) = random_features(&mut rng, 16, h, w);
    let (tk, _) = random_features(&mut rng, 16, h, w);
    let (ta, tk) = (ta.to_kind(Kind::Float), tk.to_kind(Kind::Float));
    let ya: Vec<i64> = (0..h * w).map(|_| rng.random_range(0..4)).collect();
    let yk: Vec<i64> = (0..h * w).map(|_| rng.random_range(0..4)).collect();
    let (la, lk) = (labels(&ya, h, w), labels(&yk, h, w));
    let exact = pixel_contrastive_loss(&ta, &la, &tk, &lk, &EXACT, 3).0;
    let device = uda_models::tch::Device::Cpu;
    let under = uda_models::with_precision(device, uda_models::Precision::Bf16, || {
        pixel_contrastive_loss(&ta, &la, &tk, &lk, &EXACT, 3).0
    });
    assert_eq!(under.kind(), Kind::Float);
    assert!(under.equal(&exact), "{under} vs {exact}");
    let reduced = uda_models::with_precision(device, uda_models::Precision::Bf16, || {
        let (a, k) = (ta.to_kind(Kind::BFloat16), tk.to_kind(Kind::BFloat16));
        pixel_contrastive_loss(&a, &la, &k, &lk, &EXACT, 3).0
    });
    let (e, r) = (exact.double_value(&[]), reduced.double_value(&[]));
    assert!((e - r).abs() < 2e-2 * e.abs(), "bf16 features: {r} vs {e}");
}
