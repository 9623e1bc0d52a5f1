//! What `param_listing: fda-listing` does to training: the same DeepLabV2 (random weights,
//! FDA's BatchNorm) trained for a few steps on the same random batches with each variable updated
//! once per step (`unique`) and as often as FDA's optimiser lists it (`fda-listing`); prints, per
//! kind of variable, the ratio of the distance the weights travelled (‖w_k − w_0‖).
//!
//! ```text
//! cargo run --release -p uda-train --example fda_listing_effect -- [STEPS]
//! ```

use std::collections::BTreeMap;
use uda_models::tch::{self, Device, Kind, Tensor, nn::VarStore};
use uda_models::{Backbone, SegNet};
use uda_train::losses::segmentation_cross_entropy;
use uda_train::{OptimizerChoice, ParamListing, TrainRecipe};

fn train(
    listing: ParamListing,
    steps: u64,
) -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) {
    let recipe = TrainRecipe {
        backbone: Backbone::Deeplabv2Resnet101,
        optimizer: OptimizerChoice::Sgd,
        param_listing: listing,
        iterations: steps,
        ..TrainRecipe::default()
    };
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = SegNet::new(&vs.root(), &recipe.model_config());
    let before: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    let (mut opt, schedule) = recipe.optimizer(&vs).unwrap();
    for it in 0..steps {
        tch::manual_seed(1000 + it as i64);
        let x = Tensor::randn([1, 3, 65, 97], (Kind::Float, Device::Cpu)) * 50.0;
        let y = Tensor::randint(19, [1, 65, 97], (Kind::Int64, Device::Cpu));
        opt.zero_grad();
        let out = net.forward_t(&x, true);
        segmentation_cross_entropy(&out.logits, &y).backward();
        opt.step(schedule.lr_at(it));
    }
    let after = vs.variables().into_iter().collect();
    (before, after)
}

fn kind_of(name: &str) -> &'static str {
    match uda_models::fda_listing_count(Backbone::Deeplabv2Resnet101, name) {
        _ if name.starts_with("layer5") => "head (listed once)",
        1 => "conv1 (listed once)",
        3 => "block convs (listed 3x)",
        _ => "downsample convs (listed 4x)",
    }
}

fn main() {
    let steps: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("STEPS: a number"))
        .unwrap_or(10);
    tch::set_num_threads(2);
    let (w0, unique) = train(ParamListing::Unique, steps);
    let (_, listed) = train(ParamListing::FdaListing, steps);
    let mut sums: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    for (name, u) in &unique {
        if name.contains("running_") || name.contains("bn") || name.contains("downsample.1") {
            continue;
        }
        let d_u = (u - &w0[name]).norm().double_value(&[]);
        let d_l = (&listed[name] - &w0[name]).norm().double_value(&[]);
        let e = sums.entry(kind_of(name)).or_default();
        e.0 += d_l;
        e.1 += d_u;
        e.2 += 1;
    }
    println!("after {steps} SGD steps (lr 2.5e-4 poly, momentum 0.9, weight decay 5e-4):");
    for (kind, (l, u, n)) in sums {
        println!(
            "  {kind:30} {n:3} tensors: distance travelled fda-listing / unique = {:.2}",
            l / u
        );
    }
}
