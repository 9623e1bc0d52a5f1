//! Statistical properties the benchmark must have: class coverage (including small rare
//! classes), valid label ids, a real appearance shift between the domains, and similar label
//! statistics on both sides.

use uda_data::classes::{CLASSES, LABEL_TO_TRAIN, NUM_CLASSES, class_by_name};
use uda_synth::{
    Domain, EGO_VEHICLE_ID, Generator, ImageStats, ShiftParams, Split, SplitStats, SynthParams,
};

fn params(height: usize, width: usize, shift: ShiftParams) -> SynthParams {
    SynthParams {
        height,
        width,
        shift,
        ..SynthParams::default()
    }
}

fn split_stats(g: &Generator, split: Split, n: usize) -> SplitStats {
    let per_image: Vec<ImageStats> = (0..n)
        .map(|i| ImageStats::of(&g.sample(split, i)))
        .collect();
    SplitStats::aggregate(split, &per_image)
}

fn train_id(name: &str) -> usize {
    class_by_name(name).unwrap().train_id as usize
}

#[test]
fn at_least_twelve_classes_and_rare_small_classes_are_common() {
    let g = Generator::new(&params(128, 256, ShiftParams::default())).unwrap();
    for split in [Split::Source, Split::TargetVal] {
        let s = split_stats(&g, split, 40);
        assert!(
            s.classes_present() >= 12,
            "{split:?}: only {} classes",
            s.classes_present()
        );
        let (pf, imf) = (s.pixel_fractions(), s.image_fractions());
        for name in ["pole", "traffic sign", "traffic light", "person"] {
            let k = train_id(name);
            assert!(
                imf[k] >= 0.4,
                "{split:?}: {name} in only {:.0}% of images",
                imf[k] * 100.0
            );
            assert!(
                pf[k] < 0.02,
                "{split:?}: {name} is not small ({:.2}% of pixels)",
                pf[k] * 100.0
            );
        }
        for name in ["road", "building", "sky", "sidewalk", "car"] {
            assert!(
                imf[train_id(name)] >= 0.8,
                "{split:?}: {name} in {:.0}% of images",
                imf[train_id(name)] * 100.0
            );
        }
    }
}

#[test]
fn labels_hold_only_evaluated_ids_and_the_ego_vehicle() {
    let g = Generator::new(&params(96, 192, ShiftParams::default())).unwrap();
    let mut ego = 0;
    for split in Split::ALL {
        for i in 0..12 {
            let s = g.sample(split, i);
            assert_eq!(s.label_ids.len(), 96 * 192);
            assert_eq!(s.rgb.len(), 96 * 192 * 3);
            for &id in &s.label_ids {
                assert!(
                    CLASSES.iter().any(|c| c.label_id == id) || id == EGO_VEHICLE_ID,
                    "label id {id}"
                );
            }
            ego += s
                .label_ids
                .iter()
                .filter(|&&id| id == EGO_VEHICLE_ID)
                .count();
            assert!(
                s.train_ids()
                    .iter()
                    .all(|&t| (t as usize) < NUM_CLASSES || t == 255)
            );
        }
    }
    assert!(
        ego > 0,
        "the non-evaluated ego-vehicle id never occurs, so id->trainId ignoring is not exercised"
    );
    assert_eq!(LABEL_TO_TRAIN[EGO_VEHICLE_ID as usize], 255);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let p = params(64, 128, ShiftParams::default());
    let a = Generator::new(&p).unwrap();
    let b = Generator::new(&p).unwrap();
    let c = Generator::new(&SynthParams {
        seed: 1,
        ..p.clone()
    })
    .unwrap();
    for split in Split::ALL {
        assert_eq!(a.sample(split, 3), b.sample(split, 3));
        assert_ne!(a.sample(split, 3).rgb, c.sample(split, 3).rgb);
        assert_ne!(a.sample(split, 3).label_ids, c.sample(split, 3).label_ids);
    }
    // Source and target (and target train/val) use different sub-seeds.
    assert_ne!(
        a.sample(Split::Source, 0).label_ids,
        a.sample(Split::TargetTrain, 0).label_ids
    );
    assert_ne!(
        a.sample(Split::TargetTrain, 0).label_ids,
        a.sample(Split::TargetVal, 0).label_ids
    );
}

/// L1 distance between the class pixel-fraction vectors of two splits (0..2).
fn label_distance(a: &SplitStats, b: &SplitStats) -> f64 {
    a.pixel_fractions()
        .iter()
        .zip(b.pixel_fractions())
        .map(|(x, y)| (x - y).abs())
        .sum()
}

#[test]
fn domains_differ_in_appearance_but_not_much_in_labels() {
    let n = 60;
    let shifted = Generator::new(&params(96, 192, ShiftParams::default())).unwrap();
    let (src, tgt) = (
        split_stats(&shifted, Split::Source, n),
        split_stats(&shifted, Split::TargetTrain, n),
    );
    let colour_gap = (0..3)
        .map(|k| (src.mean_rgb[k] - tgt.mean_rgb[k]).abs())
        .fold(0.0, f64::max);
    let contrast_ratio = src.mean_luma_std / tgt.mean_luma_std;
    assert!(
        colour_gap > 6.0,
        "mean colour differs by only {colour_gap:.1} levels"
    );
    // The default contrast shift is mild (global contrast is what normalisation undoes).
    assert!(
        contrast_ratio > 1.05,
        "contrast ratio source/target only {contrast_ratio:.2}"
    );
    let d = label_distance(&src, &tgt);
    assert!(d < 0.25, "label statistics too different: L1 {d:.3}");

    let same = Generator::new(&params(96, 192, ShiftParams::none())).unwrap();
    let (src0, tgt0) = (
        split_stats(&same, Split::Source, n),
        split_stats(&same, Split::TargetTrain, n),
    );
    let colour_gap0 = (0..3)
        .map(|k| (src0.mean_rgb[k] - tgt0.mean_rgb[k]).abs())
        .fold(0.0, f64::max);
    let ratio0 = src0.mean_luma_std / tgt0.mean_luma_std;
    assert!(
        colour_gap0 < 5.0,
        "no shift, yet mean colour differs by {colour_gap0:.1}"
    );
    assert!(
        (0.9..1.1).contains(&ratio0),
        "no shift, yet contrast ratio {ratio0:.2}"
    );
    let d0 = label_distance(&src0, &tgt0);
    assert!(d0 < 0.15, "no layout shift, yet L1 {d0:.3}");
}

#[test]
fn zero_shift_makes_both_looks_identical() {
    let g = Generator::new(&params(64, 128, ShiftParams::none())).unwrap();
    for i in 0..4 {
        assert_eq!(
            g.sample_in_look(Split::Source, i, Domain::Source),
            g.sample_in_look(Split::Source, i, Domain::Target)
        );
    }
}

/// Mean luma of the target look divided by that of the source look, per image quadrant.
fn quadrant_gain(g: &Generator, index: usize) -> [f64; 4] {
    let a = g.sample_in_look(Split::Source, index, Domain::Source);
    let b = g.sample_in_look(Split::Source, index, Domain::Target);
    let (w, h) = (a.width, a.height);
    let mut sums = [[0.0f64; 2]; 4];
    for y in 0..h {
        for x in 0..w {
            let q = usize::from(y >= h / 2) * 2 + usize::from(x >= w / 2);
            let i = (y * w + x) * 3;
            let luma =
                |p: &[u8]| 0.299 * p[i] as f64 + 0.587 * p[i + 1] as f64 + 0.114 * p[i + 2] as f64;
            sums[q][0] += luma(&b.rgb);
            sums[q][1] += luma(&a.rgb);
        }
    }
    sums.map(|s| s[0] / s[1].max(1.0))
}

#[test]
fn target_light_varies_across_the_image_only_when_asked() {
    let spread = |shift: ShiftParams| {
        let g = Generator::new(&params(96, 192, shift)).unwrap();
        (0..8)
            .map(|i| {
                let q = quadrant_gain(&g, i);
                let (lo, hi) = q
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                hi / lo
            })
            .sum::<f64>()
            / 8.0
    };
    let global_only = ShiftParams {
        illumination: 0.0,
        vignetting: 0.0,
        colour_cast: 0.0,
        ..ShiftParams::none()
    };
    let global = ShiftParams {
        white_balance: 0.3,
        ..global_only.clone()
    };
    let spatial = ShiftParams {
        illumination: 0.6,
        ..ShiftParams::none()
    };
    let (s_global, s_spatial) = (spread(global), spread(spatial));
    assert!(
        s_global < 1.03,
        "a global shift should be uniform across quadrants: {s_global:.3}"
    );
    assert!(
        s_spatial > 1.12,
        "an illumination gradient should brighten some quadrants: {s_spatial:.3}"
    );
}
