//! How tensor names of foreign checkpoints map onto the model's variable names.

use serde::{Deserialize, Serialize};

/// Where a weight file comes from, hence how its tensor names map onto [`crate::SegNet`]
/// variables (which are the reference repositories' own `state_dict` keys).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum WeightNaming {
    /// torchvision's `resnet101` / `vgg16` ImageNet `state_dict` (trunk only): ResNet keys are
    /// ours already; VGG `features.N` become `convX_Y` and `classifier.0` / `classifier.3`
    /// become the convolutions `fc6` (reshaped to 4096×512×7×7) and `fc7`. The ImageNet
    /// classifiers (`fc`, `classifier.6`) are skipped.
    Torchvision,
    /// FDA's `DeepLab_init.pth` (trunk only): keys carry one leading component (`Scale.`) that
    /// FDA drops, and its COCO classifier `layer5` is skipped, as FDA's `Deeplab()` does with
    /// 19 classes. Unprefixed keys (an FDA training snapshot) map as they are, `layer5` included.
    FdaDeeplab,
    /// Our own names: files written by [`crate::save_safetensors`], and converted
    /// `state_dict`s of FDA's DeepLab / FCN-8s and of PyTorch-ENet.
    Native,
}

impl WeightNaming {
    pub fn name(self) -> &'static str {
        match self {
            WeightNaming::Torchvision => "torchvision",
            WeightNaming::FdaDeeplab => "fda-deeplab",
            WeightNaming::Native => "native",
        }
    }

    /// Whether the naming provides only the trunk, so that head variables are not expected.
    pub(crate) fn trunk_only(self) -> bool {
        !matches!(self, WeightNaming::Native)
    }
}

impl std::fmt::Display for WeightNaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// Load into this variable; `reshape` allows the same number of elements in another shape.
    Var { name: String, reshape: bool },
    /// Deliberately not loaded, for this reason.
    Skip(&'static str),
}

/// Variables of the classifier heads; every other variable belongs to a trunk.
pub(crate) fn is_head_var(name: &str) -> bool {
    ["layer5.", "score_", "upscore", "transposed_conv."]
        .iter()
        .any(|p| name.starts_with(p))
}

/// torchvision `vgg16.features` indices of the 13 convolutions, in order.
const VGG_FEATURE_INDICES: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];

fn vgg_conv_name(index: usize) -> Option<&'static str> {
    let pos = VGG_FEATURE_INDICES.iter().position(|&i| i == index)?;
    crate::vgg::CONVS
        .iter()
        .flat_map(|s| s.iter())
        .nth(pos)
        .map(|c| c.0)
}

fn var(name: impl Into<String>) -> Mapped {
    Mapped::Var {
        name: name.into(),
        reshape: false,
    }
}

fn torchvision(key: &str) -> Mapped {
    if key.starts_with("fc.") || key.starts_with("classifier.6.") {
        return Mapped::Skip("ImageNet classifier");
    }
    if let Some(rest) = key.strip_prefix("features.")
        && let Some((index, param)) = rest.split_once('.')
        && let Some(conv) = index.parse().ok().and_then(vgg_conv_name)
    {
        return var(format!("{conv}.{param}"));
    }
    for (fc, ours) in [("classifier.0.", "fc6."), ("classifier.3.", "fc7.")] {
        if let Some(param) = key.strip_prefix(fc) {
            return Mapped::Var {
                name: format!("{ours}{param}"),
                reshape: true,
            };
        }
    }
    var(key)
}

const DEEPLAB_TOP: [&str; 7] = [
    "conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "layer5",
];

fn fda_deeplab(key: &str) -> Mapped {
    let first = key.split('.').next().unwrap_or_default();
    if DEEPLAB_TOP.contains(&first) {
        return var(key);
    }
    match key.split_once('.') {
        Some((_, rest)) if rest.starts_with("layer5.") => {
            Mapped::Skip("classifier of the DeepLab init")
        }
        Some((_, rest)) => var(rest),
        None => var(key),
    }
}

pub(crate) fn map_key(naming: WeightNaming, key: &str) -> Mapped {
    if key.ends_with(".num_batches_tracked") {
        return Mapped::Skip("BatchNorm step counter (unused with momentum 0.1)");
    }
    match naming {
        WeightNaming::Torchvision => torchvision(key),
        WeightNaming::FdaDeeplab => fda_deeplab(key),
        WeightNaming::Native => var(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(name: &str) -> Mapped {
        var(name)
    }

    #[test]
    fn torchvision_vgg_keys_map_onto_fcn_convs() {
        let n = WeightNaming::Torchvision;
        assert_eq!(map_key(n, "features.0.weight"), to("conv1_1.weight"));
        assert_eq!(map_key(n, "features.2.bias"), to("conv1_2.bias"));
        assert_eq!(map_key(n, "features.14.weight"), to("conv3_3.weight"));
        assert_eq!(map_key(n, "features.28.bias"), to("conv5_3.bias"));
        assert_eq!(
            map_key(n, "classifier.0.weight"),
            Mapped::Var {
                name: "fc6.weight".into(),
                reshape: true
            }
        );
        assert_eq!(
            map_key(n, "classifier.3.bias"),
            Mapped::Var {
                name: "fc7.bias".into(),
                reshape: true
            }
        );
        assert!(matches!(map_key(n, "classifier.6.weight"), Mapped::Skip(_)));
        // Index 1 is a ReLU in torchvision: no such conv, left to be reported as unexpected.
        assert_eq!(map_key(n, "features.1.weight"), to("features.1.weight"));
    }

    #[test]
    fn torchvision_resnet_keys_are_ours() {
        let n = WeightNaming::Torchvision;
        assert_eq!(
            map_key(n, "layer3.22.bn2.running_var"),
            to("layer3.22.bn2.running_var")
        );
        assert_eq!(
            map_key(n, "layer1.0.downsample.0.weight"),
            to("layer1.0.downsample.0.weight")
        );
        assert!(matches!(map_key(n, "fc.weight"), Mapped::Skip(_)));
        assert!(matches!(
            map_key(n, "bn1.num_batches_tracked"),
            Mapped::Skip(_)
        ));
    }

    #[test]
    fn fda_init_prefix_is_dropped_and_its_classifier_skipped() {
        let n = WeightNaming::FdaDeeplab;
        assert_eq!(map_key(n, "Scale.conv1.weight"), to("conv1.weight"));
        assert_eq!(
            map_key(n, "Scale.layer4.2.bn3.bias"),
            to("layer4.2.bn3.bias")
        );
        assert!(matches!(
            map_key(n, "Scale.layer5.conv2d_list.0.weight"),
            Mapped::Skip(_)
        ));
        // An FDA training snapshot: no prefix, its own 19-class head.
        assert_eq!(
            map_key(n, "layer5.conv2d_list.3.bias"),
            to("layer5.conv2d_list.3.bias")
        );
        assert_eq!(
            map_key(n, "layer2.1.conv2.weight"),
            to("layer2.1.conv2.weight")
        );
    }

    #[test]
    fn head_vars_of_every_backbone() {
        for head in [
            "layer5.conv2d_list.0.weight",
            "score_fr.bias",
            "upscore8.weight",
            "transposed_conv.weight",
        ] {
            assert!(is_head_var(head), "{head}");
        }
        for trunk in [
            "layer4.0.conv1.weight",
            "conv1_1.weight",
            "fc7.bias",
            "regular5_1.out_prelu.weight",
        ] {
            assert!(!is_head_var(trunk), "{trunk}");
        }
    }
}
