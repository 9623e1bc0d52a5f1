//! Errors of the runner. Pipeline problems are collected (all of them, not just the first) and
//! each names the file, the line/column and the stage, so a user can fix a pipeline in one go.

use crate::yaml::Loc;
use std::fmt;
use std::path::PathBuf;

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineIssue {
    pub file: PathBuf,
    pub loc: Loc,
    /// The stage (or stage instance) concerned, if any.
    pub stage: Option<String>,
    pub message: String,
}

impl fmt::Display for PipelineIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.loc.is_known() {
            write!(f, ":{}", self.loc)?;
        }
        write!(f, ": ")?;
        if let Some(s) = &self.stage {
            write!(f, "stage '{s}': ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Collects problems instead of stopping at the first.
#[derive(Debug, Default)]
pub struct Issues {
    pub file: PathBuf,
    pub list: Vec<PipelineIssue>,
}

impl Issues {
    pub fn add(&mut self, loc: Loc, stage: Option<&str>, message: impl Into<String>) {
        self.list.push(PipelineIssue {
            file: self.file.clone(),
            loc,
            stage: stage.map(str::to_string),
            message: message.into(),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("{}", list_issues(.0))]
    Invalid(Vec<PipelineIssue>),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A request that cannot be served as given (a selection matching nothing, no files to
    /// report); the message says what to do.
    #[error("{0}")]
    Usage(String),
    #[error("stage binary {binary}: {message}")]
    Describe { binary: PathBuf, message: String },
    #[error("cache entry {key} is corrupted: {details}")]
    Corrupt { key: String, details: String },
    /// Reading or writing a Parquet table (the run history, `report --raw`).
    #[error("{context}: {source}")]
    Table {
        context: String,
        #[source]
        source: TableError,
    },
    /// Serialising a record the runner writes (params.json, entry.json).
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    /// The Slurm executor could not submit or follow a job (the message says what Slurm said).
    #[error("slurm: {0}")]
    Slurm(String),
    /// A bug: shared state found in a state it cannot be in.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// What went wrong inside a Parquet read or write.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn list_issues(issues: &[PipelineIssue]) -> String {
    let mut s = String::new();
    if issues.len() > 1 {
        s.push_str(&format!("{} problems in the pipeline:\n", issues.len()));
    }
    for (i, issue) in issues.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&issue.to_string());
    }
    s
}

impl RunnerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub fn table(context: impl Into<String>, source: impl Into<TableError>) -> Self {
        Self::Table {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Json {
            context: context.into(),
            source,
        }
    }
}

/// Adds a context line to an `io::Result`.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RunnerError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, RunnerError> {
        self.map_err(|source| RunnerError::Io {
            context: context(),
            source,
        })
    }
}

pub type Result<T, E = RunnerError> = std::result::Result<T, E>;
