use std::path::PathBuf;

/// Errors of the data layer. Every variant names the file or folder involved, so a message
/// tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {message}")]
    Zarr { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: cannot read image: {message}")]
    ImageRead { path: PathBuf, message: String },
    #[error("{path}: cannot write image: {message}")]
    ImageWrite { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    BadInput { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DataError {
    pub(crate) fn zarr(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Zarr {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn bad(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::BadInput {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
