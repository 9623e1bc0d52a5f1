//! `preprocess-resize`: one dataset split (GTA5 or Cityscapes layout) → an ImageSet folder.
//!
//! Images are resized with a bicubic (Catmull-Rom, as Pillow's BICUBIC) or area (box) filter,
//! label maps with nearest neighbour, label ids mapped to train ids (255 = ignore). The work is
//! streamed shard by shard, with shards processed in parallel by rayon, so memory is bounded by
//! `threads × images_per_shard` images whatever the dataset size.
//!
//! Shardable (`--shard I/N`, `--merge-shards DIR`; see `uda_stage`): the images (after `limit`)
//! are split into `N` contiguous ranges of whole Zarr shards (`images_per_shard` images), so each
//! task writes its own chunk files of `images.zarr` / `labels.zarr` and records its manifest rows
//! and ignored-pixel count in `shard.json`. The merge links the chunk files into place and
//! writes the array metadata, `manifest.parquet`, the previews and `metrics.json`: the folder is
//! byte-identical to an unsharded run's.

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
use uda_stage::shard::link_tree;
use uda_stage::{
    InputSpec, OutputSpec, ParamProblem, ParamProblems, Shard, ShardSpec, Stage, StageContext,
};

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

    const SHARDABLE: bool = true;

    fn run(ctx: &StageContext, p: &PreprocessParams) -> anyhow::Result<()> {
        let part = compute(ctx, p, ShardSpec::WHOLE)?;
        finish(ctx, p, part.items, &part.rows, part.ignored)
    }

    fn run_shard(
        ctx: &StageContext,
        p: &PreprocessParams,
        shard: ShardSpec,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(compute(ctx, p, shard)?)?)
    }

    fn merge_shards(
        ctx: &StageContext,
        p: &PreprocessParams,
        shards: &[Shard],
    ) -> anyhow::Result<()> {
        let parts = shards
            .iter()
            .map(|s| s.data::<Part>())
            .collect::<Result<Vec<_>, _>>()?;
        let items = parts.first().map_or(0, |part| part.items);
        for (shard, part) in shards.iter().zip(&parts) {
            let expected = shard.spec.range(items, p.images_per_shard);
            anyhow::ensure!(
                part.items == items
                    && (part.start..part.end) == expected
                    && part.rows.len() == expected.len(),
                "{}: shard {} holds images {}..{} of {} but should hold {expected:?} of {items}; were the shards run on the same input?",
                shard.dir.display(),
                shard.spec,
                part.start,
                part.end,
                part.items
            );
        }
        // Fresh array metadata, then every shard's chunk files (each chunk is one shard's).
        create_writers(ctx, p, items)?;
        for shard in shards {
            for name in [IMAGES, LABELS] {
                let from = shard.dir.join(name);
                if from.is_dir() {
                    link_tree(&from, &ctx.out_path(name), &|rel| {
                        rel == std::path::Path::new("zarr.json")
                    })?;
                }
            }
        }
        let rows: Vec<manifest::Row> = parts.iter().flat_map(|part| part.rows.clone()).collect();
        let ignored = parts.iter().map(|part| part.ignored).sum();
        finish(ctx, p, items, &rows, ignored)
    }
}

/// What one shard (or the whole run) computed: its images' manifest rows and ignored-pixel
/// count; the arrays' chunk files lie in its output folder.
#[derive(Debug, Serialize, Deserialize)]
struct Part {
    /// Images in the whole dataset (after `limit`).
    items: usize,
    start: usize,
    end: usize,
    rows: Vec<manifest::Row>,
    ignored: u64,
}

/// The image (and label) array writers of the whole dataset in `ctx`'s output folder.
fn create_writers(
    ctx: &StageContext,
    p: &PreprocessParams,
    n: usize,
) -> anyhow::Result<(ImageArrayWriter, Option<ImageArrayWriter>)> {
    let [height, width] = p.size;
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
    Ok((images, labels))
}

/// Resizes the images of `shard`'s range (aligned to `images_per_shard`, so each Zarr shard file
/// is written by one task) into arrays shaped for the whole dataset.
fn compute(ctx: &StageContext, p: &PreprocessParams, shard: ShardSpec) -> anyhow::Result<Part> {
    let [height, width] = p.size;
    let root = ctx.input("root")?;
    let mut samples = list_samples(p.dataset, root, &p.split, p.labels)?;
    if p.limit > 0 {
        samples.truncate(p.limit);
    }
    let n = samples.len();
    let range = shard.range(n, p.images_per_shard);
    let (images, labels) = create_writers(ctx, p, n)?;
    let progress = ctx.progress("resize", range.len() as u64);
    let ignored = std::sync::atomic::AtomicU64::new(0);
    let (image_len, label_len) = (images.layout().image_len(), height * width);
    let zarr_shards = range.start / p.images_per_shard..range.end.div_ceil(p.images_per_shard);
    // One shard per task: each task owns its shard's buffers and writes it whole.
    let rows: Vec<Vec<manifest::Row>> = zarr_shards
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
                    let info =
                        process_sample_into(&samples[i], height, width, p.interpolation, img, lab);
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
    Ok(Part {
        items: n,
        start: range.start,
        end: range.end,
        rows: rows.into_iter().flatten().collect(),
        ignored: ignored.into_inner(),
    })
}

/// What depends on every image: the manifest, the previews (of the first images) and the
/// metrics, from the complete arrays in `ctx`'s output folder.
fn finish(
    ctx: &StageContext,
    p: &PreprocessParams,
    n: usize,
    rows: &[manifest::Row],
    ignored: u64,
) -> anyhow::Result<()> {
    let [height, width] = p.size;
    manifest::write(&ctx.out_path(MANIFEST), rows)?;
    let images = uda_data::ImageArray::open(&ctx.out_path(IMAGES))?;
    let labels = match p.labels {
        LabelPolicy::Required => Some(uda_data::ImageArray::open(&ctx.out_path(LABELS))?),
        LabelPolicy::None => None,
    };
    write_previews(ctx, &images, labels.as_ref(), p.previews.min(n))?;

    let mut metrics = BTreeMap::new();
    metrics.insert("images".to_string(), serde_json::json!(n));
    metrics.insert("height".to_string(), serde_json::json!(height));
    metrics.insert("width".to_string(), serde_json::json!(width));
    if labels.is_some() {
        let fraction = ignored as f64 / (n * height * width).max(1) as f64;
        metrics.insert(
            "ignored_pixel_fraction".to_string(),
            serde_json::json!(fraction),
        );
    }
    ctx.write_metrics(&metrics)?;
    Ok(())
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
