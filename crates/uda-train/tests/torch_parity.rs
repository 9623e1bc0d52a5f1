//! The losses, optimisers and grayscale conversion against their PyTorch / PIL references from
//! the project venv (`scripts/setup.sh` creates it).

use std::collections::HashMap;
use std::path::PathBuf;
use uda_models::tch::{Device, Kind, Tensor, nn};
use uda_train::augment::luma_pil;
use uda_train::losses::{EntropyAt, charbonnier_entropy, segmentation_cross_entropy};
use uda_train::{Optimizer, OptimizerConfig};

fn python() -> PathBuf {
    uda_testing::venv_python()
}

/// Runs `script` with `inputs` saved as `in.safetensors`; the script writes `out.safetensors`.
fn run_python(script: &str, inputs: &[(&str, Tensor)]) -> HashMap<String, Tensor> {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.safetensors");
    let out = dir.path().join("out.safetensors");
    Tensor::write_safetensors(inputs, &inp).unwrap();
    let prelude = "import sys, torch, numpy as np\nfrom safetensors.torch import load_file, save_file\n\
                   torch.use_deterministic_algorithms(True)\nI = load_file(sys.argv[1])\nO = {}\n";
    let full = format!(
        "{prelude}{script}\nsave_file({{k: v.contiguous() for k, v in O.items()}}, sys.argv[2])\n"
    );
    let status = std::process::Command::new(python())
        .arg("-c")
        .arg(&full)
        .arg(&inp)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "python reference failed");
    Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

#[test]
fn cross_entropy_and_its_gradient_match_pytorch() {
    uda_models::tch::manual_seed(1);
    let logits = Tensor::randn([2, 19, 9, 17], (Kind::Float, Device::Cpu)) * 3.0;
    let mut labels = Tensor::randint(19, [2, 33, 65], (Kind::Int64, Device::Cpu));
    let void = Tensor::rand([2, 33, 65], (Kind::Float, Device::Cpu)).lt(0.2);
    labels = labels.masked_fill(&void, 255);
    let x = logits.set_requires_grad(true);
    let loss = segmentation_cross_entropy(&x, &labels);
    loss.backward();
    let got_grad = x.grad();
    let refs = run_python(
        "x = I['logits'].requires_grad_(True)\n\
         up = torch.nn.functional.interpolate(x, size=(33, 65), mode='bilinear', align_corners=True)\n\
         loss = torch.nn.functional.cross_entropy(up, I['labels'], ignore_index=255)\n\
         loss.backward()\nO['loss'] = loss.detach().reshape(1)\nO['grad'] = x.grad",
        &[("logits", logits.detach()), ("labels", labels)],
    );
    let want = refs["loss"].double_value(&[0]);
    assert!(
        (loss.double_value(&[]) - want).abs() < 1e-5 * want.abs().max(1.0),
        "{} vs {want}",
        loss.double_value(&[])
    );
    let d = max_abs_diff(&got_grad, &refs["grad"]);
    assert!(d < 1e-7, "gradient differs by {d}");
}

#[test]
fn charbonnier_entropy_and_its_gradient_match_fda_formula() {
    uda_models::tch::manual_seed(2);
    let logits = Tensor::randn([2, 19, 5, 8], (Kind::Float, Device::Cpu)) * 2.0;
    for at in [EntropyAt::Logits, EntropyAt::Input] {
        for (eta, eps) in [(2.0, 1e-3), (2.0, 1e-4), (1.5, 1e-3)] {
            let x = logits.detach().set_requires_grad(true);
            let loss = charbonnier_entropy(&x, at, [20, 32], eta, eps);
            loss.backward();
            // FDA's `model/deeplab.py` entropy, with its 2.9444 replaced by ln(19) and 1e-8 by
            // eps**2; `logits` is FDA's placement (before its interpolate), `input` upsamples.
            let resize = match at {
                EntropyAt::Logits => "x2 = x",
                EntropyAt::Input => {
                    "x2 = torch.nn.functional.interpolate(x, size=(20, 32), mode='bilinear', align_corners=True)"
                }
            };
            let script = format!(
                "x = I['logits'].requires_grad_(True)\n{resize}\n\
                 P = torch.nn.functional.softmax(x2, dim=1)\nlogP = torch.nn.functional.log_softmax(x2, dim=1)\n\
                 ent = -1.0 * (P * logP).sum(dim=1) / np.log(19)\n\
                 ent = ent ** 2.0 + {eps}**2\nent = ent ** {eta}\nloss = ent.mean()\nloss.backward()\n\
                 O['loss'] = loss.detach().reshape(1)\nO['grad'] = x.grad"
            );
            let refs = run_python(&script, &[("logits", logits.detach())]);
            let want = refs["loss"].double_value(&[0]);
            assert!(
                (loss.double_value(&[]) - want).abs() < 1e-6 * want.abs().max(1e-3),
                "{at:?} eta {eta}: {loss} vs {want}"
            );
            let d = max_abs_diff(&x.grad(), &refs["grad"]);
            assert!(
                d < 1e-8,
                "{at:?} eta {eta} eps {eps}: gradient differs by {d}"
            );
        }
    }
}

/// Two variables in groups 0 and 1, driven by fixed gradient sequences through `loss = Σ p·g`.
fn optimiser_run(
    config: OptimizerConfig,
    lrs: &[f64],
) -> (Tensor, Tensor, Vec<Tensor>, Vec<Tensor>, Tensor, Tensor) {
    uda_models::tch::manual_seed(3);
    let a0 = Tensor::randn([3, 4], (Kind::Float, Device::Cpu));
    let b0 = Tensor::randn([5], (Kind::Float, Device::Cpu));
    let ga: Vec<Tensor> = lrs
        .iter()
        .map(|_| Tensor::randn([3, 4], (Kind::Float, Device::Cpu)))
        .collect();
    let gb: Vec<Tensor> = lrs
        .iter()
        .map(|_| Tensor::randn([5], (Kind::Float, Device::Cpu)))
        .collect();
    let vs = nn::VarStore::new(Device::Cpu);
    let a = vs.root().set_group(0).var_copy("a", &a0);
    let b = vs.root().set_group(1).var_copy("b", &b0);
    let mut opt = Optimizer::new(&vs, config, &[1.0, 10.0]).unwrap();
    assert_eq!(opt.len(), 2);
    for (k, &lr) in lrs.iter().enumerate() {
        opt.zero_grad();
        let loss = (&a * &ga[k]).sum(Kind::Float) + (&b * &gb[k]).sum(Kind::Float);
        loss.backward();
        opt.step(lr);
    }
    (a0, b0, ga, gb, a.detach(), b.detach())
}

fn compare_with_torch_optim(config: OptimizerConfig, ctor: &str) {
    let lrs = [0.1, 0.05, 0.08, 0.02, 0.01, 0.003];
    let (a0, b0, ga, gb, a, b) = optimiser_run(config, &lrs);
    let mut inputs: Vec<(String, Tensor)> = vec![("a".into(), a0), ("b".into(), b0)];
    for k in 0..lrs.len() {
        inputs.push((format!("ga{k}"), ga[k].shallow_clone()));
        inputs.push((format!("gb{k}"), gb[k].shallow_clone()));
    }
    let lr_list = lrs
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        "a = I['a'].clone().requires_grad_(True)\nb = I['b'].clone().requires_grad_(True)\n\
         opt = ({ctor})([{{'params': [a]}}, {{'params': [b]}}], lr=1.0)\n\
         for k, lr in enumerate([{lr_list}]):\n\
         \x20   opt.param_groups[0]['lr'] = lr\n    opt.param_groups[1]['lr'] = lr * 10\n\
         \x20   a.grad = I[f'ga{{k}}'].clone()\n    b.grad = I[f'gb{{k}}'].clone()\n    opt.step()\n\
         O['a'] = a.detach()\nO['b'] = b.detach()"
    );
    let refs_in: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.shallow_clone()))
        .collect();
    let refs = run_python(&script, &refs_in);
    let (da, db) = (max_abs_diff(&a, &refs["a"]), max_abs_diff(&b, &refs["b"]));
    assert!(
        da < 1e-6 && db < 1e-5,
        "{ctor}: differs from PyTorch by {da} / {db}"
    );
    // And the update is not trivially zero.
    assert!(max_abs_diff(&a, &inputs[0].1) > 1e-3);
}

#[test]
fn sgd_matches_torch_optim_sgd() {
    compare_with_torch_optim(
        OptimizerConfig::Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
        },
        "lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=5e-4)",
    );
}

#[test]
fn adam_matches_torch_optim_adam() {
    compare_with_torch_optim(
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 1e-3,
        },
        "lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-3)",
    );
}

#[test]
fn optimiser_state_round_trips_through_a_checkpoint() {
    let lrs = [0.1, 0.05, 0.08];
    for config in [OptimizerConfig::PAPER_SGD, OptimizerConfig::PAPER_ADAM] {
        // Run 3 steps; then copy state into a fresh optimiser and compare one more step each.
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().set_group(0).var("a", &[4], nn::Init::Const(1.0));
        let mut opt = Optimizer::new(&vs, config, &[1.0, 10.0]).unwrap();
        for &lr in &lrs {
            opt.zero_grad();
            (&a * &a).sum(Kind::Float).backward();
            opt.step(lr);
        }
        let state: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
        assert!(!state.is_empty());
        let vs2 = nn::VarStore::new(Device::Cpu);
        let a2 = vs2.root().set_group(0).var_copy("a", &a.detach());
        let mut opt2 = Optimizer::new(&vs2, config, &[1.0, 10.0]).unwrap();
        opt2.load_state(&state).unwrap();
        for (o, v) in [(&mut opt, &a), (&mut opt2, &a2)] {
            o.zero_grad();
            (v * v).sum(Kind::Float).backward();
            o.step(0.01);
        }
        assert!(a.equal(&a2), "{config:?}: resumed step differs");
        // A state of the other optimiser kind is refused.
        let other = if matches!(config, OptimizerConfig::Sgd { .. }) {
            OptimizerConfig::PAPER_ADAM
        } else {
            OptimizerConfig::PAPER_SGD
        };
        let mut wrong = Optimizer::new(&vs2, other, &[1.0, 10.0]).unwrap();
        assert!(wrong.load_state(&state).is_err());
    }
}

#[test]
fn grayscale_matches_pil_convert_l() {
    let n = 4096usize;
    let px: Vec<u8> = (0..n * 3)
        .map(|i| ((i * 2_654_435_761usize) >> 7) as u8)
        .collect();
    let mut all = px.clone();
    // Corner cases: black, white, pure primaries.
    all.extend_from_slice(&[0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
    let m = all.len() / 3;
    let t = Tensor::from_slice(&all).view([1, m as i64, 3]);
    let refs = run_python(
        "from PIL import Image\nimg = Image.fromarray(I['rgb'].numpy(), 'RGB')\n\
         O['gray'] = torch.from_numpy(np.array(img.convert('L')))",
        &[("rgb", t)],
    );
    let want: Vec<u8> = Vec::<u8>::try_from(refs["gray"].flatten(0, -1)).unwrap();
    let got: Vec<u8> = all
        .chunks_exact(3)
        .map(|p| luma_pil(p[0], p[1], p[2]))
        .collect();
    assert_eq!(got, want);
}

/// FDA's DeepLab optimiser lists trunk tensors several times; PyTorch's SGD then updates each
/// once per listing. `with_listings` must reproduce that, step after step (the first step,
/// where every listing starts its own momentum buffer, differs from the later ones).
#[test]
fn sgd_with_repeated_listings_matches_torch_sgd_given_duplicates() {
    uda_models::tch::manual_seed(4);
    let lrs = [0.1, 0.05, 0.08, 0.02];
    let init: Vec<Tensor> = (0..3)
        .map(|_| Tensor::randn([2, 3], (Kind::Float, Device::Cpu)))
        .collect();
    let grads: Vec<Vec<Tensor>> = lrs
        .iter()
        .map(|_| {
            (0..3)
                .map(|_| Tensor::randn([2, 3], (Kind::Float, Device::Cpu)))
                .collect()
        })
        .collect();
    let vs = nn::VarStore::new(Device::Cpu);
    let vars: Vec<Tensor> = ["a", "b", "c"]
        .iter()
        .zip(&init)
        .map(|(n, t)| vs.root().var_copy(n, t))
        .collect();
    let config = OptimizerConfig::Sgd {
        momentum: 0.9,
        weight_decay: 0.05,
    };
    let mut opt = Optimizer::new(&vs, config, &[1.0])
        .unwrap()
        .with_listings(|name| match name {
            "a" => 1,
            "b" => 3,
            _ => 4,
        })
        .unwrap();
    for (k, &lr) in lrs.iter().enumerate() {
        opt.zero_grad();
        let loss = vars
            .iter()
            .zip(&grads[k])
            .map(|(v, g)| (v * g).sum(Kind::Float))
            .reduce(|x, y| x + y)
            .unwrap();
        loss.backward();
        opt.step(lr);
    }
    let mut inputs: Vec<(String, Tensor)> = Vec::new();
    for (i, t) in init.iter().enumerate() {
        inputs.push((format!("p{i}"), t.shallow_clone()));
    }
    for (k, gs) in grads.iter().enumerate() {
        for (i, g) in gs.iter().enumerate() {
            inputs.push((format!("g{k}_{i}"), g.shallow_clone()));
        }
    }
    let lr_list = lrs.map(|l| l.to_string()).join(", ");
    // Interleaved as FDA's generator yields them (a tensor again under each enclosing module).
    let script = format!(
        "import warnings\nwarnings.simplefilter('ignore')\n\
         P = [I[f'p{{i}}'].clone().requires_grad_(True) for i in range(3)]\n\
         a, b, c = P\n\
         opt = torch.optim.SGD([{{'params': [b, c, a, b, c, b, c, c]}}], lr=1.0, momentum=0.9, weight_decay=0.05, foreach=False)\n\
         for k, lr in enumerate([{lr_list}]):\n\
         \x20   opt.param_groups[0]['lr'] = lr\n\
         \x20   for i in range(3):\n        P[i].grad = I[f'g{{k}}_{{i}}'].clone()\n\
         \x20   opt.step()\n\
         for i in range(3):\n    O[f'p{{i}}'] = P[i].detach()"
    );
    let refs_in: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.shallow_clone()))
        .collect();
    let refs = run_python(&script, &refs_in);
    for (i, v) in vars.iter().enumerate() {
        let d = max_abs_diff(v, &refs[&format!("p{i}")]);
        assert!(d < 1e-5, "variable {i}: differs from PyTorch by {d}");
    }
    // Three listings move b further than one would: the option is not a no-op.
    let once = Optimizer::new(&vs, config, &[1.0]).unwrap().len();
    assert_eq!(once, 3);
    assert!(max_abs_diff(&vars[1], &init[1]) > 0.2);
}
