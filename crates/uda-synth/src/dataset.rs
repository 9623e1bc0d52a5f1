//! Splits, their file layouts (the real GTA5 and Cityscapes ones), and the generator that maps
//! (seed, split, index) to an image and its label-id map.

use crate::SynthError;
use crate::appearance::{Domain, TargetStyle, finish};
use crate::noise::rng_for;
use crate::params::SynthParams;
use crate::render::NEUTRAL_PALETTE;
use crate::scene::Scene;
use std::path::PathBuf;
use uda_data::classes::LABEL_TO_TRAIN;

/// Fake city names of the Cityscapes-layout train split.
pub const TRAIN_CITIES: [&str; 3] = ["synthburg", "pixelstadt", "rasterheim"];
/// Fake city names of the Cityscapes-layout val split.
pub const VAL_CITIES: [&str; 2] = ["valdorf", "testhausen"];
/// Cityscapes annotates frame 19 of each 30-frame snippet; we mimic that.
const FRAME: usize = 19;

/// One of the three image sets the benchmark writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Labelled source images, `gta5/`.
    Source,
    /// Target training images, `cityscapes/*/train/`.
    TargetTrain,
    /// Target evaluation images, `cityscapes/*/val/`.
    TargetVal,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Source, Split::TargetTrain, Split::TargetVal];

    pub fn domain(self) -> Domain {
        match self {
            Split::Source => Domain::Source,
            Split::TargetTrain | Split::TargetVal => Domain::Target,
        }
    }

    /// Name used in metrics, tables and preview file names.
    pub fn name(self) -> &'static str {
        match self {
            Split::Source => "gta5",
            Split::TargetTrain => "cityscapes_train",
            Split::TargetVal => "cityscapes_val",
        }
    }

    pub fn count(self, params: &SynthParams) -> usize {
        match self {
            Split::Source => params.n_source,
            Split::TargetTrain => params.n_target_train,
            Split::TargetVal => params.n_target_val,
        }
    }

    fn tag(self) -> u64 {
        match self {
            Split::Source => Domain::Source.tag(),
            Split::TargetTrain => Domain::Target.tag() ^ 0x7472,
            Split::TargetVal => Domain::Target.tag() ^ 0x7661,
        }
    }

    fn cityscapes(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Split::Source => None,
            Split::TargetTrain => Some(("train", &TRAIN_CITIES)),
            Split::TargetVal => Some(("val", &VAL_CITIES)),
        }
    }

    /// The Cityscapes stem `{city}_{seq:06}_{frame:06}` of an image (cities take turns).
    fn stem(cities: &[&str], index: usize) -> (String, String) {
        let city = cities[index % cities.len()];
        (
            city.to_string(),
            format!("{city}_{:06}_{FRAME:06}", index / cities.len()),
        )
    }

    /// Image path relative to the output folder.
    pub fn image_path(self, index: usize) -> PathBuf {
        match self.cityscapes() {
            None => PathBuf::from(format!("gta5/images/{index:05}.png")),
            Some((split, cities)) => {
                let (city, stem) = Self::stem(cities, index);
                PathBuf::from(format!(
                    "cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"
                ))
            }
        }
    }

    /// Label (Cityscapes label ids) path relative to the output folder.
    pub fn label_path(self, index: usize) -> PathBuf {
        match self.cityscapes() {
            None => PathBuf::from(format!("gta5/labels/{index:05}.png")),
            Some((split, cities)) => {
                let (city, stem) = Self::stem(cities, index);
                PathBuf::from(format!(
                    "cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"
                ))
            }
        }
    }
}

/// One generated image with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub width: usize,
    pub height: usize,
    /// Interleaved 8-bit RGB, row-major.
    pub rgb: Vec<u8>,
    /// Cityscapes label ids (as stored in the label PNGs).
    pub label_ids: Vec<u8>,
}

impl Sample {
    /// Train ids (255 where the id is not evaluated).
    pub fn train_ids(&self) -> Vec<u8> {
        self.label_ids
            .iter()
            .map(|&l| LABEL_TO_TRAIN[l as usize])
            .collect()
    }
}

/// Deterministic generator: every sample is a pure function of (params, split, index).
#[derive(Debug, Clone)]
pub struct Generator {
    params: SynthParams,
    style: TargetStyle,
}

impl Generator {
    pub fn new(params: &SynthParams) -> Result<Self, SynthError> {
        params.validate()?;
        Ok(Self {
            params: params.clone(),
            style: TargetStyle::new(params.seed, &params.shift),
        })
    }

    pub fn params(&self) -> &SynthParams {
        &self.params
    }

    /// Image `index` of `split`.
    pub fn sample(&self, split: Split, index: usize) -> Sample {
        self.sample_in_look(split, index, split.domain())
    }

    /// The scene of (`split`, `index`) in the look of `look` (for previews that show the pure
    /// appearance shift on one scene; the layout stays that of `split`).
    pub fn sample_in_look(&self, split: Split, index: usize, look: Domain) -> Sample {
        let p = &self.params;
        let seed_of = |purpose: u64| rng_for(&[p.seed, split.tag(), index as u64, purpose]);
        let layout_shift = if split.domain() == Domain::Target {
            p.shift.layout as f32
        } else {
            0.0
        };
        let scene = Scene::sample(
            &mut seed_of(1),
            p.width,
            p.height,
            layout_shift,
            p.thing_depth_scale as f32,
        );
        let palette = if look == Domain::Target {
            &self.style.palette
        } else {
            &NEUTRAL_PALETTE
        };
        let canvas = scene.render(palette);
        let rgb = finish(&canvas, look, &p.shift, &self.style, &mut seed_of(2));
        Sample {
            width: p.width,
            height: p.height,
            rgb,
            label_ids: canvas.labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_real_layouts() {
        assert_eq!(
            Split::Source.image_path(7),
            PathBuf::from("gta5/images/00007.png")
        );
        assert_eq!(
            Split::Source.label_path(7),
            PathBuf::from("gta5/labels/00007.png")
        );
        assert_eq!(
            Split::TargetTrain.image_path(4),
            PathBuf::from(
                "cityscapes/leftImg8bit/train/pixelstadt/pixelstadt_000001_000019_leftImg8bit.png"
            )
        );
        assert_eq!(
            Split::TargetVal.label_path(3),
            PathBuf::from(
                "cityscapes/gtFine/val/testhausen/testhausen_000001_000019_gtFine_labelIds.png"
            )
        );
    }

    #[test]
    fn paths_are_unique_within_a_split() {
        for split in Split::ALL {
            let paths: std::collections::HashSet<_> =
                (0..500).map(|i| split.image_path(i)).collect();
            assert_eq!(paths.len(), 500);
        }
    }

    #[test]
    fn look_changes_pixels_not_labels() {
        let params = SynthParams {
            height: 64,
            width: 96,
            ..SynthParams::default()
        };
        let g = Generator::new(&params).unwrap();
        let a = g.sample_in_look(Split::Source, 2, Domain::Source);
        let b = g.sample_in_look(Split::Source, 2, Domain::Target);
        assert_eq!(a.label_ids, b.label_ids);
        assert_ne!(a.rgb, b.rgb);
        assert_eq!(g.sample(Split::Source, 2), a);
    }

    #[test]
    fn nearer_things_cover_more_pixels_of_each_thin_class() {
        use crate::scene::tid;
        let share = |thing_depth_scale: f64| {
            let g = Generator::new(&SynthParams {
                height: 96,
                width: 192,
                thing_depth_scale,
                ..SynthParams::default()
            })
            .unwrap();
            let mut counts = [0usize; 4];
            for i in 0..40 {
                for t in g.sample(Split::Source, i).train_ids() {
                    let thin = [tid::POLE, tid::LIGHT, tid::SIGN, tid::PERSON];
                    if let Some(k) = thin.iter().position(|&c| c == t) {
                        counts[k] += 1;
                    }
                }
            }
            counts
        };
        let (far, near) = (share(1.0), share(0.5));
        for k in 0..4 {
            assert!(
                near[k] as f64 > 1.3 * far[k] as f64,
                "class {k}: {} px at scale 0.5 against {} at 1",
                near[k],
                far[k]
            );
        }
        let bad = SynthParams {
            thing_depth_scale: 0.1,
            ..SynthParams::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("thing_depth_scale"), "{e}");
    }
}
