//! Writes the inputs `contrastive-train` and `pretrain` need, at one size, for
//! `scripts/bench/contrastive.sh`: `s2t/` (labelled), `target/`, `t2s/`, `pseudo/`.
//!
//! `cargo run --release -p contrastive-train --example bench_data -- DIR HEIGHT WIDTH [N]`

use std::path::PathBuf;
use uda_data::zarr::{ArrayLayout, ImageArray, ImageArrayWriter};
use uda_testing::synthetic::write_imageset;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(args.len() >= 3, "usage: bench_data DIR HEIGHT WIDTH [N]");
    let dir = PathBuf::from(&args[0]);
    let (h, w): (usize, usize) = (args[1].parse()?, args[2].parse()?);
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(8);
    write_imageset(&dir.join("s2t"), n, h, w, true, 1, 0.5)?;
    write_imageset(&dir.join("target"), n, h, w, true, 2, 1.0)?;
    write_imageset(&dir.join("t2s"), n, h, w, false, 2, 0.2)?;
    let labels = ImageArray::open(&dir.join("target/labels.zarr"))?.read_range(0, n)?;
    let layout = ArrayLayout::labels(n, h, w);
    let writer = ImageArrayWriter::create(&dir.join("pseudo/pseudo_labels.zarr"), layout)?;
    for shard in 0..writer.shard_count() {
        let r = writer.shard_range(shard);
        writer.write_shard(shard, &labels[r.start * h * w..r.end * h * w])?;
    }
    writer.finish()?;
    Ok(())
}
