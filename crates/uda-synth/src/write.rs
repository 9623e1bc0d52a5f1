//! Writes the whole benchmark to a folder: GTA5 and Cityscapes layouts, previews, statistics.

use crate::SynthError;
use crate::appearance::Domain;
use crate::dataset::{Generator, Sample, Split};
use crate::params::SynthParams;
use crate::stats::{ImageStats, SplitStats, write_class_stats};
use rayon::prelude::*;
use std::path::Path;
use uda_data::classes::colorize;
use uda_data::png::{write_gray, write_panel, write_rgb};

/// Folder of preview panels inside the output folder.
pub const PREVIEWS: &str = "previews";
/// Class statistics table inside the output folder.
pub const CLASS_STATS: &str = "class_stats.parquet";

/// What [`write_benchmark`] wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    pub stats: Vec<SplitStats>,
    pub previews: usize,
}

/// Generates every split into `out` (in parallel; the bytes do not depend on the thread count),
/// writes previews and `class_stats.parquet`, and calls `on_image` once per image written.
pub fn write_benchmark(
    out: &Path,
    params: &SynthParams,
    on_image: &(dyn Fn() + Sync),
) -> Result<Summary, SynthError> {
    let generator = Generator::new(params)?;
    let mut stats = Vec::new();
    for split in Split::ALL {
        let per_image: Vec<ImageStats> = (0..split.count(params))
            .into_par_iter()
            .map(|i| {
                let sample = generator.sample(split, i);
                write_sample(out, split, i, &sample)?;
                on_image();
                Ok(ImageStats::of(&sample))
            })
            .collect::<Result<_, SynthError>>()?;
        stats.push(SplitStats::aggregate(split, &per_image));
    }
    let previews = write_previews(out, &generator)?;
    write_class_stats(&out.join(CLASS_STATS), &stats)?;
    Ok(Summary { stats, previews })
}

fn write_sample(out: &Path, split: Split, index: usize, s: &Sample) -> Result<(), SynthError> {
    write_rgb(
        &out.join(split.image_path(index)),
        s.width,
        s.height,
        &s.rgb,
    )?;
    write_gray(
        &out.join(split.label_path(index)),
        s.width,
        s.height,
        &s.label_ids,
    )?;
    Ok(())
}

/// Per split: image | colourised labels. Plus `shift_*.png`: one source scene in the source
/// look | the same scene in the target look | labels, which isolates the appearance shift.
fn write_previews(out: &Path, g: &Generator) -> Result<usize, SynthError> {
    let p = g.params();
    let (w, h) = (p.width, p.height);
    let dir = out.join(PREVIEWS);
    let mut written = 0;
    for split in Split::ALL {
        for i in 0..p.n_previews.min(split.count(p)) {
            let s = g.sample(split, i);
            let labels = colorize(&s.train_ids());
            write_panel(
                &dir.join(format!("{}_{i:02}.png", split.name())),
                h,
                &[(w, &s.rgb), (w, &labels)],
            )?;
            written += 1;
        }
    }
    for i in 0..p.n_previews.min(p.n_source) {
        let a = g.sample_in_look(Split::Source, i, Domain::Source);
        let b = g.sample_in_look(Split::Source, i, Domain::Target);
        let labels = colorize(&a.train_ids());
        write_panel(
            &dir.join(format!("shift_{i:02}.png")),
            h,
            &[(w, &a.rgb), (w, &b.rgb), (w, &labels)],
        )?;
        written += 1;
    }
    Ok(written)
}
