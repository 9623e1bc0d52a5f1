"""Writes what a parity test (tests/parity_*.rs) compares against: random weights in the naming
the Rust side loads, a random input, and the PyTorch outputs and gradients.

    python parity.py {deeplabv2-resnet101|fcn8s-vgg16|enet} OUT_DIR [--height H --width W]

OUT_DIR receives
- weights files: deeplab: trunk.safetensors (torchvision resnet101 state_dict, fc and
  num_batches_tracked included) + head.safetensors (native); fcn8s: trunk.safetensors
  (torchvision vgg16 state_dict, classifier.6 included) + head.safetensors (native); enet:
  weights.safetensors (native, with PyTorch-ENet's repeated PReLU entries);
- io.safetensors: input, loss_weight, logits, features and grad.<param> for a few parameters,
  where the loss is sum(logits * loss_weight) in eval mode.
"""

import argparse
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402

NUM_CLASSES = 19


def calibrate_bn(model, shape, steps=3):
    """Running statistics from a few batches (cumulative average), then non-trivial affine
    parameters, so that eval-mode BatchNorm neither is the identity nor blows activations up."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(2, *shape[1:]))
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.momentum = 0.1
    model.eval()


def plain(sd):
    """state_dict with shared tensors cloned apart (safetensors refuses aliases)."""
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def deeplab(out, shape):
    tv = torchvision.models.resnet101(weights=None)
    model = rm.DeepLabV2(NUM_CLASSES)
    missing, unexpected = model.load_state_dict(tv.state_dict(), strict=False)
    # torchvision's names and shapes are the DeepLab trunk's: only the heads differ.
    assert all(k.startswith("layer5.") for k in missing), missing
    assert all(k.startswith("fc.") for k in unexpected), unexpected
    calibrate_bn(model, shape)
    with torch.no_grad():
        for conv in model.layer5.conv2d_list:
            conv.bias.normal_(0.0, 0.1)
    ours = model.state_dict()
    trunk = {k: (ours[k] if k in ours else v) for k, v in tv.state_dict().items()}
    save_file(plain(trunk), os.path.join(out, "trunk.safetensors"))
    save_file(plain({k: v for k, v in ours.items() if k.startswith("layer5.")}), os.path.join(out, "head.safetensors"))
    return model, ["conv1.weight", "layer4.2.conv3.weight", "layer5.conv2d_list.2.weight"]


def vgg_into_fcn(vgg, fcn):
    """torchvision vgg16 -> FCN-8s, the usual surgery (classifier layers become convolutions)."""
    convs = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    names = [name for stage in rm.VGG_CONVS for name, _, _ in stage]
    with torch.no_grad():
        for conv, name in zip(convs, names):
            getattr(fcn, name).weight.copy_(conv.weight)
            getattr(fcn, name).bias.copy_(conv.bias)
        for i, fc in ((0, fcn.fc6), (3, fcn.fc7)):
            fc.weight.copy_(vgg.classifier[i].weight.view_as(fc.weight))
            fc.bias.copy_(vgg.classifier[i].bias)


def fcn8s(out, shape):
    vgg = torchvision.models.vgg16(weights=None)
    model = rm.FCN8s(NUM_CLASSES)
    vgg_into_fcn(vgg, model)
    model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        # Random score layers, scaled so that the fc7, pool4 and pool3 paths all matter.
        for s in (model.score_fr, model.score_pool4, model.score_pool3):
            s.weight.normal_(0.0, 0.01)
            s.bias.normal_(0.0, 0.01)
        h = x
        feats = {}
        for i, stage in enumerate(rm.VGG_CONVS):
            for name, _, _ in stage:
                h = torch.relu(getattr(model, name)(h))
            h = torch.nn.functional.max_pool2d(h, 2, stride=2, ceil_mode=True)
            feats[i] = h
        fc7 = torch.relu(model.fc7(torch.relu(model.fc6(h))))
        target = model.score_fr(fc7).std()
        for s, pool, scale in ((model.score_pool4, feats[3], 0.01), (model.score_pool3, feats[2], 1e-4)):
            s.weight.mul_(target / s(pool * scale).std())
    save_file(plain(vgg.state_dict()), os.path.join(out, "trunk.safetensors"))
    head = {k: v for k, v in model.state_dict().items() if k.startswith(("score_", "upscore"))}
    save_file(plain(head), os.path.join(out, "head.safetensors"))
    return model, ["conv1_1.weight", "conv5_3.weight", "fc6.bias", "score_pool3.weight", "score_fr.bias"]


def enet(out, shape):
    model = rm.ENet(NUM_CLASSES)
    calibrate_bn(model, shape)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.0, 0.5)
    save_file(plain(model.state_dict()), os.path.join(out, "weights.safetensors"))
    return model, ["initial_block.main_branch.weight", "asymmetric2_3.ext_conv2.3.weight", "transposed_conv.weight"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("backbone", choices=["deeplabv2-resnet101", "fcn8s-vgg16", "enet"])
    ap.add_argument("out")
    ap.add_argument("--height", type=int, default=65)
    ap.add_argument("--width", type=int, default=97)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    shape = (1, 3, args.height, args.width)
    build = {"deeplabv2-resnet101": deeplab, "fcn8s-vgg16": fcn8s, "enet": enet}[args.backbone]
    model, grad_names = build(args.out, shape)

    model.eval()
    x = torch.randn(*shape)
    logits, features = model(x)
    weight = torch.randn_like(logits)
    (logits * weight).sum().backward()
    params = dict(model.named_parameters())
    io = {"input": x, "loss_weight": weight, "logits": logits, "features": features}
    for name in grad_names:
        io[f"grad.{name}"] = params[name].grad
    save_file(plain(io), os.path.join(args.out, "io.safetensors"))
    print(f"{args.backbone}: logits {tuple(logits.shape)} features {tuple(features.shape)}")


if __name__ == "__main__":
    main()
