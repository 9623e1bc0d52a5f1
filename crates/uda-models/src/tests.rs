//! Structure tests of the three networks: shapes, optimiser groups, frozen BatchNorm, and
//! weight files round-tripping. Numerical agreement with PyTorch is in `tests/parity_*.rs`.

use std::collections::BTreeSet;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::naming::is_head_var;
use crate::*;

fn build(backbone: Backbone, batch_norm: BatchNormMode) -> (VarStore, SegNet) {
    let vs = VarStore::new(Device::Cpu);
    let net = SegNet::new(
        &vs.root(),
        &ModelConfig {
            backbone,
            num_classes: 5,
            batch_norm,
        },
    );
    (vs, net)
}

fn groups(vs: &VarStore) -> (usize, usize) {
    let vars = vs.variables_.lock().unwrap();
    let head = vars
        .trainable_variables
        .iter()
        .filter(|v| v.group == GROUP_HEAD)
        .count();
    (vars.trainable_variables.len() - head, head)
}

/// Names of trainable variables in `group`, found by tensor identity.
fn names_in_group(vs: &VarStore, group: usize) -> BTreeSet<String> {
    let vars = vs.variables_.lock().unwrap();
    let ptrs: Vec<_> = vars
        .trainable_variables
        .iter()
        .filter(|v| v.group == group)
        .map(|v| v.tensor.data_ptr())
        .collect();
    vars.named_variables
        .iter()
        .filter(|(_, t)| ptrs.contains(&t.data_ptr()))
        .map(|(n, _)| n.clone())
        .collect()
}

fn check_groups_match_head_names(vs: &VarStore) {
    let head = names_in_group(vs, GROUP_HEAD);
    assert!(!head.is_empty());
    assert!(head.iter().all(|n| is_head_var(n)), "{head:?}");
    let trunk = names_in_group(vs, GROUP_BACKBONE);
    assert!(trunk.iter().all(|n| !is_head_var(n)), "{trunk:?}");
}

#[test]
fn deeplab_shapes_groups_and_frozen_bn() {
    let (vs, net) = build(Backbone::Deeplabv2Resnet101, BatchNormMode::Frozen);
    // ResNet-101 trunk (42.5M) + 4 ASPP convs of 2048*5*9 + 5.
    let params: i64 = vs
        .variables()
        .iter()
        .filter(|(n, _)| !n.contains("running_"))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(params, 42_500_160 + 4 * (2048 * 5 * 9 + 5));
    // With frozen BN only convolutions train: 104 trunk convs (incl. 4 downsample) + 8 head tensors.
    assert_eq!(groups(&vs), (104, 8));
    check_groups_match_head_names(&vs);

    let x = Tensor::randn([1, 3, 65, 97], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| net.forward_t(&x, false));
    assert_eq!(out.logits.size(), [1, 5, 9, 13]);
    assert_eq!(out.features.size(), [1, net.feature_dim(), 9, 13]);
    // 1024×512 gives the 129×65 map the paper mentions.
    assert_eq!(net.logits_stride(), 8);
    assert_eq!(net.input_normalization(), Normalization::FDA_CAFFE);
}

#[test]
fn deeplab_unfrozen_bn_trains_affine_params() {
    let (vs, _net) = build(Backbone::Deeplabv2Resnet101, BatchNormMode::Train);
    // 104 convs + 2 affine tensors for each of the 104 BNs.
    assert_eq!(groups(&vs), (104 + 2 * 104, 8));
}

#[test]
fn fda_optimiser_lists_the_trunk_convs_314_times() {
    // FDA's get_1x_lr_params_NOscale over its DeepLab (affine BN parameters have
    // requires_grad = False there, so only the 104 convolutions are listed): conv1 once, the
    // 99 block convs three times, the 4 downsample convs four times; 1 + 297 + 16 = 314.
    let (vs, _) = build(Backbone::Deeplabv2Resnet101, BatchNormMode::Fda);
    assert_eq!(groups(&vs), (104, 8));
    let trunk = names_in_group(&vs, GROUP_BACKBONE);
    let count = |n: &str| fda_listing_count(Backbone::Deeplabv2Resnet101, n);
    assert_eq!(trunk.iter().map(|n| count(n)).sum::<usize>(), 314);
    assert_eq!(count("conv1.weight"), 1);
    assert_eq!(count("layer3.22.conv2.weight"), 3);
    assert_eq!(count("layer1.0.downsample.0.weight"), 4);
    for head in names_in_group(&vs, GROUP_HEAD) {
        assert_eq!(count(&head), 1, "{head}");
    }
    assert_eq!(
        fda_listing_count(Backbone::Enet, "initial_block.main_branch.weight"),
        1
    );
}

#[test]
fn fcn8s_shapes_groups_and_fixed_upsampling() {
    let (vs, net) = build(Backbone::Fcn8sVgg16, BatchNormMode::Train);
    // 13 convs + fc6 + fc7 (weight and bias each); head: 3 score layers (w, b).
    assert_eq!(groups(&vs), (30, 6));
    check_groups_match_head_names(&vs);
    assert!(vs.variables().contains_key("upscore8.weight"));
    for (h, w) in [(65, 97), (32, 32), (1, 7)] {
        let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| net.forward_t(&x, false));
        assert_eq!(out.logits.size(), [2, 5, h, w]);
        assert_eq!(out.features.size()[1], 4096);
    }
    // Score layers start at zero, so do the logits (FCN's initialisation).
    let x = Tensor::randn([1, 3, 40, 40], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| net.forward_t(&x, false));
    assert_eq!(out.logits.abs().max().double_value(&[]), 0.0);
}

#[test]
fn enet_shapes_groups_and_parameter_count() {
    let (vs, net) = build(Backbone::Enet, BatchNormMode::Train);
    check_groups_match_head_names(&vs);
    assert_eq!(groups(&vs).1, 1); // transposed_conv, no bias
    for (h, w) in [(65, 97), (64, 128), (33, 17)] {
        let x = Tensor::randn([1, 3, h, w], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| net.forward_t(&x, false));
        assert_eq!(out.logits.size(), [1, 5, h, w]);
        assert_eq!(out.features.size()[1], 128);
    }
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let out = net.forward_t(&x, true);
    assert_eq!(out.features.size(), [2, 128, 8, 8]);
    out.logits.sum(Kind::Float).backward();
}

#[test]
fn save_then_load_native_restores_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/enet.safetensors");
    let (vs, net) = build(Backbone::Enet, BatchNormMode::Train);
    // Move the running statistics away from their initial values.
    let _ = net.forward_t(
        &Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu)),
        true,
    );
    save_safetensors(&vs, &file).unwrap();

    let (mut vs2, net2) = build(Backbone::Enet, BatchNormMode::Train);
    let report = load_safetensors(&mut vs2, &file, WeightNaming::Native, true).unwrap();
    assert_eq!(report.loaded.len(), vs.variables().len());
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty() && report.not_covered.is_empty()
    );
    let x = Tensor::randn([1, 3, 48, 40], (Kind::Float, Device::Cpu));
    let (a, b) = tch::no_grad(|| {
        (
            net.forward_t(&x, false).logits,
            net2.forward_t(&x, false).logits,
        )
    });
    assert!(a.allclose(&b, 0.0, 0.0, false));
}

#[test]
fn mismatched_files_fail_listing_every_problem_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.safetensors");
    let (vs, _) = build(Backbone::Enet, BatchNormMode::Train);
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.retain(|(n, _)| n != "regular1_1.ext_conv1.0.weight");
    for (n, t) in named.iter_mut() {
        if n == "transposed_conv.weight" {
            *t = Tensor::zeros([16, 7, 3, 3], (Kind::Float, Device::Cpu));
        }
    }
    named.push((
        "not.in.model".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&named, &file).unwrap();

    let (mut vs2, _) = build(Backbone::Enet, BatchNormMode::Train);
    let before = vs2.variables()["initial_block.main_branch.weight"].copy();
    let err = load_safetensors(&mut vs2, &file, WeightNaming::Native, true)
        .unwrap_err()
        .to_string();
    for needle in [
        "regular1_1.ext_conv1.0.weight",
        "not.in.model",
        "transposed_conv.weight",
        "[16, 7, 3, 3]",
    ] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
    let after = vs2.variables()["initial_block.main_branch.weight"].shallow_clone();
    assert!(
        before.allclose(&after, 0.0, 0.0, false),
        "a failed load must not write"
    );

    // Non-strict still refuses a shape mismatch...
    assert!(load_safetensors(&mut vs2, &file, WeightNaming::Native, false).is_err());
    // ...but reports missing and unexpected tensors once the shapes fit.
    named.retain(|(n, _)| n != "transposed_conv.weight");
    Tensor::write_safetensors(&named, &file).unwrap();
    let r = load_safetensors(&mut vs2, &file, WeightNaming::Native, false).unwrap();
    assert_eq!(
        r.missing,
        ["regular1_1.ext_conv1.0.weight", "transposed_conv.weight"]
    );
    assert_eq!(r.unexpected, ["not.in.model"]);
}

#[test]
fn loads_under_a_prefix_and_accepts_enet_prelu_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("enet.safetensors");
    let (vs, _) = build(Backbone::Enet, BatchNormMode::Train);
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    // PyTorch-ENet's state_dict repeats each block's shared PReLU at every position.
    named.push((
        "regular1_1.ext_conv1.2.weight".into(),
        Tensor::from_slice(&[0.25f32]),
    ));
    named.push((
        "downsample1_0.ext_conv3.2.weight".into(),
        Tensor::from_slice(&[0.25f32]),
    ));
    named.push(("bn.num_batches_tracked".into(), Tensor::from_slice(&[3i64])));
    Tensor::write_safetensors(&named, &file).unwrap();

    let mut vs2 = VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone: Backbone::Enet,
        num_classes: 5,
        batch_norm: BatchNormMode::Train,
    };
    let _student = SegNet::new(&(vs2.root() / "student"), &cfg);
    let _other = (vs2.root() / "proj").zeros("weight", &[3]);
    let r = load_safetensors_under(&mut vs2, "student", &file, WeightNaming::Native, true).unwrap();
    assert_eq!(r.loaded.len(), vs.variables().len());
    assert_eq!(r.skipped.len(), 3, "{:?}", r.skipped);
}

#[test]
fn torchvision_naming_leaves_the_head_uncovered() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tv.safetensors");
    // A torchvision-named trunk saved from our own DeepLab (same names), plus torchvision extras.
    let (vs, _) = build(Backbone::Deeplabv2Resnet101, BatchNormMode::Frozen);
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(n, _)| !is_head_var(n))
        .collect();
    named.push((
        "fc.weight".into(),
        Tensor::zeros([1000, 2048], (Kind::Float, Device::Cpu)),
    ));
    named.push((
        "layer1.0.bn1.num_batches_tracked".into(),
        Tensor::from_slice(&[1i64]),
    ));
    Tensor::write_safetensors(&named, &file).unwrap();
    let (mut vs2, _) = build(Backbone::Deeplabv2Resnet101, BatchNormMode::Frozen);
    let r = load_safetensors(&mut vs2, &file, WeightNaming::Torchvision, true).unwrap();
    assert_eq!(r.not_covered.len(), 8);
    assert_eq!(r.skipped.len(), 2);
    // Native naming expects the head too.
    let e = load_safetensors(&mut vs2, &file, WeightNaming::Native, true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer5.conv2d_list.0.weight") && e.contains("fc.weight"),
        "{e}"
    );
}

#[test]
fn config_round_trips_through_yaml_names() {
    let cfg: ModelConfig = serde_json::from_str(
        r#"{"backbone":"deeplabv2-resnet101","num_classes":19,"batch_norm":"fda"}"#,
    )
    .unwrap();
    assert_eq!(cfg, ModelConfig::paper(Backbone::Deeplabv2Resnet101));
    // model.json of earlier versions: `freeze_bn: bool`.
    for (old, mode) in [
        ("true", BatchNormMode::Frozen),
        ("false", BatchNormMode::Train),
    ] {
        let json = format!(r#"{{"backbone":"enet","num_classes":19,"freeze_bn":{old}}}"#);
        let c: ModelConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(c.batch_norm, mode, "{json}");
    }
    let both = r#"{"backbone":"enet","num_classes":19,"freeze_bn":true,"batch_norm":"fda"}"#;
    let e = serde_json::from_str::<ModelConfig>(both)
        .unwrap_err()
        .to_string();
    assert!(e.contains("freeze_bn"), "{e}");
    let round: ModelConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(round, cfg);
    for b in Backbone::ALL {
        assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{b}\""));
    }
    assert!(
        ModelConfig {
            num_classes: 0,
            ..cfg
        }
        .validate()
        .is_err()
    );
}

/// bf16 autocast against fp32 for each backbone in evaluation mode, on networks made
/// representative first: every all-zero weight (FCN-8s' score layers) drawn at random, and the
/// BatchNorm running statistics gathered over 20 training-mode passes (a random net's 0/1
/// statistics are no network anyone evaluates). The logits agree within a relative L2 error
/// (‖bf16 − fp32‖ / ‖fp32‖) and the arg-max on most pixels; the bounds are the measured errors
/// with headroom (a from-scratch ENet is the most sensitive). What matters in the end is the
/// mIoU of trained models, which this does not show.
#[test]
fn bf16_autocast_logits_agree_with_fp32_for_every_backbone() {
    for (backbone, [h, w], tol) in [
        // Measured here: ENet 0.061, FCN-8s 0.0022, DeepLabV2 0.0047 (relative L2 error).
        (Backbone::Enet, [64, 96], 0.12),
        (Backbone::Fcn8sVgg16, [64, 96], 0.01),
        (Backbone::Deeplabv2Resnet101, [65, 97], 0.02),
    ] {
        tch::manual_seed(7);
        let (vs, net) = build(backbone, BatchNormMode::Train);
        tch::no_grad(|| {
            for (_, mut t) in vs.variables() {
                if t.kind() == Kind::Float && t.abs().max().double_value(&[]) == 0.0 {
                    t.copy_(&(t.randn_like() * 0.01));
                }
            }
            for _ in 0..20 {
                let _ = net.forward_t(
                    &Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu)),
                    true,
                );
            }
        });
        let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
        let exact = tch::no_grad(|| net.forward_t(&x, false).logits);
        let half = tch::no_grad(|| {
            with_precision(Device::Cpu, Precision::Bf16, || {
                net.forward_t(&x, false).logits
            })
        });
        assert_ne!(
            half.kind(),
            Kind::Float,
            "{backbone}: autocast did not apply"
        );
        let half = half.to_kind(Kind::Float);
        let err = (&half - &exact).norm().double_value(&[]) / exact.norm().double_value(&[]);
        let agree = half
            .argmax(1, false)
            .eq_tensor(&exact.argmax(1, false))
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[]);
        eprintln!(
            "{backbone}: bf16 logits off by {err:.4} (relative L2), arg-max agrees on {agree:.4}"
        );
        assert!(err < tol, "{backbone}: bf16 off by {err:.4} (relative L2)");
        assert!(agree > 0.95, "{backbone}: arg-max agrees on {agree:.3}");
    }
}
