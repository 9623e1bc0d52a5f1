//! scripts/convert_pth.py on .pth files this test writes: a nested, DataParallel-prefixed
//! PyTorch-ENet checkpoint converts and loads strictly; a file with a pickled object is refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use uda_models::tch::nn::VarStore;
use uda_models::tch::{Device, Kind};
use uda_models::{Backbone, BatchNormMode, ModelConfig, SegNet, WeightNaming, load_safetensors};

fn python(code: &str, dir: &Path) {
    let out = Command::new(common::python())
        .arg("-c")
        .arg(code)
        .env("PYTHONPATH", common::script(""))
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn convert(dir: &Path, args: &[&str]) -> Output {
    let script = common::workspace_root().join("scripts/convert_pth.py");
    Command::new(common::python())
        .arg(script)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn nested_prefixed_checkpoint_converts_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    python(
        "import torch, reference_models as rm\n\
         torch.manual_seed(1)\n\
         m = rm.ENet(19)\n\
         sd = {'module.' + k: v for k, v in m.state_dict().items()}\n\
         torch.save({'state_dict': sd, 'epoch': 7}, 'ckpt.pth')\n\
         torch.save(m.transposed_conv.weight.detach().clone(), 'probe.pt')\n",
        dir.path(),
    );

    // Without --key the epoch counter is reported, not silently dropped.
    let out = convert(dir.path(), &["ckpt.pth", "x.safetensors"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("non-tensor") && err.contains("--key"), "{err}");

    let out = convert(
        dir.path(),
        &[
            "ckpt.pth",
            "enet.safetensors",
            "--key",
            "state_dict",
            "--prefix-strip",
            "module.",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone: Backbone::Enet,
        num_classes: 19,
        batch_norm: BatchNormMode::Train,
    };
    let _net = SegNet::new(&vs.root(), &cfg);
    let report = load_safetensors(
        &mut vs,
        &dir.path().join("enet.safetensors"),
        WeightNaming::Native,
        true,
    )
    .unwrap();
    assert_eq!(report.loaded.len(), vs.variables().len());

    // The converted values are the checkpoint's: compare one tensor saved on its own.
    python(
        "import torch\nfrom safetensors.torch import save_file\n\
         save_file({'w': torch.load('probe.pt', weights_only=True)}, 'probe.safetensors')\n",
        dir.path(),
    );
    let probe = &common::read(&dir.path().join("probe.safetensors"))["w"];
    let loaded = vs.variables()["transposed_conv.weight"].shallow_clone();
    assert!(loaded.allclose(probe, 0.0, 0.0, false));
    assert!(probe.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn pickled_objects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    python(
        "import torch\n\
         class Payload:\n    def __reduce__(self):\n        return (print, ('unpickled!',))\n\
         torch.save({'w': torch.zeros(2), 'evil': Payload()}, 'evil.pth')\n",
        dir.path(),
    );
    let out = convert(dir.path(), &["evil.pth", "evil.safetensors"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("unpickled!"), "the payload ran: {stdout}");
    assert!(stderr.contains("weights only"), "{stderr}");
    assert!(!dir.path().join("evil.safetensors").exists());
}
