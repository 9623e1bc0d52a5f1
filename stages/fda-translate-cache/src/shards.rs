//! Sharded runs: what a shard task records ([`Part`]) and how the merge assembles the arrays.

use crate::{Plan, S2T, T2S};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use uda_data::imageset::IMAGES;
use uda_data::zarr::ImageArrayWriter;
use uda_stage::shard::link_tree;
use uda_stage::{Shard, StageContext};

/// One direction's share of a shard task.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Side {
    /// Images of the content set.
    pub items: usize,
    pub start: usize,
    pub end: usize,
    /// Translation time (wall clock).
    pub seconds: f64,
}

/// What a shard task (or a whole run) translated, s2t and t2s.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Part {
    pub s2t: Side,
    pub t2s: Side,
}

impl Part {
    pub fn new(items: [usize; 2], ranges: [Range<usize>; 2], seconds: [f64; 2]) -> Self {
        let [s2t, t2s] = [0, 1].map(|d| Side {
            items: items[d],
            start: ranges[d].start,
            end: ranges[d].end,
            seconds: seconds[d],
        });
        Self { s2t, t2s }
    }
}

/// Checks that the shards translated exactly `plan`'s images between them, writes both arrays'
/// metadata into `ctx`'s output folder and links every shard's chunk files into place; returns
/// the translation time of each direction, summed over the shards.
pub(crate) fn assemble(
    ctx: &StageContext,
    plan: &Plan,
    shards: &[Shard],
) -> anyhow::Result<[f64; 2]> {
    let dir = ctx.out_dir();
    for (name, set) in [(S2T, &plan.source), (T2S, &plan.target)] {
        std::fs::create_dir_all(dir.join(name))?;
        ImageArrayWriter::create(&dir.join(name).join(IMAGES), *set.images().layout())?;
    }
    let mut seconds = [0.0; 2];
    for shard in shards {
        let part = shard.data::<Part>()?;
        let expected = plan.ranges(shard.spec);
        for (d, (name, side)) in [(S2T, &part.s2t), (T2S, &part.t2s)].into_iter().enumerate() {
            let items = [plan.source.len(), plan.target.len()][d];
            anyhow::ensure!(
                side.items == items && (side.start..side.end) == expected[d],
                "{}: shard {} translated {name} images {}..{} of {} but this merge's inputs give {:?} of {items}; were all shards run on these inputs?",
                shard.dir.display(),
                shard.spec,
                side.start,
                side.end,
                side.items,
                expected[d]
            );
            link_tree(
                &shard.dir.join(name).join(IMAGES),
                &dir.join(name).join(IMAGES),
                &|rel| rel == Path::new("zarr.json"),
            )?;
            seconds[d] += side.seconds;
        }
    }
    Ok(seconds)
}
