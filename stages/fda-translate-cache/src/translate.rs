//! One direction: every image of a content set, translated into the style of its partner from
//! the other set, written as `<out>/images.zarr` with the content array's layout.

use anyhow::Context;
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;
use uda_data::imageset::{IMAGES, ImageSet};
use uda_data::zarr::ImageArrayWriter;
use uda_fda::{Amplitude, Fda};
use uda_stage::StageContext;

/// What one direction did.
#[derive(Debug, Clone, Copy)]
pub struct DirectionStats {
    pub images: usize,
    /// Distinct style images used.
    pub styles: usize,
    /// Bytes of amplitude windows held at once (styles used more than once).
    pub cache_bytes: usize,
    pub seconds: f64,
}

impl DirectionStats {
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }
}

/// Translates `content[i]` into the style of `style[partners[i]]` for every `i`.
///
/// A style image used by several content images has its amplitude window computed once, up
/// front, and shared; one used once is computed where it is needed (no memory held for it).
/// Shards are written by one task each, in waves of one shard per thread, so memory stays at
/// about `threads × images_per_shard` images; each translation is itself parallel over rows, which
/// keeps all cores busy when there are fewer shards than threads.
pub fn translate_direction(
    ctx: &StageContext,
    fda: &Fda,
    content: &ImageSet,
    style: &ImageSet,
    partners: &[usize],
    out: &Path,
    label: &str,
) -> anyhow::Result<DirectionStats> {
    anyhow::ensure!(
        partners.len() == content.len(),
        "{label}: {} partners for {} images in {}",
        partners.len(),
        content.len(),
        content.images().path().display()
    );
    let start = Instant::now();
    let mut uses = vec![0u32; style.len()];
    for &j in partners {
        anyhow::ensure!(
            j < style.len(),
            "{label}: partner {j} out of range ({} style images)",
            style.len()
        );
        uses[j] += 1;
    }
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
    let progress = ctx.progress(label, content.len() as u64);
    let shards: Vec<usize> = (0..writer.shard_count()).collect();
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
        images: content.len(),
        styles: uses.iter().filter(|&&u| u > 0).count(),
        cache_bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}
