use std::path::PathBuf;

/// Errors of the report layer. Messages name the run or folder involved and say what to change.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{name} ({}) is not an evaluate output: it has no {missing} (the evaluate stage writes \
         per_class.parquet and summary.parquet); `uda-pipe report --raw` prints any Parquet file",
        path.display()
    )]
    NotEvaluateOutput {
        name: String,
        path: PathBuf,
        missing: &'static str,
    },
    #[error("no evaluate outputs to report")]
    NoRuns,
    #[error("run '{name}' is given twice, as {} and {}", first.display(), second.display())]
    DuplicateRun {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// Rows of a table must be comparable class by class.
    #[error(
        "{run} ({}) and {first} ({}) have different classes: {detail}",
        path.display(),
        first_path.display()
    )]
    ClassMismatch {
        run: String,
        path: PathBuf,
        first: String,
        first_path: PathBuf,
        detail: String,
    },
    #[error("--where '{0}': expected KEY=VALUE, e.g. seed=1")]
    BadFilter(String),
    #[error("no run matches --where {filters} (runs: {runs})")]
    NothingSelected { filters: String, runs: String },
    /// The compiled-in transcription of the paper's tables is malformed (caught by its tests).
    #[error("data/published.csv line {line}: {detail}")]
    PublishedData { line: usize, detail: String },
    /// `--paired` pairs runs by their `seed` sweep variable, so the baseline must be a seed group.
    #[error(
        "--paired --baseline '{name}': no seed group of that name (seed groups: {groups}); \
         the baseline must be a row of instances that differ only in `seed`"
    )]
    NotPairable { name: String, groups: String },
    #[error("--baseline '{name}': no such row (rows: {rows})")]
    UnknownBaseline { name: String, rows: String },
    /// A chart that plotters could not draw (a font or back-end failure).
    #[error("drawing chart '{chart}': {source}")]
    Chart {
        chart: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("encoding a PNG: {source}")]
    PngEncode {
        #[source]
        source: png::EncodingError,
    },
    #[error("reading {}: {source}", path.display())]
    PngDecode {
        path: PathBuf,
        #[source]
        source: png::DecodingError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file without a column a view needs (written by another version of a stage?).
    #[error("{} has no column '{column}'", path.display())]
    MissingColumn { path: PathBuf, column: String },
    #[error("{context}: {source}")]
    Polars {
        context: String,
        #[source]
        source: polars::error::PolarsError,
    },
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// Adds what was being done to a polars error (polars' own messages do not name our runs).
pub(crate) trait PolarsContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> PolarsContext<T> for polars::error::PolarsResult<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| ReportError::Polars {
            context: context(),
            source,
        })
    }
}
