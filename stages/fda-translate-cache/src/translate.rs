//! One direction: the images of a content set (all, or a shard's range of whole Zarr shards),
//! translated into the style of their partners from the other set, written as
//! `<out>/images.zarr` with the content array's layout.

use anyhow::Context;
use rayon::prelude::*;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;
use uda_data::imageset::{IMAGES, ImageSet};
use uda_data::zarr::ImageArrayWriter;
use uda_fda::{Amplitude, Fda};
use uda_stage::StageContext;

/// One direction of translation: the content images, the set lending its styles, and which
/// style image each content image takes (`partners[i]`).
#[derive(Debug, Clone, Copy)]
pub struct Direction<'a> {
    pub content: &'a ImageSet,
    pub style: &'a ImageSet,
    pub partners: &'a [usize],
}

/// What one direction did.
#[derive(Debug, Clone, Copy)]
pub struct DirectionStats {
    /// Images translated.
    pub images: usize,
    /// Distinct style images used.
    pub styles: usize,
    /// Style images used more than once, whose amplitude windows are held at once.
    pub shared_styles: usize,
    /// Bytes of the amplitude windows held at once.
    pub cache_bytes: usize,
    pub seconds: f64,
}

impl DirectionStats {
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }
}

/// Translates `content[i]` into the style of `style[partners[i]]` for every `i` in `range`
/// (which must start and end at Zarr shard boundaries of `content`, or at its end), writing those
/// shards of an array shaped as the whole of `content`.
///
/// A style image used by several content images has its amplitude window computed once, up
/// front, and shared; one used once is computed where it is needed (no memory held for it).
/// Shards are written by one task each, in waves of one shard per thread, so memory stays at
/// about `threads × images_per_shard` images; each translation is itself parallel over rows, which
/// keeps all cores busy when there are fewer shards than threads.
pub fn translate_direction(
    ctx: &StageContext,
    fda: &Fda,
    direction: Direction<'_>,
    range: Range<usize>,
    out: &Path,
    label: &str,
) -> anyhow::Result<DirectionStats> {
    let Direction {
        content,
        style,
        partners,
    } = direction;
    anyhow::ensure!(
        partners.len() == content.len(),
        "{label}: {} partners for {} images in {}",
        partners.len(),
        content.len(),
        content.images().path().display()
    );
    let start = Instant::now();
    let uses = style_uses(&partners[range.clone()], style.len(), label)?;
    let shared: Vec<usize> = (0..style.len()).filter(|&j| uses[j] > 1).collect();
    let read_style = |j: usize| -> anyhow::Result<Amplitude> {
        let img = style.images().read(j)?;
        fda.amplitude(&img)
            .with_context(|| format!("{}: image {j}", style.images().path().display()))
    };
    let mut cache: Vec<Option<Amplitude>> = (0..style.len()).map(|_| None).collect();
    if !shared.is_empty() {
        let progress = ctx.progress(&format!("{label} style amplitudes"), shared.len() as u64);
        let amps = shared
            .par_iter()
            .map(|&j| {
                let a = read_style(j);
                progress.inc(1);
                a.map(|a| (j, a))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        progress.finish();
        for (j, a) in amps {
            cache[j] = Some(a);
        }
    }
    let cache_bytes = cache.iter().flatten().map(Amplitude::size_bytes).sum();

    std::fs::create_dir_all(out).map_err(|e| anyhow::anyhow!("creating {}: {e}", out.display()))?;
    let writer = ImageArrayWriter::create(&out.join(IMAGES), *content.images().layout())?;
    let image_len = fda.image_len();
    let progress = ctx.progress(label, range.len() as u64);
    let per_shard = writer.layout().images_per_shard;
    let shards: Vec<usize> = (range.start / per_shard..range.end.div_ceil(per_shard)).collect();
    for wave in shards.chunks(rayon::current_num_threads().max(1)) {
        wave.par_iter()
            .try_for_each(|&shard| -> anyhow::Result<()> {
                let range = writer.shard_range(shard);
                let mut buf = vec![0u8; range.len() * image_len];
                for (i, slot) in range.zip(buf.chunks_exact_mut(image_len)) {
                    let img = content.images().read(i)?;
                    let j = partners[i];
                    let fresh;
                    let amp = match &cache[j] {
                        Some(a) => a,
                        None => {
                            fresh = read_style(j)?;
                            &fresh
                        }
                    };
                    fda.translate(&img, amp, slot).with_context(|| {
                        format!("{label}: {} image {i}", content.images().path().display())
                    })?;
                    progress.inc(1);
                }
                writer.write_shard(shard, &buf)?;
                Ok(())
            })?;
    }
    progress.finish();
    writer.finish()?;
    Ok(DirectionStats {
        images: range.len(),
        styles: uses.iter().filter(|&&u| u > 0).count(),
        shared_styles: shared.len(),
        cache_bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// How many times each style image lends its style to `partners`; a partner out of range is an
/// error naming the direction.
pub fn style_uses(partners: &[usize], styles: usize, label: &str) -> anyhow::Result<Vec<u32>> {
    let mut uses = vec![0u32; styles];
    for &j in partners {
        anyhow::ensure!(
            j < styles,
            "{label}: partner {j} out of range ({styles} style images)"
        );
        uses[j] += 1;
    }
    Ok(uses)
}
