//! FCN-8s-VGG16 against FDA's FCN-8s in PyTorch, with a torchvision vgg16 state_dict as the
//! trunk weights (the Python side does the usual surgery, the Rust side the torchvision naming).

mod common;

use uda_models::tch::nn::VarStore;
use uda_models::tch::{Device, Kind};
use uda_models::{Backbone, BatchNormMode, ModelConfig, SegNet, WeightNaming, load_safetensors};

#[test]
fn fcn8s_vgg16_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    common::run_reference("fcn8s-vgg16", dir.path());

    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone: Backbone::Fcn8sVgg16,
        num_classes: 19,
        batch_norm: BatchNormMode::Train,
    };
    let net = SegNet::new(&vs.root(), &cfg);
    let trunk = load_safetensors(
        &mut vs,
        &dir.path().join("trunk.safetensors"),
        WeightNaming::Torchvision,
        true,
    )
    .unwrap();
    assert_eq!(trunk.loaded.len(), 30);
    assert_eq!(
        trunk.not_covered.len(),
        9,
        "3 score layers (weight, bias) and 3 upsampling kernels"
    );
    assert_eq!(
        trunk.skipped.len(),
        2,
        "the ImageNet classifier classifier.6"
    );
    let head = load_safetensors(
        &mut vs,
        &dir.path().join("head.safetensors"),
        WeightNaming::Native,
        false,
    )
    .unwrap();
    assert_eq!(head.loaded.len(), 9);

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
        "conv1_1.weight",
        "conv5_3.weight",
        "fc6.bias",
        "score_pool3.weight",
        "score_fr.bias",
    ] {
        let grad = vs.variables()[name].grad();
        common::assert_close(&format!("grad {name}"), &grad, &io[&format!("grad.{name}")]);
    }
}
