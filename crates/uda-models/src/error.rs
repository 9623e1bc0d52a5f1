use std::path::PathBuf;

/// A tensor whose shape in the weight file does not fit the variable it is mapped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Key in the file.
    pub key: String,
    /// Variable in the model.
    pub var: String,
    pub file_shape: Vec<i64>,
    pub model_shape: Vec<i64>,
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {}: file {:?}, model {:?}",
            self.key, self.var, self.file_shape, self.model_shape
        )
    }
}

/// Everything wrong between a weight file and the model, found before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightMismatch {
    pub path: PathBuf,
    pub naming: String,
    /// Model variables the file should provide but does not.
    pub missing: Vec<String>,
    /// File tensors that map to no model variable.
    pub unexpected: Vec<String>,
    pub mismatched: Vec<ShapeMismatch>,
    /// Model variables that more than one file tensor maps to.
    pub duplicated: Vec<String>,
}

impl std::fmt::Display for WeightMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: weights do not fit the model (naming {}):\n{}",
            self.path.display(),
            self.naming,
            format_mismatch(
                &self.missing,
                &self.unexpected,
                &self.mismatched,
                &self.duplicated
            )
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path}: not a valid safetensors file ({message}); convert .pth files with scripts/convert_pth.py"
    )]
    SafeTensors { path: PathBuf, message: String },

    #[error(
        "{path}: tensor '{key}' has dtype {dtype}, which cannot be loaded into a {kind} variable"
    )]
    Dtype {
        path: PathBuf,
        key: String,
        dtype: String,
        kind: String,
    },

    /// Boxed: the lists are large, and every `Result` carries the error's size.
    #[error("{0}")]
    Mismatch(Box<WeightMismatch>),

    #[error("invalid model config: {0}")]
    Config(String),

    #[error("device '{0}' is not one of cpu, cuda, cuda:N, auto")]
    DeviceSpec(String),

    #[error("device '{spec}' asked for, but CUDA is not usable in this process: {reason}")]
    CudaUnavailable { spec: String, reason: String },

    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// At most this many names per list in an error message: a wrong checkpoint can miss hundreds.
const MAX_LISTED: usize = 40;

fn list<T: std::fmt::Display>(title: &str, items: &[T], out: &mut String) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("  {title} ({}):\n", items.len()));
    for item in items.iter().take(MAX_LISTED) {
        out.push_str(&format!("    {item}\n"));
    }
    if items.len() > MAX_LISTED {
        out.push_str(&format!("    ... and {} more\n", items.len() - MAX_LISTED));
    }
}

fn format_mismatch(
    missing: &[String],
    unexpected: &[String],
    mismatched: &[ShapeMismatch],
    duplicated: &[String],
) -> String {
    let mut out = String::new();
    list("shape mismatch", mismatched, &mut out);
    list("missing from the file", missing, &mut out);
    list("unexpected in the file", unexpected, &mut out);
    list("mapped from several file tensors", duplicated, &mut out);
    out.push_str(
        "  hint: pick the WeightNaming that matches the file's origin (torchvision, fda-deeplab, native), \
         or load non-strictly if a partial load is intended",
    );
    out
}
