//! Writes a small synthetic ImageSet (see `uda_testing::synthetic`) for trying the training stages
//! without real data.
//!
//! Usage: `synthetic_imageset DIR N HEIGHT WIDTH LABELS(0|1) SEED SHIFT`
//! (SHIFT 0 gives the "source" look, 1 a colour-shifted "target" look).

use std::process::ExitCode;

fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 7 {
        eprintln!("usage: synthetic_imageset DIR N HEIGHT WIDTH LABELS(0|1) SEED SHIFT");
        return ExitCode::from(2);
    }
    let parse = || -> Result<(usize, usize, usize, bool, u64, f32), std::num::ParseIntError> {
        let shift = a[6].parse().unwrap_or(0.0);
        Ok((
            a[1].parse()?,
            a[2].parse()?,
            a[3].parse()?,
            a[4] == "1",
            a[5].parse()?,
            shift,
        ))
    };
    let Ok((n, h, w, labels, seed, shift)) = parse() else {
        eprintln!("error: N, HEIGHT, WIDTH and SEED must be non-negative integers");
        return ExitCode::from(2);
    };
    match uda_testing::synthetic::write_imageset(
        std::path::Path::new(&a[0]),
        n,
        h,
        w,
        labels,
        seed,
        shift,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
