//! The pixel contrastive loss of the paper's second model (§4.2, eq. 4), its projection head, and
//! the memory-bounded sampling that makes it affordable at 1024×512.
//!
//! # The loss
//!
//! For a target image `A = I_t` (anchors) and its target→source translation `B = I_{t→s}`
//! (keys), with unit-normalised features `f` and (pseudo-)labels `y`:
//!
//! ```text
//! L(A, B) = 1/N · Σ_p [ log Σ_k exp(f_p·f_k / τ)  −  1/N_{y_p} · Σ_{q: y_q = y_p} f_p·f_q / τ ]
//! ```
//!
//! which is eq. 4 with the log of the quotient split. The sums run over *valid* pixels: label 255
//! (ignore) is excluded on both sides, and an anchor whose class has no pixel in the key view is
//! skipped (its `1/N_{y_p}` is undefined); `N` counts the anchors that remain. Class 0 (road) is an
//! ordinary class. A batch's loss is the mean over its images that have at least one valid anchor;
//! a batch without any gives 0 (with a graph, so backward still works).
//!
//! # Memory-bounded scheme
//!
//! The exact loss needs an `N_A × N_B` similarity matrix (at 1024×512 and stride 8 that is
//! 8192², 256 MB with its gradient per image; at stride 1 it is hopeless). Two reductions, both
//! documented params of `contrastive-train`:
//!
//! 1. Labels are resized to the feature grid by nearest neighbour (PyTorch's `nearest`, Zhao et
//!    al.), so the loss lives at the feature stride.
//! 2. Per-class sampling with caps (ContrastiveSeg's `max_samples` idea): at most
//!    `max_anchors_per_class` anchors and `max_keys_per_class` keys of each class per image,
//!    drawn without replacement. Each sampled pixel stands for `n_c / s_c` pixels of its class
//!    (`n_c` present, `s_c` sampled): anchors are averaged with those weights and the key sum of
//!    the denominator is weighted the same way, so the estimate keeps the exact loss's class
//!    balance. When no class exceeds its caps every weight is 1 and the result *is* the exact
//!    loss (tested against a naive O(N²) evaluation of eq. 4). The matrix then has at most
//!    `(19 · max_anchors) × (19 · max_keys)` entries whatever the image size.
//!
//! Sampling is drawn from a seed the caller derives from `(seed, iteration)`, so resumed runs
//! sample the same pixels.

use crate::losses::IGNORE_LABEL;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use uda_models::tch::{Device, Kind, Tensor, nn, nn::Module};

/// Number of distinct labels a pixel may carry (train ids 0..=254; 255 is ignore).
const LABEL_SLOTS: usize = 256;

/// How the loss is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContrastiveConfig {
    /// Temperature τ (ContrastiveSeg: 0.1).
    pub temperature: f64,
    /// Anchors of one class drawn per image; `None` keeps them all.
    pub max_anchors_per_class: Option<usize>,
    /// Keys of one class drawn per image; `None` keeps them all.
    pub max_keys_per_class: Option<usize>,
}

/// What one call looked at (for logs, and for the memory-bound tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContrastiveStats {
    /// Images of the batch that had at least one valid anchor.
    pub images: usize,
    /// Anchors used, summed over images.
    pub anchors: usize,
    /// Keys used, summed over images.
    pub keys: usize,
    /// The largest similarity matrix built (`anchors × keys` of one image).
    pub max_pairs: usize,
}

/// ContrastiveSeg's projection head without its BatchNorm (batches of one image are the norm
/// here): 1×1 conv `in → in`, ReLU, 1×1 conv `in → out`, then unit-normalised over channels.
#[derive(Debug)]
pub struct ProjectionHead {
    hidden: nn::Conv2D,
    out: nn::Conv2D,
}

impl ProjectionHead {
    pub fn new(path: &nn::Path, in_dim: i64, out_dim: i64) -> Self {
        let cfg = nn::ConvConfig::default();
        Self {
            hidden: nn::conv2d(path / "hidden", in_dim, in_dim, 1, cfg),
            out: nn::conv2d(path / "out", in_dim, out_dim, 1, cfg),
        }
    }

    /// `(B, in, h, w)` features → `(B, out, h, w)` unit vectors.
    /// Unit fp32 features (the head's convolutions follow the forward pass's precision; the
    /// normalisation and everything after it are fp32).
    pub fn forward(&self, features: &Tensor) -> Tensor {
        let z = self.out.forward(&self.hidden.forward(features).relu());
        let z = z.to_kind(Kind::Float);
        uda_models::in_fp32(|| unit_normalize(&z))
    }
}

/// Divides each pixel's channel vector by its L2 norm (clamped away from 0).
pub fn unit_normalize(z: &Tensor) -> Tensor {
    let norm = z
        .square()
        .sum_dim_intlist(1, true, Kind::Float)
        .sqrt()
        .clamp_min(1e-12);
    z / norm
}

/// `(B, H, W)` labels resized to `(B, height, width)` by nearest neighbour as PyTorch's
/// `F.interpolate(mode='nearest')` does (source index `floor(i · H / height)`).
pub fn labels_to_grid(labels: &Tensor, height: i64, width: i64) -> Tensor {
    let size = labels.size();
    if size[1] == height && size[2] == width {
        return labels.to_kind(Kind::Int64);
    }
    labels
        .to_kind(Kind::Float)
        .unsqueeze(1)
        .upsample_nearest2d([height, width], None, None)
        .squeeze_dim(1)
        .to_kind(Kind::Int64)
}

/// The loss of eq. 4 averaged over a batch; see the module docs. `anchor_features` and
/// `key_features` are `(B, d, h, w)` unit vectors, `anchor_labels` and `key_labels` `(B, h, w)`
/// integer labels on the same grid (use [`labels_to_grid`]). `seed` drives the sampling.
pub fn pixel_contrastive_loss(
    anchor_features: &Tensor,
    anchor_labels: &Tensor,
    key_features: &Tensor,
    key_labels: &Tensor,
    cfg: &ContrastiveConfig,
    seed: u64,
) -> (Tensor, ContrastiveStats) {
    // fp32 whatever the forward pass ran in: the similarities are divided by τ = 0.1 and
    // exponentiated, which bf16's 8-bit mantissa would coarsen.
    let (anchor_features, key_features) = (
        anchor_features.to_kind(Kind::Float),
        key_features.to_kind(Kind::Float),
    );
    uda_models::in_fp32(|| {
        contrastive_fp32(
            &anchor_features,
            anchor_labels,
            &key_features,
            key_labels,
            cfg,
            seed,
        )
    })
}

fn contrastive_fp32(
    anchor_features: &Tensor,
    anchor_labels: &Tensor,
    key_features: &Tensor,
    key_labels: &Tensor,
    cfg: &ContrastiveConfig,
    seed: u64,
) -> (Tensor, ContrastiveStats) {
    let fs = anchor_features.size();
    assert_eq!(fs.len(), 4, "features must be (B, d, h, w)");
    assert_eq!(
        fs,
        key_features.size(),
        "anchor and key features differ in shape"
    );
    let (b, d, n) = (fs[0], fs[1], fs[2] * fs[3]);
    assert_eq!(
        anchor_labels.size(),
        [b, fs[2], fs[3]],
        "labels must be (B, h, w) on the feature grid"
    );
    assert_eq!(anchor_labels.size(), key_labels.size());
    let device = anchor_features.device();
    let la = labels_to_vec(anchor_labels);
    let lk = labels_to_vec(key_labels);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = ContrastiveStats::default();
    let mut per_image: Vec<Tensor> = Vec::new();
    for i in 0..b as usize {
        let range = i * n as usize..(i + 1) * n as usize;
        let keys = sample_by_class(&lk[range.clone()], None, cfg.max_keys_per_class, &mut rng);
        let anchors = sample_by_class(
            &la[range],
            Some(&keys.present),
            cfg.max_anchors_per_class,
            &mut rng,
        );
        if anchors.index.is_empty() {
            continue;
        }
        let fa = anchor_features.get(i as i64).view([d, n]);
        let fk = key_features.get(i as i64).view([d, n]);
        let a = fa
            .index_select(1, &index_tensor(&anchors.index, device))
            .tr();
        let k = fk.index_select(1, &index_tensor(&keys.index, device)).tr();
        let sim = a.matmul(&k.tr()) / cfg.temperature;
        let kind = sim.kind();
        let log_w_key = Tensor::from_slice(&keys.weight)
            .to_kind(kind)
            .to_device(device)
            .log();
        let log_denominator = (&sim + log_w_key.unsqueeze(0)).logsumexp([1], false);
        let ya = index_tensor(&anchors.label, device);
        let yk = index_tensor(&keys.label, device);
        let positive = ya.unsqueeze(1).eq_tensor(&yk.unsqueeze(0)).to_kind(kind);
        let positive_mean = (&sim * &positive).sum_dim_intlist(1, false, kind)
            / positive.sum_dim_intlist(1, false, kind);
        let w_anchor = Tensor::from_slice(&anchors.weight)
            .to_kind(kind)
            .to_device(device);
        let loss = ((log_denominator - positive_mean) * &w_anchor).sum(kind) / w_anchor.sum(kind);
        stats.images += 1;
        stats.anchors += anchors.index.len();
        stats.keys += keys.index.len();
        stats.max_pairs = stats.max_pairs.max(anchors.index.len() * keys.index.len());
        per_image.push(loss);
    }
    let loss = if per_image.is_empty() {
        // Keeps the graph (zero gradient) so the caller can always call backward.
        anchor_features.sum(anchor_features.kind()) * 0.0
    } else {
        Tensor::stack(&per_image, 0).mean(per_image[0].kind())
    };
    (loss, stats)
}

fn labels_to_vec(labels: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(
        labels
            .to_kind(Kind::Int64)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]),
    )
    .expect("int64 labels convert to Vec<i64>")
}

fn index_tensor(values: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(values).to_device(device)
}

/// Pixels drawn from one label map: flat index, label and weight (`n_c / s_c`) of each.
#[derive(Debug, Default)]
struct Drawn {
    index: Vec<i64>,
    label: Vec<i64>,
    weight: Vec<f64>,
    /// Which labels occur (before sampling) among the valid pixels.
    present: Vec<bool>,
}

/// Groups the valid pixels of `labels` by class (only classes marked in `allowed`, when given),
/// and draws at most `cap` of each class uniformly without replacement.
fn sample_by_class(
    labels: &[i64],
    allowed: Option<&[bool]>,
    cap: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Drawn {
    let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); LABEL_SLOTS];
    for (p, &y) in labels.iter().enumerate() {
        if y == IGNORE_LABEL || !(0..LABEL_SLOTS as i64).contains(&y) {
            continue;
        }
        if allowed.is_some_and(|a| !a[y as usize]) {
            continue;
        }
        by_class[y as usize].push(p as i64);
    }
    let mut out = Drawn {
        present: by_class.iter().map(|c| !c.is_empty()).collect(),
        ..Drawn::default()
    };
    for (class, pixels) in by_class.iter().enumerate() {
        let n = pixels.len();
        if n == 0 {
            continue;
        }
        let take = cap.map_or(n, |c| c.min(n));
        let weight = n as f64 / take as f64;
        if take == n {
            out.index.extend_from_slice(pixels);
        } else {
            let mut picked: Vec<usize> = sample(rng, n, take).into_vec();
            picked.sort_unstable();
            out.index.extend(picked.into_iter().map(|j| pixels[j]));
        }
        out.label.extend(std::iter::repeat_n(class as i64, take));
        out.weight.extend(std::iter::repeat_n(weight, take));
    }
    out
}

#[cfg(test)]
mod tests;
