//! Per-phase timing of preprocessing one sample (read, PNG decode, label decode, full
//! process_sample_into), for comparing against Pillow phase by phase. Usage: phases GTA5_ROOT
use std::time::Instant;
fn main() {
    let root = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let samples = uda_data::datasets::list_samples(
        uda_data::datasets::DatasetKind::Gta5,
        &root,
        "",
        uda_data::datasets::LabelPolicy::Required,
    )
    .unwrap();
    let (mut tr, mut td, mut tl, mut tp) = (0.0, 0.0, 0.0, 0.0);
    let (h, w) = (720, 1280);
    let (mut image, mut label) = (vec![0u8; h * w * 3], vec![0u8; h * w]);
    for s in &samples {
        let t = Instant::now();
        let b = std::fs::read(&s.image).unwrap();
        tr += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let d = uda_data::png::decode_rgb(&s.image, &b).unwrap();
        td += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let l = uda_data::png::read_label(s.label.as_ref().unwrap()).unwrap();
        tl += t.elapsed().as_secs_f64();
        let t = Instant::now();
        preprocess_resize::process_sample_into(
            s,
            h,
            w,
            preprocess_resize::Interpolation::Bicubic,
            &mut image,
            Some(&mut label),
        )
        .unwrap();
        tp += t.elapsed().as_secs_f64();
        assert!(d.width > 0 && l.width > 0);
    }
    let n = samples.len() as f64;
    println!(
        "per image ms: read {:.1} decode_rgb {:.1} label {:.1} full process_sample_into {:.1}",
        tr / n * 1e3,
        td / n * 1e3,
        tl / n * 1e3,
        tp / n * 1e3
    );
}
