//! PNG reading and writing through the `png` crate directly.
//!
//! Label maps are read as *raw* 8-bit values: GTA5 ships its labels as palette PNGs whose
//! palette indices are the label ids, and a generic decoder would expand them to colours.

use crate::error::{DataError, Result};
use std::io::BufWriter;
use std::path::Path;

/// A decoded image: `channels` interleaved 8-bit channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::ImageRead {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| read_err(path, e))
}

/// Decodes into `buf` (resized to fit; its capacity is kept, and only bytes beyond its old
/// length are zeroed: the frame overwrites every byte), so a caller decoding many images
/// reuses one buffer.
fn decode_into(
    path: &Path,
    bytes: &[u8],
    transformations: png::Transformations,
    buf: &mut Vec<u8>,
) -> Result<png::OutputInfo> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(transformations);
    let mut reader = decoder.read_info().map_err(|e| read_err(path, e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| read_err(path, "image too large"))?;
    buf.resize(size, 0);
    let info = reader
        .next_frame(buf)
        .map_err(|e| read_err(path, format!("{e} (truncated or corrupt PNG?)")))?;
    buf.truncate(info.buffer_size());
    Ok(info)
}

/// Reads a PNG as 8-bit RGB (grey, palette and alpha images are converted; 16-bit is reduced).
pub fn read_rgb(path: &Path) -> Result<Decoded> {
    decode_rgb(path, &read_file(path)?)
}

/// Decodes PNG bytes (read from `path`, named in errors) as 8-bit RGB.
pub fn decode_rgb(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    let mut pixels = Vec::new();
    let (width, height) = decode_rgb_into(path, bytes, &mut pixels)?;
    Ok(Decoded {
        width,
        height,
        channels: 3,
        pixels,
    })
}

/// [`decode_rgb`] into a caller-owned buffer (reused across images); returns `(width, height)`.
pub fn decode_rgb_into(path: &Path, bytes: &[u8], pixels: &mut Vec<u8>) -> Result<(usize, usize)> {
    let info = decode_into(
        path,
        bytes,
        png::Transformations::EXPAND | png::Transformations::STRIP_16,
        pixels,
    )?;
    let expand = |channels: usize, pick: fn(&[u8]) -> [u8; 3]| -> Vec<u8> {
        pixels.chunks_exact(channels).flat_map(pick).collect()
    };
    let converted = match info.color_type {
        png::ColorType::Rgb => None,
        png::ColorType::Rgba => Some(expand(4, |p| [p[0], p[1], p[2]])),
        png::ColorType::Grayscale => Some(expand(1, |p| [p[0], p[0], p[0]])),
        png::ColorType::GrayscaleAlpha => Some(expand(2, |p| [p[0], p[0], p[0]])),
        png::ColorType::Indexed => return Err(read_err(path, "palette was not expanded")),
    };
    if let Some(rgb) = converted {
        *pixels = rgb;
    }
    Ok((info.width as usize, info.height as usize))
}

/// Reads a single-channel 8-bit label map as raw values (grey or palette indices).
/// Colour images and 16-bit maps are errors, since their ids would be ambiguous.
pub fn read_label(path: &Path) -> Result<Decoded> {
    decode_label(path, &read_file(path)?)
}

/// Decodes PNG bytes (read from `path`, named in errors) as a raw single-channel label map.
pub fn decode_label(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    let mut pixels = Vec::new();
    let (width, height) = decode_label_into(path, bytes, &mut pixels)?;
    Ok(Decoded {
        width,
        height,
        channels: 1,
        pixels,
    })
}

/// [`decode_label`] into a caller-owned buffer (reused across images); returns `(width, height)`.
pub fn decode_label_into(
    path: &Path,
    bytes: &[u8],
    pixels: &mut Vec<u8>,
) -> Result<(usize, usize)> {
    let info = decode_into(path, bytes, png::Transformations::IDENTITY, pixels)?;
    let bad = |what: String| {
        DataError::bad(
            path,
            format!("label map must be a single-channel 8-bit PNG of label ids, found {what}"),
        )
    };
    match (info.color_type, info.bit_depth) {
        (png::ColorType::Grayscale | png::ColorType::Indexed, png::BitDepth::Eight) => {}
        (ct, bd) => {
            let channels = match ct {
                png::ColorType::Rgb => "3 channels (RGB)".to_string(),
                png::ColorType::Rgba => "4 channels (RGBA)".to_string(),
                png::ColorType::GrayscaleAlpha => "2 channels (grey + alpha)".to_string(),
                _ => format!("{ct:?}"),
            };
            return Err(bad(format!("{channels} at {bd:?} bits")));
        }
    }
    Ok((info.width as usize, info.height as usize))
}

fn write(
    path: &Path,
    width: usize,
    height: usize,
    color: png::ColorType,
    data: &[u8],
) -> Result<()> {
    let werr = |e: &dyn std::fmt::Display| DataError::ImageWrite {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let channels = match color {
        png::ColorType::Rgb => 3,
        _ => 1,
    };
    if data.len() != width * height * channels {
        return Err(werr(&format!(
            "{} bytes for a {width}x{height}x{channels} image",
            data.len()
        )));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(|e| werr(&e))?;
    writer.write_image_data(data).map_err(|e| werr(&e))?;
    writer.finish().map_err(|e| werr(&e))
}

/// Writes interleaved RGB.
pub fn write_rgb(path: &Path, width: usize, height: usize, rgb: &[u8]) -> Result<()> {
    write(path, width, height, png::ColorType::Rgb, rgb)
}

/// Writes a single-channel 8-bit image (label ids or grey).
pub fn write_gray(path: &Path, width: usize, height: usize, gray: &[u8]) -> Result<()> {
    write(path, width, height, png::ColorType::Grayscale, gray)
}

/// Writes equally tall RGB tiles side by side with a 2-pixel white gap (previews such as
/// image | labels | prediction). Each tile is `(width, rgb)`.
pub fn write_panel(path: &Path, height: usize, tiles: &[(usize, &[u8])]) -> Result<()> {
    const GAP: usize = 2;
    let total_w = tiles.iter().map(|t| t.0).sum::<usize>() + GAP * tiles.len().saturating_sub(1);
    let mut out = vec![255u8; total_w * height * 3];
    let mut x0 = 0;
    for &(w, rgb) in tiles {
        if rgb.len() != w * height * 3 {
            return Err(DataError::ImageWrite {
                path: path.to_path_buf(),
                message: format!("panel tile of {} bytes is not {w}x{height} RGB", rgb.len()),
            });
        }
        for y in 0..height {
            let dst = (y * total_w + x0) * 3;
            out[dst..dst + w * 3].copy_from_slice(&rgb[y * w * 3..(y + 1) * w * 3]);
        }
        x0 += w + GAP;
    }
    write_rgb(path, total_w, height, &out)
}

/// Replicates a single-channel map to RGB (for panels).
pub fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&g| [g, g, g]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_and_label_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8 * 7).collect();
        write_rgb(&d.path().join("a.png"), 4, 3, &rgb).unwrap();
        assert_eq!(read_rgb(&d.path().join("a.png")).unwrap().pixels, rgb);
        let lab: Vec<u8> = (0..12).map(|i| i as u8 * 3).collect();
        write_gray(&d.path().join("l.png"), 4, 3, &lab).unwrap();
        let l = read_label(&d.path().join("l.png")).unwrap();
        assert_eq!((l.width, l.height, l.pixels), (4, 3, lab.clone()));
        // A grey PNG read as RGB is replicated.
        assert_eq!(
            read_rgb(&d.path().join("l.png")).unwrap().pixels,
            gray_to_rgb(&lab)
        );
    }

    #[test]
    fn a_reused_buffer_holds_exactly_the_last_image() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..8 * 6 * 3).map(|i| (i % 251) as u8).collect();
        let small: Vec<u8> = (0..3 * 2 * 3).map(|i| 200 - i as u8).collect();
        write_rgb(&d.path().join("big.png"), 8, 6, &big).unwrap();
        write_rgb(&d.path().join("small.png"), 3, 2, &small).unwrap();
        write_gray(&d.path().join("g.png"), 2, 2, &[1, 2, 3, 4]).unwrap();
        let mut buf = Vec::new();
        for (name, want, size) in [
            ("big.png", big.clone(), (8, 6)),
            ("small.png", small, (3, 2)),
            ("g.png", gray_to_rgb(&[1, 2, 3, 4]), (2, 2)),
            ("big.png", big, (8, 6)),
        ] {
            let path = d.path().join(name);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(decode_rgb_into(&path, &bytes, &mut buf).unwrap(), size);
            assert_eq!(buf, want, "{name}");
        }
        let path = d.path().join("g.png");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(decode_label_into(&path, &bytes, &mut buf).unwrap(), (2, 2));
        assert_eq!(buf, [1, 2, 3, 4]);
    }

    #[test]
    fn palette_labels_keep_their_indices() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("p.png");
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = png::Encoder::new(file, 3, 1);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        let palette: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, 0]).collect();
        enc.set_palette(palette);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[7, 26, 33]).unwrap();
        drop(w);
        assert_eq!(read_label(&path).unwrap().pixels, vec![7, 26, 33]);
    }

    #[test]
    fn bad_labels_and_truncated_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let rgb = d.path().join("rgb.png");
        write_rgb(&rgb, 2, 2, &[0; 12]).unwrap();
        let e = read_label(&rgb).unwrap_err().to_string();
        assert!(e.contains("rgb.png") && e.contains("3 channels"), "{e}");
        let bytes = std::fs::read(&rgb).unwrap();
        let cut = d.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_rgb(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.png"), "{e}");
        let e = read_rgb(&d.path().join("missing.png"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.png"), "{e}");
    }

    #[test]
    fn panel_concatenates_tiles() {
        let d = tempfile::tempdir().unwrap();
        let a = vec![10u8; 2 * 2 * 3];
        let b = vec![20u8; 3 * 2 * 3];
        write_panel(&d.path().join("p.png"), 2, &[(2, &a), (3, &b)]).unwrap();
        let p = read_rgb(&d.path().join("p.png")).unwrap();
        assert_eq!((p.width, p.height), (7, 2));
        assert_eq!(&p.pixels[..3], &[10, 10, 10]);
        assert_eq!(&p.pixels[2 * 3..3 * 3], &[255, 255, 255]);
        assert_eq!(&p.pixels[4 * 3..5 * 3], &[20, 20, 20]);
    }
}
