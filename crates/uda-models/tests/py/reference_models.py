"""PyTorch definitions of the three networks, written after the reference repositories, for the
parity tests (tests/parity_*.rs) and the step benchmark (scripts/bench/step*).

Plain torch only (no torchvision), so the benchmark also runs on a GPU machine whose Python has
just torch. Module and parameter names equal the references' state_dict keys, which are also
the variable names of crates/uda-models:
- DeepLabV2-ResNet101: FDA model/deeplab.py (Caffe-style DeepLab: stride on the bottleneck's
  first 1x1 conv, ceil-mode stem pool, layer3/4 dilated 2/4 in every block, Classifier_Module
  summing four 3x3 convs with dilation 6/12/18/24).
- FCN-8s-VGG16: FDA model/fcn8s.py (wkentaro's at-once FCN-8s).
- ENet: davidtvs/PyTorch-ENet models/enet.py.
Each forward returns (logits, features) with the same meaning as uda_models::SegOutput.
"""

import numpy as np
import torch
import torch.nn as nn

# ----------------------------------------------------------------------------- DeepLabV2


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ClassifierModule(nn.Module):
    def __init__(self, inplanes, dilations, num_classes):
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(inplanes, num_classes, 3, padding=d, dilation=d, bias=True) for d in dilations
        )
        for m in self.conv2d_list:
            m.weight.data.normal_(0, 0.01)

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


class DeepLabV2(nn.Module):
    def __init__(self, num_classes=19):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 23, dilation=2)
        self.layer4 = self._make_layer(512, 3, dilation=4)
        self.layer5 = ClassifierModule(2048, [6, 12, 18, 24], num_classes)

    def _make_layer(self, planes, blocks, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4 or dilation in (2, 4):
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        layers = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.layer5(features), features

    def head_parameters(self):
        return list(self.layer5.parameters())


def freeze_bn(model):
    """FDA-style frozen BatchNorm as uda-models implements it: stored statistics, no affine grads.
    Call after model.train(), which would switch BN back to batch statistics."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


# ----------------------------------------------------------------------------- FCN-8s


def upsampling_weight(channels, k):
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = np.ogrid[:k, :k]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    w = np.zeros((channels, channels, k, k), dtype=np.float64)
    w[range(channels), range(channels), :, :] = filt
    return torch.from_numpy(w).float()


VGG_CONVS = [
    [("conv1_1", 3, 64), ("conv1_2", 64, 64)],
    [("conv2_1", 64, 128), ("conv2_2", 128, 128)],
    [("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)],
    [("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)],
    [("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)],
]


class FCN8s(nn.Module):
    def __init__(self, num_classes=19):
        super().__init__()
        for stage in VGG_CONVS:
            for name, cin, cout in stage:
                setattr(self, name, nn.Conv2d(cin, cout, 3, padding=100 if name == "conv1_1" else 1))
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop = nn.Dropout2d()
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        for up in (self.upscore2, self.upscore8, self.upscore_pool4):
            up.weight.data.copy_(upsampling_weight(num_classes, up.kernel_size[0]))
            up.weight.requires_grad_(False)  # FDA never gives them to the optimiser
        for score in (self.score_fr, self.score_pool3, self.score_pool4):
            score.weight.data.zero_()
            score.bias.data.zero_()

    def forward(self, x):
        h = x
        pools = []
        for stage in VGG_CONVS:
            for name, _, _ in stage:
                h = torch.relu(getattr(self, name)(h))
            h = nn.functional.max_pool2d(h, 2, stride=2, ceil_mode=True)
            pools.append(h)
        pool3, pool4 = pools[2], pools[3]
        h = self.drop(torch.relu(self.fc6(h)))
        fc7 = self.drop(torch.relu(self.fc7(h)))
        upscore2 = self.upscore2(self.score_fr(fc7))
        s4 = self.score_pool4(pool4 * 0.01)[:, :, 5 : 5 + upscore2.size(2), 5 : 5 + upscore2.size(3)]
        upscore_pool4 = self.upscore_pool4(upscore2 + s4)
        s3 = self.score_pool3(pool3 * 0.0001)[:, :, 9 : 9 + upscore_pool4.size(2), 9 : 9 + upscore_pool4.size(3)]
        h = self.upscore8(upscore_pool4 + s3)
        return h[:, :, 31 : 31 + x.size(2), 31 : 31 + x.size(3)].contiguous(), fc7

    def head_parameters(self):
        return [p for m in (self.score_fr, self.score_pool3, self.score_pool4) for p in m.parameters()]


# ----------------------------------------------------------------------------- ENet


class InitialBlock(nn.Module):
    def __init__(self, cin, cout, relu):
        super().__init__()
        self.main_branch = nn.Conv2d(cin, cout - 3, 3, stride=2, padding=1, bias=False)
        self.ext_branch = nn.MaxPool2d(3, stride=2, padding=1)
        self.batch_norm = nn.BatchNorm2d(cout)
        self.out_prelu = nn.ReLU() if relu else nn.PReLU()

    def forward(self, x):
        return self.out_prelu(self.batch_norm(torch.cat((self.main_branch(x), self.ext_branch(x)), 1)))


class RegularBottleneck(nn.Module):
    def __init__(self, ch, kernel_size=3, padding=0, dilation=1, asymmetric=False, dropout_prob=0.0, relu=True):
        super().__init__()
        internal = ch // 4
        act = nn.ReLU() if relu else nn.PReLU()  # one module, reused at every position
        self.ext_conv1 = nn.Sequential(nn.Conv2d(ch, internal, 1, bias=False), nn.BatchNorm2d(internal), act)
        if asymmetric:
            self.ext_conv2 = nn.Sequential(
                nn.Conv2d(internal, internal, (kernel_size, 1), padding=(padding, 0), dilation=dilation, bias=False),
                nn.BatchNorm2d(internal),
                act,
                nn.Conv2d(internal, internal, (1, kernel_size), padding=(0, padding), dilation=dilation, bias=False),
                nn.BatchNorm2d(internal),
                act,
            )
        else:
            self.ext_conv2 = nn.Sequential(
                nn.Conv2d(internal, internal, kernel_size, padding=padding, dilation=dilation, bias=False),
                nn.BatchNorm2d(internal),
                act,
            )
        self.ext_conv3 = nn.Sequential(nn.Conv2d(internal, ch, 1, bias=False), nn.BatchNorm2d(ch), act)
        self.ext_regul = nn.Dropout2d(p=dropout_prob)
        self.out_prelu = act

    def forward(self, x):
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        return self.out_prelu(x + ext)


class DownsamplingBottleneck(nn.Module):
    def __init__(self, cin, cout, dropout_prob=0.0, relu=True):
        super().__init__()
        internal = cin // 4
        act = nn.ReLU() if relu else nn.PReLU()
        self.main_max1 = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.ext_conv1 = nn.Sequential(nn.Conv2d(cin, internal, 2, stride=2, bias=False), nn.BatchNorm2d(internal), act)
        self.ext_conv2 = nn.Sequential(nn.Conv2d(internal, internal, 3, padding=1, bias=False), nn.BatchNorm2d(internal), act)
        self.ext_conv3 = nn.Sequential(nn.Conv2d(internal, cout, 1, bias=False), nn.BatchNorm2d(cout), act)
        self.ext_regul = nn.Dropout2d(p=dropout_prob)
        self.out_prelu = act

    def forward(self, x):
        main, indices = self.main_max1(x)
        ext = self.ext_regul(self.ext_conv3(self.ext_conv2(self.ext_conv1(x))))
        n, ch_ext, h, w = ext.size()
        pad = torch.zeros(n, ch_ext - main.size(1), h, w, dtype=main.dtype, device=main.device)
        return self.out_prelu(torch.cat((main, pad), 1) + ext), indices


class UpsamplingBottleneck(nn.Module):
    def __init__(self, cin, cout, dropout_prob=0.0, relu=True):
        super().__init__()
        internal = cin // 4
        act = nn.ReLU() if relu else nn.PReLU()
        self.main_conv1 = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.main_unpool1 = nn.MaxUnpool2d(kernel_size=2)
        self.ext_conv1 = nn.Sequential(nn.Conv2d(cin, internal, 1, bias=False), nn.BatchNorm2d(internal), act)
        self.ext_tconv1 = nn.ConvTranspose2d(internal, internal, 2, stride=2, bias=False)
        self.ext_tconv1_bnorm = nn.BatchNorm2d(internal)
        self.ext_tconv1_activation = act
        self.ext_conv2 = nn.Sequential(nn.Conv2d(internal, cout, 1, bias=False), nn.BatchNorm2d(cout), act)
        self.ext_regul = nn.Dropout2d(p=dropout_prob)
        self.out_prelu = act

    def forward(self, x, indices, output_size):
        main = self.main_unpool1(self.main_conv1(x), indices, output_size=output_size)
        ext = self.ext_tconv1(self.ext_conv1(x), output_size=output_size)
        ext = self.ext_tconv1_activation(self.ext_tconv1_bnorm(ext))
        ext = self.ext_regul(self.ext_conv2(ext))
        return self.out_prelu(main + ext)


class ENet(nn.Module):
    def __init__(self, num_classes=19, encoder_relu=False, decoder_relu=True):
        super().__init__()
        enc, dec = encoder_relu, decoder_relu
        self.initial_block = InitialBlock(3, 16, relu=enc)
        self.downsample1_0 = DownsamplingBottleneck(16, 64, dropout_prob=0.01, relu=enc)
        for i in range(1, 5):
            setattr(self, f"regular1_{i}", RegularBottleneck(64, padding=1, dropout_prob=0.01, relu=enc))
        self.downsample2_0 = DownsamplingBottleneck(64, 128, dropout_prob=0.1, relu=enc)
        self.stage23 = []
        for stage, first in ((2, 1), (3, 0)):
            specs = [
                ("regular", dict(padding=1)),
                ("dilated", dict(dilation=2, padding=2)),
                ("asymmetric", dict(kernel_size=5, padding=2, asymmetric=True)),
                ("dilated", dict(dilation=4, padding=4)),
                ("regular", dict(padding=1)),
                ("dilated", dict(dilation=8, padding=8)),
                ("asymmetric", dict(kernel_size=5, padding=2, asymmetric=True)),
                ("dilated", dict(dilation=16, padding=16)),
            ]
            for i, (kind, kw) in enumerate(specs):
                name = f"{kind}{stage}_{i + first}"
                setattr(self, name, RegularBottleneck(128, dropout_prob=0.1, relu=enc, **kw))
                self.stage23.append(name)
        self.upsample4_0 = UpsamplingBottleneck(128, 64, dropout_prob=0.1, relu=dec)
        self.regular4_1 = RegularBottleneck(64, padding=1, dropout_prob=0.1, relu=dec)
        self.regular4_2 = RegularBottleneck(64, padding=1, dropout_prob=0.1, relu=dec)
        self.upsample5_0 = UpsamplingBottleneck(64, 16, dropout_prob=0.1, relu=dec)
        self.regular5_1 = RegularBottleneck(16, padding=1, dropout_prob=0.1, relu=dec)
        self.transposed_conv = nn.ConvTranspose2d(16, num_classes, 3, stride=2, padding=1, bias=False)

    def forward(self, x):
        input_size = x.size()
        x = self.initial_block(x)
        stage1_size = x.size()
        x, idx1 = self.downsample1_0(x)
        for i in range(1, 5):
            x = getattr(self, f"regular1_{i}")(x)
        stage2_size = x.size()
        x, idx2 = self.downsample2_0(x)
        for name in self.stage23:
            x = getattr(self, name)(x)
        features = x
        x = self.upsample4_0(x, idx2, output_size=stage2_size)
        x = self.regular4_2(self.regular4_1(x))
        x = self.upsample5_0(x, idx1, output_size=stage1_size)
        x = self.regular5_1(x)
        return self.transposed_conv(x, output_size=input_size), features

    def head_parameters(self):
        return list(self.transposed_conv.parameters())


def build(backbone, num_classes=19):
    return {"deeplabv2-resnet101": DeepLabV2, "fcn8s-vgg16": FCN8s, "enet": ENet}[backbone](num_classes)
