//! Image and label tensors as Zarr v3 arrays (one folder per array, filesystem store).
//!
//! Layout: shape `(N, H, W, C)` of `u8` (labels: `(N, H, W)`), sharded along N with
//! `images_per_shard` images per shard file and one image per inner chunk, zstd-compressed.
//! One image per inner chunk makes reading one image (or a random batch, as training does) a
//! single small decode; shards keep the file count low for 25k-image datasets.
//!
//! zarrs does not lock: two writers of the same shard lose data. [`ImageArrayWriter`] therefore
//! only writes whole shards, and callers give each shard to exactly one thread.

use crate::error::{DataError, Result};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zarrs::array::{Array, ArrayBuilder, ArraySubset, data_type};
use zarrs::filesystem::FilesystemStore;

/// zstd level: 3 is zstd's default; higher levels cost far more write time than they save here.
const ZSTD_LEVEL: i32 = 3;
/// Default number of images per shard file.
pub const DEFAULT_IMAGES_PER_SHARD: usize = 64;

/// Shape and sharding of an image or label array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayLayout {
    pub len: usize,
    pub height: usize,
    pub width: usize,
    /// 3 for RGB images; 1 for label maps (stored without the channel axis).
    pub channels: usize,
    pub images_per_shard: usize,
}

impl ArrayLayout {
    pub fn images(len: usize, height: usize, width: usize) -> Self {
        Self {
            len,
            height,
            width,
            channels: 3,
            images_per_shard: DEFAULT_IMAGES_PER_SHARD,
        }
    }

    pub fn labels(len: usize, height: usize, width: usize) -> Self {
        Self {
            channels: 1,
            ..Self::images(len, height, width)
        }
    }

    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    fn shape(&self) -> Vec<u64> {
        let mut s = vec![self.len as u64, self.height as u64, self.width as u64];
        if self.channels != 1 {
            s.push(self.channels as u64);
        }
        s
    }

    fn with_first(&self, first: usize) -> Vec<u64> {
        let mut s = self.shape();
        s[0] = first as u64;
        s
    }

    fn subset(&self, start: usize, count: usize) -> ArraySubset {
        let mut ranges = vec![
            start as u64..(start + count) as u64,
            0..self.height as u64,
            0..self.width as u64,
        ];
        if self.channels != 1 {
            ranges.push(0..self.channels as u64);
        }
        ArraySubset::new_with_ranges(&ranges)
    }
}

/// A read-only image or label array. Cheap to share between threads.
#[derive(Debug)]
pub struct ImageArray {
    path: PathBuf,
    layout: ArrayLayout,
    array: Array<FilesystemStore>,
}

impl ImageArray {
    /// Opens the array stored in folder `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join("zarr.json").is_file() {
            return Err(DataError::zarr(
                path,
                "not a Zarr v3 array (no zarr.json); was it written by a uda-pipe stage?",
            ));
        }
        let store = Arc::new(FilesystemStore::new(path).map_err(|e| DataError::zarr(path, e))?);
        let array = Array::open(store, "/").map_err(|e| DataError::zarr(path, e))?;
        let shape = array.shape().to_vec();
        let (len, height, width, channels) = match shape.as_slice() {
            [n, h, w] => (*n, *h, *w, 1),
            [n, h, w, c] => (*n, *h, *w, *c),
            _ => {
                return Err(DataError::zarr(
                    path,
                    format!("expected shape (N, H, W[, C]), found {shape:?}"),
                ));
            }
        };
        if array.data_type() != &data_type::uint8() {
            return Err(DataError::zarr(
                path,
                format!("expected uint8 data, found {}", array.data_type()),
            ));
        }
        let images_per_shard = array
            .chunk_grid()
            .chunk_shape(&vec![0; shape.len()])
            .ok()
            .flatten()
            .map_or(1, |s| s[0].get() as usize);
        let layout = ArrayLayout {
            len: len as usize,
            height: height as usize,
            width: width as usize,
            channels: channels as usize,
            images_per_shard,
        };
        Ok(Self {
            path: path.to_path_buf(),
            layout,
            array,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }
    pub fn len(&self) -> usize {
        self.layout.len
    }
    pub fn is_empty(&self) -> bool {
        self.layout.len == 0
    }
    pub fn height(&self) -> usize {
        self.layout.height
    }
    pub fn width(&self) -> usize {
        self.layout.width
    }
    pub fn channels(&self) -> usize {
        self.layout.channels
    }
    /// Bytes of one image (`H * W * C`).
    pub fn image_len(&self) -> usize {
        self.layout.image_len()
    }

    /// Reads images `start .. start + count` as one contiguous `(count, H, W, C)` buffer.
    pub fn read_range(&self, start: usize, count: usize) -> Result<Vec<u8>> {
        if start + count > self.len() {
            return Err(DataError::zarr(
                &self.path,
                format!(
                    "images {start}..{} requested but the array holds {}",
                    start + count,
                    self.len()
                ),
            ));
        }
        self.array
            .retrieve_array_subset::<Vec<u8>>(&self.layout.subset(start, count))
            .map_err(|e| DataError::zarr(&self.path, e))
    }

    /// Reads one image (`H * W * C` bytes, interleaved channels).
    pub fn read(&self, index: usize) -> Result<Vec<u8>> {
        self.read_range(index, 1)
    }

    /// Reads one image into `buf` (which must hold exactly [`Self::image_len`] bytes).
    pub fn read_into(&self, index: usize, buf: &mut [u8]) -> Result<()> {
        if buf.len() != self.image_len() {
            return Err(DataError::zarr(
                &self.path,
                format!(
                    "buffer of {} bytes for an image of {}",
                    buf.len(),
                    self.image_len()
                ),
            ));
        }
        buf.copy_from_slice(&self.read(index)?);
        Ok(())
    }

    /// Reads the images at arbitrary indices into one `(indices.len(), H, W, C)` buffer.
    pub fn read_batch(&self, indices: &[usize]) -> Result<Vec<u8>> {
        let n = self.image_len();
        let mut out = vec![0u8; n * indices.len()];
        for (slot, &i) in out.chunks_exact_mut(n).zip(indices) {
            self.read_into(i, slot)?;
        }
        Ok(out)
    }
}

/// Writes a new array shard by shard. Shards may be written from several threads at once, as long
/// as each shard is written by one thread only once.
#[derive(Debug)]
pub struct ImageArrayWriter {
    path: PathBuf,
    layout: ArrayLayout,
    array: Array<FilesystemStore>,
}

impl ImageArrayWriter {
    /// Creates the array folder (which must not exist yet) and its metadata.
    pub fn create(path: &Path, layout: ArrayLayout) -> Result<Self> {
        if layout.height == 0
            || layout.width == 0
            || layout.channels == 0
            || layout.images_per_shard == 0
        {
            return Err(DataError::zarr(
                path,
                format!("invalid array layout {layout:?}"),
            ));
        }
        if path.exists() {
            return Err(DataError::zarr(
                path,
                "already exists; refusing to overwrite an array",
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| DataError::io(path, e))?;
        let store = Arc::new(FilesystemStore::new(path).map_err(|e| DataError::zarr(path, e))?);
        let dims: Vec<&str> = if layout.channels == 1 {
            vec!["n", "y", "x"]
        } else {
            vec!["n", "y", "x", "c"]
        };
        let array = ArrayBuilder::new(
            layout.with_first(layout.images_per_shard),
            layout.with_first(1),
            data_type::uint8(),
            0u8,
        )
        .shape(layout.shape())
        .chunk_grid_metadata(layout.with_first(layout.images_per_shard))
        .subchunk_shape(layout.with_first(1))
        .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(
            ZSTD_LEVEL, false,
        ))])
        .dimension_names(Some(dims))
        // Inner chunks in index order within each shard file: zarrs' default order is that in
        // which its threads finish encoding, which makes the bytes of a shard file (not its
        // content) differ from run to run; sharded stage runs are checked byte for byte
        // against unsharded ones.
        .codec_specific_options(
            zarrs::array::CodecSpecificOptions::default().with_option(
                zarrs::array::codec::ShardingCodecOptions::default()
                    .with_subchunk_write_order(zarrs::array::codec::SubchunkWriteOrder::C),
            ),
        )
        .build(store, "/")
        .map_err(|e| DataError::zarr(path, e))?;
        array
            .store_metadata()
            .map_err(|e| DataError::zarr(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            layout,
            array,
        })
    }

    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    pub fn shard_count(&self) -> usize {
        self.layout.len.div_ceil(self.layout.images_per_shard)
    }

    /// Image indices held by `shard` (the last shard may be partial).
    pub fn shard_range(&self, shard: usize) -> Range<usize> {
        let start = shard * self.layout.images_per_shard;
        start.min(self.layout.len)..(start + self.layout.images_per_shard).min(self.layout.len)
    }

    /// Writes all images of `shard`, contiguous `(n, H, W, C)`. A last, partial shard may also
    /// come already padded to `images_per_shard` images (zeros past the array's end), which saves
    /// the copy this would otherwise make to pad it.
    pub fn write_shard(&self, shard: usize, images: &[u8]) -> Result<()> {
        if shard >= self.shard_count() {
            return Err(DataError::zarr(
                &self.path,
                format!(
                    "shard {shard} out of range (array has {})",
                    self.shard_count()
                ),
            ));
        }
        let n = self.shard_range(shard).len();
        let expected = n * self.layout.image_len();
        let full = self.layout.images_per_shard * self.layout.image_len();
        if images.len() != expected && images.len() != full {
            return Err(DataError::zarr(
                &self.path,
                format!(
                    "shard {shard}: got {} bytes, expected {expected} ({n} images) or {full} (padded)",
                    images.len()
                ),
            ));
        }
        let mut indices = vec![0u64; self.layout.shape().len()];
        indices[0] = shard as u64;
        let result = if images.len() == full {
            self.array.store_chunk(&indices, images)
        } else {
            // The regular grid's last chunk is full-sized; pad the part beyond the array's end.
            let mut padded = images.to_vec();
            padded.resize(full, 0);
            self.array.store_chunk(&indices, padded)
        };
        result.map_err(|e| DataError::zarr(&self.path, e))
    }

    /// Finishes writing and reopens the array for reading.
    pub fn finish(self) -> Result<ImageArray> {
        ImageArray::open(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize, len: usize, salt: u8) -> Vec<u8> {
        (0..n * len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
            .collect()
    }

    #[test]
    fn round_trip_with_partial_last_shard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.zarr");
        let layout = ArrayLayout {
            len: 7,
            height: 5,
            width: 6,
            channels: 3,
            images_per_shard: 3,
        };
        let w = ImageArrayWriter::create(&path, layout).unwrap();
        assert_eq!(w.shard_count(), 3);
        assert_eq!(w.shard_range(2), 6..7);
        let data = pattern(7, layout.image_len(), 1);
        for s in 0..w.shard_count() {
            let r = w.shard_range(s);
            w.write_shard(
                s,
                &data[r.start * layout.image_len()..r.end * layout.image_len()],
            )
            .unwrap();
        }
        let a = w.finish().unwrap();
        assert_eq!(*a.layout(), layout);
        assert_eq!(a.read_range(0, 7).unwrap(), data);
        assert_eq!(a.read(6).unwrap(), data[6 * 90..]);
        assert_eq!(
            a.read_batch(&[4, 0]).unwrap(),
            [&data[4 * 90..5 * 90], &data[..90]].concat()
        );
        assert!(
            a.read_range(5, 3)
                .unwrap_err()
                .to_string()
                .contains("holds 7")
        );
        // One shard file per shard, not one file per image.
        let files = walkdir::WalkDir::new(&path)
            .into_iter()
            .filter(|e| e.as_ref().unwrap().file_type().is_file())
            .count();
        assert_eq!(files, 4, "zarr.json + 3 shards");
    }

    #[test]
    fn a_partial_last_shard_may_come_padded() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern(5, 6, 3);
        let shard_of = |len: usize| ArrayLayout {
            images_per_shard: 4,
            ..ArrayLayout::labels(len, 2, 3)
        };
        let path = dir.path().join("padded.zarr");
        let w = ImageArrayWriter::create(&path, shard_of(5)).unwrap();
        w.write_shard(0, &data[..24]).unwrap();
        let mut padded = data[24..].to_vec();
        padded.resize(4 * 6, 0);
        w.write_shard(1, &padded).unwrap();
        let e = w.write_shard(1, &padded[..12]).unwrap_err().to_string();
        assert!(e.contains("expected 6 (1 images) or 24 (padded)"), "{e}");
        assert_eq!(w.finish().unwrap().read_range(0, 5).unwrap(), data);
    }

    #[test]
    fn labels_have_no_channel_axis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.zarr");
        let layout = ArrayLayout::labels(2, 4, 4);
        let w = ImageArrayWriter::create(&path, layout).unwrap();
        let data = pattern(2, 16, 9);
        w.write_shard(0, &data).unwrap();
        let a = w.finish().unwrap();
        assert_eq!(a.channels(), 1);
        assert_eq!(a.read(1).unwrap(), data[16..]);
        let meta = std::fs::read_to_string(path.join("zarr.json")).unwrap();
        assert!(
            meta.contains("sharding_indexed") && meta.contains("zstd"),
            "{meta}"
        );
    }

    #[test]
    fn bad_writes_and_opens_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.zarr");
        let w = ImageArrayWriter::create(&path, ArrayLayout::images(2, 2, 2)).unwrap();
        let e = w.write_shard(0, &[0; 5]).unwrap_err().to_string();
        assert!(e.contains("x.zarr") && e.contains("expected 24"), "{e}");
        assert!(ImageArrayWriter::create(&path, ArrayLayout::images(2, 2, 2)).is_err());
        let e = ImageArray::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no zarr.json"), "{e}");
    }

    #[test]
    fn concurrent_shard_writes() {
        use rayon::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.zarr");
        let layout = ArrayLayout {
            len: 50,
            height: 8,
            width: 8,
            channels: 3,
            images_per_shard: 4,
        };
        let w = ImageArrayWriter::create(&path, layout).unwrap();
        let data = pattern(50, layout.image_len(), 3);
        (0..w.shard_count()).into_par_iter().for_each(|s| {
            let r = w.shard_range(s);
            w.write_shard(s, &data[r.start * 192..r.end * 192]).unwrap();
        });
        assert_eq!(w.finish().unwrap().read_range(0, 50).unwrap(), data);
    }

    #[test]
    fn shard_files_hold_their_images_in_index_order() {
        // The shard index at the file's end: (offset, size) u64 pairs per inner chunk, then a
        // crc32c. Offsets rising with the index mean the file's bytes do not depend on which
        // encoding thread finished first (they would, in zarrs' default order).
        let dir = tempfile::tempdir().unwrap();
        let layout = ArrayLayout {
            len: 32,
            height: 16,
            width: 16,
            channels: 3,
            images_per_shard: 32,
        };
        let data = pattern(32, layout.image_len(), 9);
        let mut files = Vec::new();
        for run in 0..3 {
            let path = dir.path().join(format!("{run}.zarr"));
            let w = ImageArrayWriter::create(&path, layout).unwrap();
            w.write_shard(0, &data).unwrap();
            files.push(std::fs::read(path.join("c/0/0/0/0")).unwrap());
        }
        let bytes = &files[0];
        let index = &bytes[bytes.len() - 4 - 32 * 16..bytes.len() - 4];
        let offsets: Vec<u64> = index
            .chunks_exact(16)
            .map(|e| u64::from_le_bytes(e[..8].try_into().unwrap()))
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        assert!(files.iter().all(|f| f == bytes));
    }
}
