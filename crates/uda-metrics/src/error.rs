use std::path::PathBuf;
use uda_data::DataError;

/// Errors of the metrics layer. Messages name the file involved and say what to change.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "ground truth has {gt} pixels but the prediction has {pred}; they must be the same size"
    )]
    LengthMismatch { gt: usize, pred: usize },
    #[error(
        "ground truth holds {pixels} pixel(s) with value(s) {values:?}, which are neither a train id 0..=18 nor 255 (ignore); \
         label-id maps must be mapped to train ids first (uda_data::classes::LABEL_TO_TRAIN)"
    )]
    InvalidGroundTruth { values: Vec<u8>, pixels: u64 },
    /// Bad external predictions or ground truth; `message` lists every offending file.
    #[error("{message}")]
    External { message: String },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] DataError),
}

pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
