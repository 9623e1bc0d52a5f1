"""Yardstick for crates/uda-train/examples/device_parity.rs: how far PyTorch's own reference
models (crates/uda-models/tests/py/reference_models.py) disagree between CPU and CUDA, with
cuDNN's TF32 allowed (PyTorch's default) and disallowed. Same protocol: weights jittered by
0.01·N(0,1), evaluation-mode forward of a (2, 3, 128, 256) normal input, cross-entropy on random
labels (class 18 ignored), relative L2 of logits and of all gradients as one vector.
Usage: device_parity_torch.py [REFERENCE_MODELS_DIR]"""
import os, sys
import torch
import torch.nn.functional as F

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
import reference_models as rm  # noqa: E402


def step(model, x, y):
    model.zero_grad()
    logits = model(x)
    logits = logits[0] if isinstance(logits, tuple) else logits
    up = F.interpolate(logits, size=y.shape[-2:], mode="bilinear", align_corners=True)
    loss = F.cross_entropy(up, y, ignore_index=255)
    loss.backward()
    grads = torch.cat([p.grad.flatten().double().cpu() for p in model.parameters() if p.grad is not None])
    return logits.detach().double().cpu(), loss.item(), grads


def rel(a, b):
    return ((a - b).norm() / a.norm().clamp_min(1e-300)).item()


torch.manual_seed(1)
x = torch.randn(2, 3, 128, 256)
y = torch.randint(0, 19, (2, 128, 256))
y[y == 18] = 255
print(f"{'backbone':<22} {'tf32':>5} {'logits rel':>12} {'CE cpu / cuda':>22} {'grad rel':>10}")
for name in ["deeplabv2-resnet101", "fcn8s-vgg16", "enet"]:
    torch.manual_seed(0)
    model = rm.build(name).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ref = step(model, x, y)
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run, all zeros
    model = model.to(dev)
    for tf32 in (True, False):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        got = step(model, x.to(dev), y.to(dev))
        print(f"{name:<22} {str(tf32):>5} {rel(ref[0], got[0]):>12.2e} {ref[1]:>10.6f} / {got[1]:<10.6f} {rel(ref[2], got[2]):>10.2e}")
    model = model.cpu()
