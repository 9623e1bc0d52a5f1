//! Per-split statistics: class pixel fractions, how often each class appears, colour and
//! contrast. They document the benchmark (metrics.json, class_stats.parquet) and let tests
//! check that domains differ in appearance while their label statistics stay close.

use crate::SynthError;
use crate::dataset::{Sample, Split};
use arrow::array::{ArrayRef, Float64Array, StringArray, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uda_data::classes::{CLASSES, IGNORE, NUM_CLASSES};

/// Statistics of one image.
#[derive(Debug, Clone, Default)]
pub struct ImageStats {
    /// Pixels per train id; index [`NUM_CLASSES`] counts ignored pixels.
    pub class_pixels: [u64; NUM_CLASSES + 1],
    pub mean_rgb: [f64; 3],
    /// Standard deviation of luma (a contrast measure).
    pub luma_std: f64,
}

impl ImageStats {
    pub fn of(sample: &Sample) -> Self {
        let mut class_pixels = [0u64; NUM_CLASSES + 1];
        for t in sample.train_ids() {
            let k = if t == IGNORE { NUM_CLASSES } else { t as usize };
            class_pixels[k] += 1;
        }
        let n = (sample.width * sample.height) as f64;
        let mut sum = [0.0f64; 3];
        let (mut l1, mut l2) = (0.0f64, 0.0f64);
        for px in sample.rgb.chunks_exact(3) {
            for k in 0..3 {
                sum[k] += px[k] as f64;
            }
            let luma = 0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64;
            l1 += luma;
            l2 += luma * luma;
        }
        let mean_l = l1 / n;
        Self {
            class_pixels,
            mean_rgb: sum.map(|s| s / n),
            luma_std: (l2 / n - mean_l * mean_l).max(0.0).sqrt(),
        }
    }
}

/// Aggregated statistics of one split (summed in index order, so bit-identical across runs).
#[derive(Debug, Clone)]
pub struct SplitStats {
    pub split: Split,
    pub images: usize,
    pub class_pixels: [u64; NUM_CLASSES + 1],
    /// Images in which each class occurs at all.
    pub images_with: [u64; NUM_CLASSES + 1],
    pub mean_rgb: [f64; 3],
    pub mean_luma_std: f64,
}

impl SplitStats {
    pub fn aggregate(split: Split, per_image: &[ImageStats]) -> Self {
        let mut class_pixels = [0u64; NUM_CLASSES + 1];
        let mut images_with = [0u64; NUM_CLASSES + 1];
        let mut rgb = [0.0f64; 3];
        let mut luma_std = 0.0;
        for s in per_image {
            for k in 0..=NUM_CLASSES {
                class_pixels[k] += s.class_pixels[k];
                images_with[k] += u64::from(s.class_pixels[k] > 0);
            }
            for (acc, v) in rgb.iter_mut().zip(s.mean_rgb) {
                *acc += v;
            }
            luma_std += s.luma_std;
        }
        let n = per_image.len().max(1) as f64;
        Self {
            split,
            images: per_image.len(),
            class_pixels,
            images_with,
            mean_rgb: rgb.map(|v| v / n),
            mean_luma_std: luma_std / n,
        }
    }

    /// Fraction of all pixels per train id (index [`NUM_CLASSES`]: ignored).
    pub fn pixel_fractions(&self) -> [f64; NUM_CLASSES + 1] {
        let total = self.class_pixels.iter().sum::<u64>().max(1) as f64;
        self.class_pixels.map(|c| c as f64 / total)
    }

    /// Fraction of images containing each train id.
    pub fn image_fractions(&self) -> [f64; NUM_CLASSES + 1] {
        let n = self.images.max(1) as f64;
        self.images_with.map(|c| c as f64 / n)
    }

    pub fn classes_present(&self) -> usize {
        self.class_pixels[..NUM_CLASSES]
            .iter()
            .filter(|&&c| c > 0)
            .count()
    }
}

fn class_name(k: usize) -> &'static str {
    CLASSES.get(k).map_or("ignore", |c| c.name)
}

fn round4(v: f64) -> serde_json::Value {
    serde_json::json!((v * 1e4).round() / 1e4)
}

/// Flat metrics for `metrics.json` (per split: counts, colour, contrast, and the pixel and image
/// fractions of every class that occurs).
pub fn metrics(stats: &[SplitStats]) -> BTreeMap<String, serde_json::Value> {
    let mut m = BTreeMap::new();
    for s in stats {
        let n = s.split.name();
        m.insert(format!("{n}.images"), serde_json::json!(s.images));
        m.insert(
            format!("{n}.classes_present"),
            serde_json::json!(s.classes_present()),
        );
        for (k, c) in ["r", "g", "b"].iter().enumerate() {
            m.insert(format!("{n}.mean_{c}"), round4(s.mean_rgb[k]));
        }
        m.insert(format!("{n}.luma_std"), round4(s.mean_luma_std));
        let (pf, imf) = (s.pixel_fractions(), s.image_fractions());
        for k in 0..=NUM_CLASSES {
            if s.class_pixels[k] > 0 {
                m.insert(
                    format!("{n}.pixel_fraction.{}", class_name(k)),
                    round4(pf[k]),
                );
                m.insert(
                    format!("{n}.image_fraction.{}", class_name(k)),
                    round4(imf[k]),
                );
            }
        }
    }
    m
}

/// Writes `class_stats.parquet`: one row per (split, train id incl. 255 "ignore") with
/// `class_id, class_name, domain, pixel_fraction, image_fraction`.
pub fn write_class_stats(path: &Path, stats: &[SplitStats]) -> Result<(), SynthError> {
    let (mut ids, mut names, mut domains, mut pf, mut imf) =
        (vec![], vec![], vec![], vec![], vec![]);
    for s in stats {
        let (p, i) = (s.pixel_fractions(), s.image_fractions());
        for k in 0..=NUM_CLASSES {
            ids.push(if k == NUM_CLASSES { IGNORE } else { k as u8 });
            names.push(class_name(k));
            domains.push(s.split.name());
            pf.push(p[k]);
            imf.push(i[k]);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("class_id", DataType::UInt8, false),
        Field::new("class_name", DataType::Utf8, false),
        Field::new("domain", DataType::Utf8, false),
        Field::new("pixel_fraction", DataType::Float64, false),
        Field::new("image_fraction", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt8Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(domains)),
        Arc::new(Float64Array::from(pf)),
        Arc::new(Float64Array::from(imf)),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(|e| SynthError::Table {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    uda_data::table::write_parquet(path, &batch)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_tiny_sample() {
        let sample = Sample {
            width: 2,
            height: 1,
            rgb: vec![0, 0, 0, 255, 255, 255],
            label_ids: vec![7, 1],
        };
        let s = ImageStats::of(&sample);
        assert_eq!(s.class_pixels[0], 1);
        assert_eq!(s.class_pixels[NUM_CLASSES], 1);
        assert_eq!(s.mean_rgb, [127.5; 3]);
        assert!((s.luma_std - 127.5).abs() < 1e-6);
        let agg = SplitStats::aggregate(Split::Source, &[s.clone(), s]);
        assert_eq!(agg.images_with[0], 2);
        assert_eq!(agg.pixel_fractions()[0], 0.5);
        assert_eq!(agg.classes_present(), 1);
        let m = metrics(&[agg]);
        assert_eq!(m["gta5.pixel_fraction.road"], serde_json::json!(0.5));
        assert_eq!(m["gta5.pixel_fraction.ignore"], serde_json::json!(0.5));
    }
}
