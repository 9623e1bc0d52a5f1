//! PNG encoding (the `png` crate the workspace already uses) and base64 for `data:` URIs, so the
//! page embeds images without a network or a second file.

use crate::error::{ReportError, Result};
use std::collections::HashMap;

/// The raster as palette indices when it has at most 256 colours (label maps, flat charts).
fn palette(rgb: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut index: HashMap<[u8; 3], u8> = HashMap::new();
    let mut colours: Vec<u8> = Vec::new();
    let mut out = Vec::with_capacity(rgb.len() / 3);
    for p in rgb.chunks_exact(3) {
        let key = [p[0], p[1], p[2]];
        let i = match index.get(&key) {
            Some(i) => *i,
            None => {
                let i = u8::try_from(index.len()).ok()?;
                index.insert(key, i);
                colours.extend_from_slice(&key);
                i
            }
        };
        out.push(i);
    }
    Some((colours, out))
}

/// Encodes an 8-bit RGB raster as PNG: indexed colour when it has at most 256 colours
/// (segmentation maps are 3-4× smaller so), else RGB.
pub(crate) fn png_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>> {
    let err = |source| ReportError::PngEncode { source };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        let indexed = palette(rgb);
        match &indexed {
            Some((colours, _)) => {
                enc.set_color(png::ColorType::Indexed);
                enc.set_palette(colours.clone());
            }
            None => enc.set_color(png::ColorType::Rgb),
        }
        let mut w = enc.write_header().map_err(err)?;
        match &indexed {
            Some((_, idx)) => w.write_image_data(idx).map_err(err)?,
            None => w.write_image_data(rgb).map_err(err)?,
        }
    }
    Ok(out)
}

/// A decoded PNG as 8-bit RGB.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Reads a PNG (RGB, RGBA, grey; 8 bit) as RGB.
pub(crate) fn read_png(path: &std::path::Path) -> Result<Rgb> {
    let err = |source| ReportError::PngDecode {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(err)?;
    let size = reader.output_buffer_size().unwrap_or(0);
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(err)?;
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let data = match channels {
        3 => buf,
        4 => buf
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        1 => buf.iter().flat_map(|&g| [g, g, g]).collect(),
        2 => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        _ => unreachable!("PNG has 1 to 4 samples per pixel"),
    };
    Ok(Rgb {
        width: info.width as usize,
        height: info.height as usize,
        data,
    })
}

/// `data:image/png;base64,...`
pub(crate) fn data_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64(png))
}

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn png_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let rgb: Vec<u8> = (0..2 * 3 * 3).map(|i| i as u8 * 9).collect();
        let bytes = png_rgb(3, 2, &rgb).unwrap();
        let path = d.path().join("a.png");
        std::fs::write(&path, &bytes).unwrap();
        let back = read_png(&path).unwrap();
        assert_eq!((back.width, back.height, back.data), (3, 2, rgb));
        assert!(data_uri(&bytes).starts_with("data:image/png;base64,iVBORw0KGgo"));
        // Over 256 colours: RGB, still lossless.
        let many: Vec<u8> = (0..300u32)
            .flat_map(|i| [i as u8, (i >> 8) as u8, 7])
            .collect();
        std::fs::write(&path, png_rgb(300, 1, &many).unwrap()).unwrap();
        assert_eq!(read_png(&path).unwrap().data, many);
        assert_eq!(palette(&many), None);
        let (colours, idx) = palette(&[1, 2, 3, 4, 5, 6, 1, 2, 3]).unwrap();
        assert_eq!((colours, idx), (vec![1, 2, 3, 4, 5, 6], vec![0, 1, 0]));
    }
}
