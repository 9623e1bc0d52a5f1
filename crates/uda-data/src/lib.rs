//! The data layer of uda-pipe: the class table, Zarr image/label arrays, Parquet tables, and
//! readers for the GTA5 and Cityscapes folder layouts. Needs no libtorch.

pub mod classes;
