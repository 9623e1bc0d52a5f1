//! `uda-pipe fda`: one image in another's style.

use std::process::Command;
use uda_data::png::{read_rgb, write_rgb};

#[test]
fn translates_one_png_and_rejects_a_bad_beta() {
    let d = tempfile::tempdir().unwrap();
    let (h, w) = (40, 64);
    let src: Vec<u8> = (0..h * w * 3).map(|i| ((i * 7) % 200) as u8).collect();
    let trg: Vec<u8> = (0..h * w * 3)
        .map(|i| if i % 3 == 0 { 230 } else { 40 })
        .collect();
    write_rgb(&d.path().join("a.png"), w, h, &src).unwrap();
    write_rgb(&d.path().join("b.png"), w, h, &trg).unwrap();
    let out = d.path().join("out.png");
    let bin = env!("CARGO_BIN_EXE_uda-pipe");
    let arg = |p: &str| d.path().join(p).to_str().unwrap().to_string();
    let o = Command::new(bin)
        .args([
            "fda",
            "--src",
            &arg("a.png"),
            "--trg",
            &arg("b.png"),
            "--beta",
            "0.05",
            "-o",
            &arg("out.png"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = read_rgb(&out).unwrap();
    assert_eq!((img.width, img.height), (w, h));
    // The target's red-heavy mean colour is transferred: red rises above the source's mean red.
    let mean = |px: &[u8], c: usize| {
        px.iter().skip(c).step_by(3).map(|&v| v as f64).sum::<f64>() / (h * w) as f64
    };
    assert!(mean(&img.pixels, 0) > mean(&src, 0) + 20.0);
    let o = Command::new(bin)
        .args([
            "fda",
            "--src",
            &arg("a.png"),
            "--trg",
            &arg("b.png"),
            "--beta",
            "1.5",
            "-o",
            &arg("x.png"),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("beta"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
