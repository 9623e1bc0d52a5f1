//! Segmentation metrics for uda-pipe, without libtorch: the 19-class confusion matrix
//! ([`confusion`]), IoU and mean IoUs ([`scores`]), the Parquet files of an evaluation
//! ([`report`], schemas there and in this crate's README), scoring a folder of external
//! prediction PNGs the way the official Cityscapes scripts do ([`external`]), and qualitative
//! panels ([`panel`]).
//!
//! The `evaluate` stage is a thin layer over this crate; keeping the metric core free of
//! libtorch lets it be tested against `cityscapesscripts` and benchmarked against numpy alone.

pub mod confusion;
mod error;
pub mod external;
pub mod panel;
pub mod report;
pub mod scores;

pub use confusion::{COLUMNS, ConfusionMatrix, OTHER};
pub use error::{MetricsError, Result};
pub use external::PredIds;
pub use report::{ImageResult, Provenance, Report};
pub use scores::{ClassScore, Scores};
