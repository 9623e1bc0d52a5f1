//! DeepLabV2-ResNet101 against FDA's structure in PyTorch, with a torchvision resnet101
//! state_dict as the trunk weights (loaded with torchvision naming) and a native head.

mod common;

use uda_models::tch::nn::VarStore;
use uda_models::tch::{Device, Kind};
use uda_models::{Backbone, BatchNormMode, ModelConfig, SegNet, WeightNaming, load_safetensors};

#[test]
fn deeplabv2_resnet101_matches_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    common::run_reference("deeplabv2-resnet101", dir.path());

    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone: Backbone::Deeplabv2Resnet101,
        num_classes: 19,
        batch_norm: BatchNormMode::Frozen,
    };
    let net = SegNet::new(&vs.root(), &cfg);
    let trunk = load_safetensors(
        &mut vs,
        &dir.path().join("trunk.safetensors"),
        WeightNaming::Torchvision,
        true,
    )
    .unwrap();
    assert_eq!(
        trunk.not_covered.len(),
        8,
        "the ASPP head: 4 convs, weight and bias"
    );
    // fc.weight, fc.bias and one num_batches_tracked per BatchNorm.
    assert_eq!(trunk.skipped.len(), 2 + 104, "{:?}", trunk.skipped);
    let head = load_safetensors(
        &mut vs,
        &dir.path().join("head.safetensors"),
        WeightNaming::Native,
        false,
    )
    .unwrap();
    assert_eq!(head.loaded.len(), 8);

    let io = common::read(&dir.path().join("io.safetensors"));
    let x = &io["input"];
    let out = uda_models::tch::no_grad(|| net.forward_t(x, false));
    common::assert_close("logits", &out.logits, &io["logits"]);
    common::assert_close("features", &out.features, &io["features"]);
    // Frozen BatchNorm: training mode computes exactly what eval mode does.
    let train = uda_models::tch::no_grad(|| net.forward_t(x, true));
    assert!(train.logits.allclose(&out.logits, 0.0, 0.0, false));

    let out = net.forward_t(x, false);
    (out.logits * &io["loss_weight"])
        .sum(Kind::Float)
        .backward();
    for name in [
        "conv1.weight",
        "layer4.2.conv3.weight",
        "layer5.conv2d_list.2.weight",
    ] {
        let grad = vs.variables()[name].grad();
        common::assert_close(&format!("grad {name}"), &grad, &io[&format!("grad.{name}")]);
    }
    assert!(
        !vs.variables()["layer2.0.bn1.weight"].grad().defined(),
        "frozen BN must get no gradient"
    );
}
