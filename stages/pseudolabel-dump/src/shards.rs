//! Sharded runs: what a shard task records ([`Part`]: its range and class histograms) and how
//! the merge assembles pass 1's arrays and adds the histograms up (integer counts, so the
//! thresholds are exactly a whole run's).

use crate::thresholds::{ClassHistograms, LEVELS};
use crate::{CONFIDENCE, PREDICTION, Setup};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::Path;
use uda_stage::Shard;
use uda_stage::shard::link_tree;

/// Pass 1 of a shard task (or of a whole run).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Part {
    /// Images in `data`.
    items: usize,
    start: usize,
    end: usize,
    /// Per class, the pixels predicted as it at each confidence level.
    histograms: Vec<Vec<u64>>,
}

impl Part {
    pub fn new(items: usize, range: Range<usize>, hist: &ClassHistograms) -> Self {
        Self {
            items,
            start: range.start,
            end: range.end,
            histograms: hist.counts().iter().map(|c| c.to_vec()).collect(),
        }
    }

    /// The recorded histograms; `None` if they are not one row of [`LEVELS`] per class.
    fn read_histograms(&self) -> Option<ClassHistograms> {
        let rows = self
            .histograms
            .iter()
            .map(|r| <[u64; LEVELS]>::try_from(r.as_slice()).ok())
            .collect::<Option<Vec<_>>>()?;
        ClassHistograms::from_counts(rows)
    }

    pub fn histograms(&self) -> ClassHistograms {
        self.read_histograms()
            .expect("made by Part::new from ClassHistograms")
    }
}

/// Checks that the shards predicted exactly `setup`'s images between them, links their chunks
/// of `prediction.zarr` and `confidence.zarr` into `out` (whose metadata the caller wrote) and
/// returns the histograms of all images.
pub(crate) fn assemble(
    out: &Path,
    setup: &Setup,
    shards: &[Shard],
) -> anyhow::Result<ClassHistograms> {
    let mut total = ClassHistograms::default();
    for shard in shards {
        let part = shard.data::<Part>()?;
        let expected = setup.range(shard.spec);
        anyhow::ensure!(
            part.items == setup.layout.len && (part.start..part.end) == expected,
            "{}: shard {} predicted images {}..{} of {} but this merge's data gives {expected:?} of {}; were all shards run on this data?",
            shard.dir.display(),
            shard.spec,
            part.start,
            part.end,
            part.items,
            setup.layout.len
        );
        let hist = part.read_histograms().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: shard {}'s histograms are not {LEVELS} levels per class",
                shard.dir.display(),
                shard.spec
            )
        })?;
        total.merge(&hist);
        for name in [PREDICTION, CONFIDENCE] {
            link_tree(&shard.dir.join(name), &out.join(name), &|rel| {
                rel == Path::new("zarr.json")
            })?;
        }
    }
    Ok(total)
}
