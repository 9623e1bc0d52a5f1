"""Stand-in for ImageNet VGG16 weights, in torchvision's naming, for running the FCN-8s recipe
(pipelines/gta5-cityscapes-vgg16.yaml) without them, as its toy-scale test does: torchvision's
own random init of vgg16 (no BatchNorm, so nothing to calibrate).
Usage: random_vgg16_weights.py OUT.safetensors"""
import sys
import torch
import torchvision
from safetensors.torch import save_file

torch.manual_seed(0)
m = torchvision.models.vgg16()
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[1])
