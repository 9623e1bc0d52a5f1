//! ENet against PyTorch-ENet's structure in PyTorch; the weights file is the reference's own
//! state_dict, repeated PReLU entries included.

mod common;

use uda_models::tch::nn::VarStore;
use uda_models::tch::{Device, Kind};
use uda_models::{Backbone, BatchNormMode, ModelConfig, SegNet, WeightNaming, load_safetensors};

#[test]
fn enet_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    common::run_reference("enet", dir.path());

    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone: Backbone::Enet,
        num_classes: 19,
        batch_norm: BatchNormMode::Train,
    };
    let net = SegNet::new(&vs.root(), &cfg);
    let report = load_safetensors(
        &mut vs,
        &dir.path().join("weights.safetensors"),
        WeightNaming::Native,
        true,
    )
    .unwrap();
    assert_eq!(report.loaded.len(), vs.variables().len());
    assert!(
        report
            .skipped
            .iter()
            .any(|(k, _)| k == "regular1_1.ext_conv1.2.weight"),
        "{:?}",
        report.skipped
    );

    let io = common::read(&dir.path().join("io.safetensors"));
    let x = &io["input"];
    let out = uda_models::tch::no_grad(|| net.forward_t(x, false));
    common::assert_close("logits", &out.logits, &io["logits"]);
    common::assert_close("features", &out.features, &io["features"]);

    let out = net.forward_t(x, false);
    (out.logits * &io["loss_weight"])
        .sum(Kind::Float)
        .backward();
    for name in [
        "initial_block.main_branch.weight",
        "asymmetric2_3.ext_conv2.3.weight",
        "transposed_conv.weight",
    ] {
        let grad = vs.variables()[name].grad();
        common::assert_close(&format!("grad {name}"), &grad, &io[&format!("grad.{name}")]);
    }
}
