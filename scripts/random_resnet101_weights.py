"""Stand-in for ImageNet ResNet-101 weights, in torchvision's naming, for running the real-data
recipe without them (its toy-scale test, the GPU timing script): torchvision's own random init,
with BatchNorm statistics gathered on ImageNet-normalised noise so that frozen BatchNorm (the
recipe's setting) sees inputs on the scale real ImageNet weights would.
Usage: random_resnet101_weights.py OUT.safetensors"""
import sys
import torch
import torchvision
from safetensors.torch import save_file

torch.manual_seed(0)
m = torchvision.models.resnet101()
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.momentum = None  # cumulative average over the batches below
m.train()
with torch.no_grad():
    m(torch.randn(4, 3, 64, 128))
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[1])
