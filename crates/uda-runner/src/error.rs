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
    #[error("{0}")]
    Usage(String),
    #[error("stage binary {binary}: {message}")]
    Describe { binary: PathBuf, message: String },
    #[error("cache entry {key} is corrupted: {details}")]
    Corrupt { key: String, details: String },
    #[error("{0}")]
    History(String),
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
