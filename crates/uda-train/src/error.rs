//! The errors of the training core; each says what was being done and, where it can, what to do.

use std::path::PathBuf;

/// The underlying error of a variant that wraps another crate's error (kept as `source()`).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value that cannot work (names the key).
    #[error("bad training configuration: {0}")]
    Config(String),
    /// Reading or decoding a sample failed.
    #[error("data: {context}: {message}")]
    Data { context: String, message: String },
    /// The data loader's worker threads are gone (a worker panicked).
    #[error("data loader stopped unexpectedly ({0})")]
    LoaderGone(String),
    /// A loss term became NaN or infinite: training cannot continue from here.
    #[error(
        "loss term '{term}' is {value} at iteration {iteration}; training stopped (try a lower learning rate or check the inputs)"
    )]
    NonFinite {
        iteration: u64,
        term: String,
        value: f64,
    },
    /// A checkpoint could not be written or read back.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// The resume folder holds the state of a differently configured run.
    #[error(
        "resume folder {dir} holds a checkpoint of a different run (its fingerprint {found} is not this run's {expected}); remove the folder or point the resume folder elsewhere"
    )]
    ResumeMismatch {
        dir: PathBuf,
        expected: String,
        found: String,
    },
    /// Reading a sample or a description failed underneath (the data layer, JSON).
    #[error("data: {context}: {source}")]
    DataSource {
        context: String,
        #[source]
        source: Cause,
    },
    /// Reading or writing a checkpoint failed underneath (libtorch, safetensors, JSON).
    #[error("checkpoint {path}: {source}")]
    CheckpointSource {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    /// libtorch reported an error.
    #[error("libtorch: {context}: {source}")]
    Torch {
        context: String,
        #[source]
        source: uda_models::tch::TchError,
    },
    /// Writing or reading the training log.
    #[error("training log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl TrainError {
    pub(crate) fn torch(context: impl Into<String>, source: uda_models::tch::TchError) -> Self {
        Self::Torch {
            context: context.into(),
            source,
        }
    }

    /// A failure of the data layer (or of parsing) while reading `context`.
    pub fn data(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::DataSource {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn checkpoint(path: &std::path::Path, source: impl Into<Cause>) -> Self {
        Self::CheckpointSource {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    pub(crate) fn log(path: &std::path::Path, source: impl Into<Cause>) -> Self {
        Self::Log {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
