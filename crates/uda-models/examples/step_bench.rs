//! One training step (forward, cross-entropy, backward, SGD with momentum), or with `--mode
//! infer` one inference forward pass (eval mode, no gradient: what evaluate and
//! pseudolabel-dump run), timed in tch; the twin of scripts/bench/step_torch.py. Run through
//! scripts/bench/step.sh, which builds this with --release and prints both and their ratio.
//!
//!     step_bench --backbone enet|deeplabv2-resnet101|fcn8s-vgg16 --height 128 --width 256
//!                [--iters 10] [--warmup 2] [--threads 2] [--device cpu|cuda|auto]
//!                [--precision fp32|bf16|fp16] [--channels-last false|true] [--mode train|infer]
//!
//! `--precision bf16` runs the forward pass under autocast (`uda_models::with_precision`) and
//! the loss in fp32, as `step_torch.py --precision bf16` does with `torch.autocast`. DeepLabV2
//! uses frozen BatchNorm here, as `step_torch.py` (`freeze_bn`).
//!
//! Prints one line: `RESULT rust <backbone> <H>x<W> <device> threads=<T> median_ms=<m> mean_ms=<a>`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use uda_models::tch::nn::{OptimizerConfig, Sgd, VarStore};
use uda_models::tch::{self, Device, Kind, Reduction, Tensor};
use uda_models::{
    Backbone, BatchNormMode, GROUP_HEAD, ModelConfig, Precision, SegNet, device_from_spec,
    with_precision,
};

struct Args {
    backbone: Backbone,
    height: i64,
    width: i64,
    iters: usize,
    warmup: usize,
    threads: i32,
    device: String,
    precision: Precision,
    channels_last: bool,
    mode: Mode,
}

/// What one timed iteration is.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Forward in train mode, loss, backward, optimiser step.
    Train,
    /// Forward in eval mode without gradient, logits cast to fp32.
    Infer,
}

impl Mode {
    const ALL: [Self; 2] = [Self::Train, Self::Infer];

    /// The `--mode` value, also printed in the RESULT line.
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Infer => "infer",
        }
    }
}

fn parse() -> Result<Args> {
    let mut a = Args {
        backbone: Backbone::Enet,
        height: 128,
        width: 256,
        iters: 10,
        warmup: 2,
        threads: 2,
        device: "cpu".into(),
        precision: Precision::Fp32,
        channels_last: false,
        mode: Mode::Train,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backbone" => {
                a.backbone = Backbone::ALL
                    .into_iter()
                    .find(|b| b.name() == value)
                    .with_context(|| format!("unknown backbone {value}"))?
            }
            "--height" => a.height = value.parse()?,
            "--width" => a.width = value.parse()?,
            "--iters" => a.iters = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--threads" => a.threads = value.parse()?,
            "--device" => a.device = value,
            "--channels-last" => a.channels_last = value == "true",
            "--mode" => {
                a.mode = Mode::ALL
                    .into_iter()
                    .find(|m| m.name() == value)
                    .with_context(|| format!("--mode train|infer, got {value}"))?
            }
            "--precision" => {
                a.precision = serde_json::from_value(serde_json::Value::String(value.clone()))
                    .with_context(|| format!("--precision fp32|bf16|fp16, got {value}"))?
            }
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.iters == 0 {
        bail!("--iters must be at least 1");
    }
    Ok(a)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn main() -> Result<()> {
    let a = parse()?;
    let device = device_from_spec(&a.device)?;
    tch::set_num_threads(a.threads);
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true); // as step_torch.py (and FDA) do
    }
    tch::manual_seed(0);

    let vs = VarStore::new(device);
    let cfg = ModelConfig {
        batch_norm: match a.backbone {
            Backbone::Deeplabv2Resnet101 => BatchNormMode::Frozen,
            _ => ModelConfig::paper(a.backbone).batch_norm,
        },
        ..ModelConfig::paper(a.backbone)
    };
    let net = SegNet::new(&vs.root(), &cfg);
    let lr = 2.5e-4;
    let mut opt = Sgd {
        momentum: 0.9,
        dampening: 0.0,
        wd: 5e-4,
        nesterov: false,
    }
    .build(&vs, lr)?;
    opt.set_lr_group(GROUP_HEAD, 10.0 * lr);

    let mut x = Tensor::randn([1, 3, a.height, a.width], (Kind::Float, device));
    if a.channels_last {
        uda_models::convert_to_channels_last(&vs);
        x = uda_models::channels_last(&x);
    }
    let labels = Tensor::randint(19, [1, a.height, a.width], (Kind::Int64, device));
    let mut times = Vec::with_capacity(a.iters);
    for i in 0..a.warmup + a.iters {
        sync(device);
        let t0 = Instant::now();
        match a.mode {
            Mode::Train => {
                let logits = with_precision(device, a.precision, || net.forward_t(&x, true).logits)
                    .to_kind(Kind::Float);
                let logits = if net.logits_stride() == 1 {
                    logits
                } else {
                    logits.upsample_bilinear2d([a.height, a.width], true, None, None)
                };
                let loss =
                    logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, 255, 0.0);
                opt.zero_grad();
                loss.backward();
                opt.step();
            }
            Mode::Infer => {
                let _logits = tch::no_grad(|| {
                    with_precision(device, a.precision, || net.forward_t(&x, false).logits)
                        .to_kind(Kind::Float)
                });
            }
        }
        sync(device);
        if i >= a.warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mode = a.mode.name();
    println!(
        "RESULT rust {} {}x{} {} {} {mode} threads={} median_ms={median:.2} mean_ms={mean:.2}",
        a.backbone, a.height, a.width, a.device, a.precision, a.threads
    );
    Ok(())
}
