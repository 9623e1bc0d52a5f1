//! CPU vs CUDA agreement of what a training step computes: every backbone's logits, the three
//! losses (cross-entropy, Charbonnier entropy, pixel contrastive through the projection head) and
//! the gradients of their weighted sum, from the same weights and inputs on both devices. Run on a
//! GPU machine (scripts/bench/recipe_gpu.sh runs it there); the CPU side is the reference.
//!
//!     device_parity [--height 128] [--width 256] [--batch 2] [--device cuda]
//!
//! (`--device cpu` compares the CPU with itself: every difference is then exactly 0.)
//!
//! Forward passes are in evaluation mode (dropout would draw different masks on each device).
//! CUDA convolutions use cuDNN's defaults (TF32 allowed on Ampere and newer, as PyTorch's), so
//! relative differences of ~1e-3 are expected there; a broken kernel or device path shows up as
//! O(1). Prints one row per backbone: relative L2 differences of the logits and of all
//! gradients taken as one vector, and each loss on both devices.
//! scripts/bench/device_parity_torch.py measures the same for PyTorch's reference models, with
//! TF32 on and off, as the yardstick.

use anyhow::{Context, Result, bail};
use uda_models::tch::nn::VarStore;
use uda_models::tch::{self, Device, Kind, Tensor};
use uda_models::{Backbone, ModelConfig, SegNet, device_from_spec};
use uda_train::contrastive::{
    ContrastiveConfig, ProjectionHead, labels_to_grid, pixel_contrastive_loss,
};
use uda_train::losses::{EntropyAt, charbonnier_entropy, segmentation_cross_entropy};

struct Step {
    logits: Tensor,
    losses: [f64; 3],
    grads: Vec<(String, Tensor)>,
}

/// One forward + backward of `ce + 0.005·ent + cl` on `device`, with `weights` copied in.
fn step(
    backbone: Backbone,
    device: Device,
    weights: Option<&VarStore>,
    x: &Tensor,
    labels: &Tensor,
) -> Result<(VarStore, Step)> {
    tch::manual_seed(0);
    let mut vs = VarStore::new(device);
    let net = SegNet::new(&vs.root(), &ModelConfig::paper(backbone));
    let head = ProjectionHead::new(&(vs.root() / "head"), net.feature_dim(), 64);
    match weights {
        Some(src) => vs.copy(src)?,
        // Jitter every weight: FCN-8s' score layers start at zero (as the reference's), which
        // would make its logits 0 on both devices and the comparison vacuous.
        None => tch::no_grad(|| {
            for mut v in vs.trainable_variables() {
                let noise = v.randn_like() * 0.01;
                let _ = v.g_add_(&noise);
            }
        }),
    }
    let (x, labels) = (x.to_device(device), labels.to_device(device));
    let out = net.forward_t(&x, false);
    let (h, w) = (x.size()[2], x.size()[3]);
    let ce = segmentation_cross_entropy(&out.logits, &labels);
    let ent = charbonnier_entropy(&out.logits, EntropyAt::Input, [h, w], 2.0, 1e-3);
    let z = head.forward(&out.features);
    let grid = z.size();
    let grid_labels = labels_to_grid(&labels, grid[2], grid[3]);
    let cfg = ContrastiveConfig {
        temperature: 0.1,
        max_anchors_per_class: Some(256),
        max_keys_per_class: Some(512),
    };
    // Eq. 4 is between two views (target, t→s); anchors and keys from one view exercise the
    // same code, which is all a device comparison needs.
    let (cl, _) = pixel_contrastive_loss(&z, &grid_labels, &z, &grid_labels, &cfg, 7);
    let total: Tensor = &ce + &ent * 0.005 + &cl;
    total.backward();
    let losses = [
        ce.double_value(&[]),
        ent.double_value(&[]),
        cl.double_value(&[]),
    ];
    let mut grads: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .map(|(n, v)| (n, v.grad().to_device(Device::Cpu)))
        .collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    let logits = out.logits.to_device(Device::Cpu).detach();
    Ok((
        vs,
        Step {
            logits,
            losses,
            grads,
        },
    ))
}

fn rel(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a - b).to_kind(Kind::Double).norm().double_value(&[]);
    let scale = a.to_kind(Kind::Double).norm().double_value(&[]).max(1e-30);
    diff / scale
}

fn main() -> Result<()> {
    let (mut height, mut width, mut batch) = (128i64, 256i64, 2i64);
    let mut device = "cuda".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--height" => height = value.parse()?,
            "--width" => width = value.parse()?,
            "--batch" => batch = value.parse()?,
            "--device" => device = value,
            _ => bail!("unknown flag {flag} (--height, --width, --batch, --device)"),
        }
    }
    let cuda = device_from_spec(&device)?;
    tch::manual_seed(1);
    let x = Tensor::randn([batch, 3, height, width], (Kind::Float, Device::Cpu));
    let labels = Tensor::randint(19, [batch, height, width], (Kind::Int64, Device::Cpu));
    // Some ignored pixels, as real label maps have.
    let labels = labels.masked_fill(&labels.eq(18), 255);
    println!(
        "{:<22} {:>12} {:>22} {:>22} {:>22} {:>14}",
        "backbone",
        "logits rel",
        "CE cpu / cuda",
        "entropy cpu / cuda",
        "CL cpu / cuda",
        "grad rel"
    );
    for backbone in Backbone::ALL {
        let (cpu_vs, cpu) = step(backbone, Device::Cpu, None, &x, &labels)?;
        let (_, gpu) = step(backbone, cuda, Some(&cpu_vs), &x, &labels)?;
        // All gradients as one vector: per-tensor ratios blow up on tensors whose gradient is
        // nearly zero, which says nothing about the step.
        let (mut diff2, mut norm2) = (0.0, 0.0);
        for ((n, a), (m, b)) in cpu.grads.iter().zip(&gpu.grads) {
            assert_eq!(n, m);
            let sq = |t: &Tensor| t.to_kind(Kind::Double).square().sum(Kind::Double);
            diff2 += sq(&(a - b)).double_value(&[]);
            norm2 += sq(a).double_value(&[]);
        }
        let grad_rel = (diff2 / norm2.max(1e-300)).sqrt();
        let pair = |i: usize| format!("{:.6} / {:.6}", cpu.losses[i], gpu.losses[i]);
        println!(
            "{:<22} {:>12.2e} {:>22} {:>22} {:>22} {:>14.2e}",
            backbone.name(),
            rel(&cpu.logits, &gpu.logits),
            pair(0),
            pair(1),
            pair(2),
            grad_rel
        );
    }
    Ok(())
}
