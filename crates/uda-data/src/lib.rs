//! The data layer of uda-pipe: the class table, Zarr image/label arrays, Parquet tables, PNG
//! helpers, and readers for the GTA5 and Cityscapes folder layouts. Needs no libtorch.

pub mod classes;
pub mod datasets;
mod error;
pub mod imageset;
pub mod png;
pub mod table;
pub mod zarr;

pub use error::{DataError, Result};
pub use imageset::ImageSet;
pub use zarr::{ArrayLayout, ImageArray, ImageArrayWriter};
