//! `preprocess-resize`: one dataset split (GTA5 or Cityscapes layout) → an ImageSet folder.
//!
//! Images are resized with a bicubic (Catmull-Rom, as Pillow's BICUBIC) or area (box) filter,
//! label maps with nearest neighbour, label ids mapped to train ids (255 = ignore). The work is
//! streamed shard by shard, with shards processed in parallel by rayon, so memory is bounded by
//! `threads × images_per_shard` images whatever the dataset size.

mod manifest;
mod process;

pub use process::{Interpolation, SampleInfo, process_sample_into};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use uda_data::datasets::{DatasetKind, LabelPolicy, list_samples};
use uda_data::imageset::{IMAGES, LABELS, MANIFEST};
use uda_data::zarr::{ArrayLayout, ImageArrayWriter};
use uda_stage::{InputSpec, OutputSpec, ParamProblem, ParamProblems, Stage, StageContext};

/// Keeps freed memory in the process instead of returning it to the kernel. Large blocks freed
/// while a shard is processed (decoder internals, zarrs' encoded chunks) otherwise make glibc
/// shrink the heap with `brk` and grow it again for the next image, paying page faults and
/// kernel page zeroing each time: measured on 48 GTA5-size images, 1 thread, 193 `brk` calls
/// without this vs 7 with it, and 29.0 vs 39.6 images/s. Memory stays bounded: freed blocks are
/// reused. (mimalloc was tried first: with transparent huge pages it purged and re-faulted 2 MB
/// pages and spent 41 % in `clear_page`.)
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only sets glibc allocator tunables; called before any thread starts.
    unsafe {
        // 32 MB is glibc's ceiling on 64-bit (a larger value is refused and, since setting
        // M_TRIM_THRESHOLD turns the dynamic threshold off, every block over 128 KB was mmapped).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Params of `preprocess-resize`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessParams {
    /// Folder layout of the `root` input: `gta5` or `cityscapes`.
    pub dataset: DatasetKind,
    /// Cityscapes split (`train`, `val`); ignored for GTA5.
    pub split: String,
    /// `required`: read label maps (error if one is missing); `none`: images only.
    pub labels: LabelPolicy,
    /// Output size `[height, width]`.
    pub size: [usize; 2],
    /// Image filter: `bicubic` (reference practice) or `area`.
    pub interpolation: Interpolation,
    /// Images per Zarr shard file.
    pub images_per_shard: usize,
    /// Keep only the first N images (by name); 0 keeps all.
    pub limit: usize,
    /// How many preview panels (image | colourised labels) to write.
    pub previews: usize,
}

impl Default for PreprocessParams {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Gta5,
            split: "train".into(),
            labels: LabelPolicy::Required,
            size: [512, 1024],
            interpolation: Interpolation::Bicubic,
            images_per_shard: uda_data::zarr::DEFAULT_IMAGES_PER_SHARD,
            limit: 0,
            previews: 4,
        }
    }
}

/// The stage.
#[derive(Debug)]
pub struct PreprocessResize;

impl Stage for PreprocessResize {
    const KIND: &'static str = "preprocess-resize";
    const DOC: &'static str = "Read a GTA5/Cityscapes split, resize, map label ids to train ids, write an ImageSet (Zarr + manifest)";
    type Params = PreprocessParams;

    fn inputs() -> Vec<InputSpec> {
        vec![InputSpec::required(
            "root",
            "dataset root folder (GTA5 or Cityscapes layout)",
        )]
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec::new(IMAGES, "(N, H, W, 3) u8 RGB"),
            OutputSpec::new(
                LABELS,
                "(N, H, W) u8 train ids, 255 = ignore (when labels are read)",
            ),
            OutputSpec::new(
                MANIFEST,
                "index, name, image_path, label_path, orig_width, orig_height, content_hash",
            ),
            OutputSpec::new("previews", "PNG panels: image | colourised labels"),
        ]
    }

    fn validate(p: &PreprocessParams) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        let [height, width] = p.size;
        problems.ensure(
            height > 0 && width > 0,
            "size",
            format!("[{height}, {width}] must be positive [height, width]"),
        );
        problems.ensure(
            p.images_per_shard > 0,
            "images_per_shard",
            "must be at least 1",
        );
        problems.into_result()
    }

    fn run(ctx: &StageContext, p: &PreprocessParams) -> anyhow::Result<()> {
        let [height, width] = p.size;
        let root = ctx.input("root")?;
        let mut samples = list_samples(p.dataset, root, &p.split, p.labels)?;
        if p.limit > 0 {
            samples.truncate(p.limit);
        }
        let n = samples.len();
        let layout = ArrayLayout {
            len: n,
            height,
            width,
            channels: 3,
            images_per_shard: p.images_per_shard,
        };
        let images = ImageArrayWriter::create(&ctx.out_path(IMAGES), layout)?;
        let labels = match p.labels {
            LabelPolicy::Required => Some(ImageArrayWriter::create(
                &ctx.out_path(LABELS),
                ArrayLayout {
                    channels: 1,
                    ..layout
                },
            )?),
            LabelPolicy::None => None,
        };
        let progress = ctx.progress("resize", n as u64);
        let ignored = std::sync::atomic::AtomicU64::new(0);
        let (image_len, label_len) = (layout.image_len(), height * width);
        // One shard per task: each task owns its shard's buffers and writes it whole.
        let rows: Vec<Vec<manifest::Row>> = (0..images.shard_count())
            .into_par_iter()
            .map(|shard| -> anyhow::Result<Vec<manifest::Row>> {
                let range = images.shard_range(shard);
                // Whole-shard buffers, zeroed by the allocator (fresh pages): samples are resized
                // straight into their slots, and a last, partial shard's padding is never touched.
                let mut img_buf = vec![0u8; p.images_per_shard * image_len];
                let mut lab_buf = labels
                    .as_ref()
                    .map(|_| vec![0u8; p.images_per_shard * label_len]);
                // Each sample's label slot, or None for every sample when labels are not read.
                let lab_slots = lab_buf
                    .iter_mut()
                    .flat_map(|b| b.chunks_mut(label_len))
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None));
                let jobs: Vec<_> = range
                    .clone()
                    .zip(img_buf.chunks_mut(image_len))
                    .zip(lab_slots)
                    .collect();
                // Images of one shard are decoded in parallel too: a dataset of one or a few
                // shards (or the last, partial one) would otherwise keep all but one thread idle.
                let infos: Vec<SampleInfo> = jobs
                    .into_par_iter()
                    .map(|((i, img), lab)| {
                        let info = process_sample_into(
                            &samples[i],
                            height,
                            width,
                            p.interpolation,
                            img,
                            lab,
                        );
                        progress.inc(1);
                        info
                    })
                    .collect::<Result<_, _>>()?;
                let rows = range
                    .zip(&infos)
                    .map(|(i, info)| {
                        ignored.fetch_add(info.ignored_pixels, Ordering::Relaxed);
                        manifest::Row::new(i, root, &samples[i], info)
                    })
                    .collect();
                images.write_shard(shard, &img_buf)?;
                if let (Some(labels), Some(lab_buf)) = (&labels, &lab_buf) {
                    labels.write_shard(shard, lab_buf)?;
                }
                Ok(rows)
            })
            .collect::<anyhow::Result<_>>()?;
        progress.finish();
        let rows: Vec<manifest::Row> = rows.into_iter().flatten().collect();
        manifest::write(&ctx.out_path(MANIFEST), &rows)?;

        let images = images.finish()?;
        let labels = labels.map(ImageArrayWriter::finish).transpose()?;
        write_previews(ctx, &images, labels.as_ref(), p.previews.min(n))?;

        let mut metrics = BTreeMap::new();
        metrics.insert("images".to_string(), serde_json::json!(n));
        metrics.insert("height".to_string(), serde_json::json!(height));
        metrics.insert("width".to_string(), serde_json::json!(width));
        if labels.is_some() {
            let fraction = ignored.into_inner() as f64 / (n * height * width).max(1) as f64;
            metrics.insert(
                "ignored_pixel_fraction".to_string(),
                serde_json::json!(fraction),
            );
        }
        ctx.write_metrics(&metrics)?;
        Ok(())
    }
}

fn write_previews(
    ctx: &StageContext,
    images: &uda_data::ImageArray,
    labels: Option<&uda_data::ImageArray>,
    count: usize,
) -> anyhow::Result<()> {
    let (h, w) = (images.height(), images.width());
    for i in 0..count {
        let img = images.read(i)?;
        let path = ctx.out_path("previews").join(format!("{i:05}.png"));
        match labels {
            Some(l) => {
                let lab = uda_data::classes::colorize(&l.read(i)?);
                uda_data::png::write_panel(&path, h, &[(w, &img), (w, &lab)])?;
            }
            None => uda_data::png::write_rgb(&path, w, h, &img)?,
        }
    }
    Ok(())
}
