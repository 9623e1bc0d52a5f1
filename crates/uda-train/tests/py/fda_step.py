"""One training step of FDA's train.py (github.com/YanchaoYang/FDA), transcribed in plain
PyTorch on the reference DeepLabV2 of crates/uda-models/tests/py/reference_models.py, for
tests/fda_step.rs.

    python fda_step.py OUT_DIR --bn {fda|frozen} --listing {unique|fda-listing}

What FDA's code does, and this script with it:
- `model.train()`, with `requires_grad = False` on every BatchNorm's affine parameters
  (model/deeplab.py): training-mode BatchNorm (batch statistics; running statistics updated by
  each forward). `--bn frozen` instead puts BatchNorm in eval mode (stored statistics).
- Source pass: logits upsampled (bilinear, align_corners=True) to the label size, CE ignoring 255.
  Target pass: robust entropy on the stride-8 logits *before* upsampling:
  ent = -sum(P log P) / 2.9444; loss_ent = mean((ent**2 + 1e-8) ** ita), ita = 2.
- loss_all = loss_seg_src + entW * loss_ent_trg (entW = 0.005 scaled up here so the term matters).
- optim.SGD(model.optim_parameters(args), lr, momentum=0.9, weight_decay=5e-4): the 1x group from
  get_1x_lr_params_NOscale (every parameter of every module under conv1, bn1, layer1..4, each
  module's parameters() recursive, so repeated), the 10x group layer5. `--listing unique`
  lists each tensor once. foreach=False: the for-loop SGD of FDA's 2020 PyTorch.

Writes weights.safetensors (initial state_dict), io.safetensors (inputs), out.safetensors
(ce, ent, total, and every parameter and running statistic after the step).
"""

import argparse
import os
import sys
import warnings

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "uda-models", "tests", "py"))
import reference_models as rm  # noqa: E402


def fda_1x_params(model):
    """get_1x_lr_params_NOscale, as FDA writes it."""
    b = [model.conv1, model.bn1, model.layer1, model.layer2, model.layer3, model.layer4]
    for i in range(len(b)):
        for j in b[i].modules():
            for k in j.parameters():
                if k.requires_grad:
                    yield k


def robust_entropy(x, ita):
    P = F.softmax(x, dim=1)
    logP = F.log_softmax(x, dim=1)
    ent = -1.0 * (P * logP).sum(dim=1)
    ent = ent / 2.9444
    ent = ent ** 2.0 + 1e-8
    ent = ent ** ita
    return ent.mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bn", choices=["fda", "frozen"], required=True)
    ap.add_argument("--listing", choices=["unique", "fda-listing"], required=True)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--ent-weight", type=float, default=0.5)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    model = rm.DeepLabV2(19)
    # Running statistics of a few random batches and non-trivial affine parameters, so that
    # eval-mode BatchNorm (--bn frozen) keeps activations in range through 33 blocks.
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.train()
    for m in bns:
        m.momentum = None
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(1, 3, 49, 65) * 50)
        for m in bns:
            m.momentum = 0.1
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.1)
            m.num_batches_tracked.zero_()
        for conv in model.layer5.conv2d_list:
            conv.bias.normal_(0.0, 0.1)
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              os.path.join(args.out, "weights.safetensors"))

    # Inputs as FDA feeds them: mean-subtracted BGR in 0..255 units.
    src = torch.randn(1, 3, 49, 65) * 50
    trg = torch.randn(1, 3, 49, 65) * 50
    lbl = torch.randint(0, 19, (1, 49, 65))
    lbl[:, :5] = 255
    save_file({"source": src, "target": trg, "labels": lbl}, os.path.join(args.out, "io.safetensors"))

    # FDA's model set-up.
    for m in bns:
        for p in m.parameters():
            p.requires_grad = False
    model.train()
    if args.bn == "frozen":
        for m in bns:
            m.eval()
    ones = list(fda_1x_params(model))
    if args.listing == "unique":
        ones = list({id(p): p for p in ones}.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimizer contains a parameter group with duplicate parameters"
        opt = torch.optim.SGD(
            [{"params": ones, "lr": args.lr}, {"params": model.layer5.parameters(), "lr": 10 * args.lr}],
            lr=args.lr, momentum=0.9, weight_decay=5e-4, foreach=False)

    # One iteration of train.py's loop.
    opt.zero_grad()
    h, w = lbl.shape[1:]
    x = model(src)[0]
    up = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=True)
    loss_seg_src = F.cross_entropy(up, lbl, ignore_index=255)
    xt = model(trg)[0]
    loss_ent_trg = robust_entropy(xt, 2.0)
    loss_all = loss_seg_src + args.ent_weight * loss_ent_trg
    loss_all.backward()
    opt.step()

    out = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    out["ce"] = loss_seg_src.detach().reshape(1)
    out["ent"] = loss_ent_trg.detach().reshape(1)
    out["total"] = loss_all.detach().reshape(1)
    save_file(out, os.path.join(args.out, "out.safetensors"))


if __name__ == "__main__":
    main()
