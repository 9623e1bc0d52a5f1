//! The stage contract: how the `uda-pipe` runner (and a person at a shell) calls a stage binary.
//!
//! Every stage binary accepts the same arguments:
//!
//! ```text
//! STAGE --out DIR [--input NAME=PATH]... [--param KEY=VALUE]... [--params FILE]
//! STAGE --describe
//! STAGE --check [--param KEY=VALUE]... [--params FILE]
//! STAGE --shard I/N --out DIR_I [--input NAME=PATH]... [--params FILE]      (shardable stages)
//! STAGE --merge-shards SHARDS_DIR --out DIR [--input NAME=PATH]... [--params FILE]
//! ```
//!
//! * `--out DIR`: where the stage's outputs go. The stage writes into a private sibling staging
//!   folder (`DIR.partial-<pid>`) and renames it to `DIR` only when it succeeded, so an
//!   interrupted stage never leaves a half-written `DIR` behind. `DIR` must not exist yet.
//! * `--input NAME=PATH`: one per declared input; a path to a folder (an upstream stage's output,
//!   or an external dataset root).
//! * `--params FILE`: a JSON or YAML object of params (what the runner passes); `--param KEY=VALUE`
//!   sets one param (VALUE parsed as a YAML scalar or flow value, e.g. `beta=0.01`, `sizes=[1,2]`)
//!   and wins over `--params`. Unknown keys and type mismatches are errors that name the key.
//! * `--describe`: print the stage's [`StageDescription`] (kind, inputs, outputs, params with their
//!   defaults) as JSON and exit. The runner uses it to validate `pipeline.yaml` without knowing
//!   each stage.
//! * `--check`: parse the params and run the stage's [`Stage::validate`], without `--out` or
//!   inputs, and print exactly one JSON object on stdout: `{"ok": true}` or
//!   `{"ok": false, "problems": [{"param": "beta", "message": "..."}, ...]}` ([`CheckReport`];
//!   `param` is the dotted key, empty for the params as a whole). Unknown keys and mistyped
//!   values are problems too. The exit code is 0 either way; non-zero only when the params file
//!   cannot be read or is not a mapping. The runner checks every node this way before anything
//!   runs, and a normal run validates the same way before it starts.
//!
//! * `--shard I/N` (`0 <= I < N`) and `--merge-shards SHARDS_DIR`: a data-parallel run, for
//!   stages whose description says `"shardable": true` (e.g. one Slurm array task per shard).
//!   A shard task computes only shard `I`'s items (a contiguous range, [`ShardSpec::range`],
//!   aligned to the stage's Zarr chunking) into `DIR_I` exactly as `--out` works (staging
//!   folder, rename on success; `DIR_I` must not exist), and writes `DIR_I/shard.json`
//!   ([`ShardRecord`]: `{"kind", "index", "count", "params", "data"}`, `data` being what the
//!   stage's merge needs). `N` may exceed the number of items; the extra shards are empty and
//!   succeed. The merge, given the same inputs and params, checks that `SHARDS_DIR/0` ..
//!   `SHARDS_DIR/(N-1)` all hold a `shard.json` of this stage, of count `N` and of the same
//!   params (naming every missing or unfinished shard otherwise, and saying to rerun those
//!   tasks), assembles `DIR` from their files by hard link (so the shards stay intact and a
//!   failed merge can be rerun; the runner may delete `SHARDS_DIR` afterwards), writes what
//!   depends on all items (array metadata, tables, metrics, previews) and renames `DIR` into
//!   place. `DIR` is byte-identical to an unsharded `--out DIR` run with the same inputs and
//!   params. The two flags exclude each other and `--describe` / `--check`; a stage that is
//!   not shardable rejects them with an error naming it. Progress lines work in shard tasks as
//!   in any run (their totals count the shard's items).
//!
//! Progress: when the environment has `UDA_PROGRESS=jsonl` (the runner sets it), progress goes to
//! stderr as lines `{"uda_progress":{"label":..,"done":..,"total":..}}`; otherwise a progress bar.
//! Metrics a stage wants shown by `uda-pipe show` go to `DIR/metrics.json` (a flat JSON object),
//! written with [`StageContext::write_metrics`].

mod args;
mod check;
mod errors;
mod progress;
pub mod shard;

pub use args::{StageArgs, parse_assignment};
pub use check::{CheckReport, ParamProblem, ParamProblems, check_params};
pub use errors::error_text;
pub use progress::{Progress, ProgressMode, ProgressUpdate, parse_progress_line};
pub use shard::{SHARD_FILE, Shard, ShardError, ShardRecord, ShardSpec};

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Environment variable through which the runner asks for machine-readable progress.
pub const PROGRESS_ENV: &str = "UDA_PROGRESS";
/// File (inside the output folder) holding the stage's headline metrics.
pub const METRICS_FILE: &str = "metrics.json";

/// Errors of the contract itself (argument and param handling); stages add their own.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error(
        "missing required input '{name}' (pass --input {name}=PATH); stage {kind} needs: {all}"
    )]
    MissingInput {
        kind: String,
        name: String,
        all: String,
    },
    #[error("unknown input '{name}' for stage {kind}; it takes: {all}")]
    UnknownInput {
        kind: String,
        name: String,
        all: String,
    },
    #[error("input '{name}' = {path}: no such file or folder")]
    InputNotFound { name: String, path: PathBuf },
    #[error("bad params for stage {kind}: {message}")]
    BadParams { kind: String, message: String },
    /// Params that parse but fail the stage's checks (or do not parse, key by key).
    #[error("bad params for stage {kind}: {}", join_problems(.problems))]
    InvalidParams {
        kind: String,
        problems: Vec<ParamProblem>,
    },
    #[error("cannot read params file {path}")]
    ParamsRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("params file {path}: {message}")]
    ParamsFile { path: PathBuf, message: String },
    #[error("output folder {0} already exists; choose a new --out or remove it")]
    OutExists(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn join_problems(problems: &[ParamProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One declared input of a stage.
#[derive(Debug, Clone, Serialize)]
pub struct InputSpec {
    pub name: &'static str,
    pub doc: &'static str,
    pub required: bool,
}

/// One declared output (a file or folder inside `--out`).
#[derive(Debug, Clone, Serialize)]
pub struct OutputSpec {
    pub name: &'static str,
    pub doc: &'static str,
}

impl InputSpec {
    /// An input the stage cannot run without (checked before `run`).
    pub const fn required(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            required: true,
        }
    }

    /// An input the stage can run without (`StageContext::optional_input`).
    pub const fn optional(name: &'static str, doc: &'static str) -> Self {
        Self {
            name,
            doc,
            required: false,
        }
    }
}

impl OutputSpec {
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        Self { name, doc }
    }
}

/// What `--describe` prints.
#[derive(Debug, Clone, Serialize)]
pub struct StageDescription {
    pub kind: &'static str,
    pub doc: &'static str,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    /// The params with their default values; the JSON type of each default is the param's type.
    pub params: serde_json::Value,
    /// Whether the binary answers `--check` (every stage built on this crate does; a stage in
    /// another language may leave it out, and the runner then checks only the params' types).
    pub checks: bool,
    /// Whether the binary takes `--shard I/N` and `--merge-shards DIR` (see the crate docs).
    pub shardable: bool,
}

/// A stage: typed params, declared inputs/outputs, and the work.
pub trait Stage {
    /// The stage kind, as written in `pipeline.yaml` and as the binary is named.
    const KIND: &'static str;
    /// One line saying what the stage does.
    const DOC: &'static str;
    /// Typed params; `Default` gives the defaults. Use `#[serde(default, deny_unknown_fields)]`.
    type Params: Serialize + DeserializeOwned + Default;

    fn inputs() -> Vec<InputSpec>;
    fn outputs() -> Vec<OutputSpec>;
    fn run(ctx: &StageContext, params: &Self::Params) -> anyhow::Result<()>;

    /// Checks param values that need no inputs (ranges, combinations), naming each bad param.
    /// Called by `--check` (the runner, before anything runs) and before every [`Stage::run`],
    /// so `run` may rely on it. Checks that need the inputs (sizes, files) stay in `run`.
    fn validate(_params: &Self::Params) -> Result<(), Vec<ParamProblem>> {
        Ok(())
    }

    /// Whether the stage implements [`Stage::run_shard`] and [`Stage::merge_shards`]; the
    /// contract refuses `--shard` / `--merge-shards` for a stage that does not.
    const SHARDABLE: bool = false;

    /// Computes shard `shard`'s items into `ctx.out_dir()` (a shard task, `--shard I/N`) and
    /// returns what [`Stage::merge_shards`] will need from it ([`ShardRecord::data`]); the
    /// contract writes `shard.json` around it. Only called when [`Stage::SHARDABLE`].
    fn run_shard(
        _ctx: &StageContext,
        _params: &Self::Params,
        _shard: ShardSpec,
    ) -> anyhow::Result<serde_json::Value> {
        Err(ShardError::NotShardable {
            kind: Self::KIND.into(),
        }
        .into())
    }

    /// Assembles the whole output in `ctx.out_dir()` from `shards` (every shard of the array,
    /// checked and in index order), byte-identical to what [`Stage::run`] writes. Only called
    /// when [`Stage::SHARDABLE`].
    fn merge_shards(
        _ctx: &StageContext,
        _params: &Self::Params,
        _shards: &[Shard],
    ) -> anyhow::Result<()> {
        Err(ShardError::NotShardable {
            kind: Self::KIND.into(),
        }
        .into())
    }

    fn describe() -> StageDescription {
        StageDescription {
            kind: Self::KIND,
            doc: Self::DOC,
            inputs: Self::inputs(),
            outputs: Self::outputs(),
            params: serde_json::to_value(Self::Params::default()).unwrap_or_default(),
            checks: true,
            shardable: Self::SHARDABLE,
        }
    }
}

/// What a running stage sees: its resolved inputs, its (staging) output folder, progress.
#[derive(Debug)]
pub struct StageContext {
    kind: &'static str,
    inputs: BTreeMap<String, PathBuf>,
    out: PathBuf,
    progress_mode: ProgressMode,
}

impl StageContext {
    /// A context for calling a stage's `run` directly (tests, benchmarks, other tools).
    pub fn new(kind: &'static str, inputs: BTreeMap<String, PathBuf>, out: PathBuf) -> Self {
        Self {
            kind,
            inputs,
            out,
            progress_mode: ProgressMode::from_env(),
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Path of a declared input; declared-required inputs are checked before `run` is called.
    pub fn input(&self, name: &str) -> anyhow::Result<&Path> {
        self.inputs
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| anyhow::anyhow!("stage {}: input '{name}' was not given", self.kind))
    }

    pub fn optional_input(&self, name: &str) -> Option<&Path> {
        self.inputs.get(name).map(PathBuf::as_path)
    }

    /// The folder to write outputs into (private to this run; renamed into place on success).
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    pub fn out_path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// A progress reporter for `total` units of work (a bar for people, JSON lines for the runner).
    pub fn progress(&self, label: &str, total: u64) -> Progress {
        Progress::new(self.progress_mode, self.kind, label, total)
    }

    /// Writes `metrics.json` (a flat object of headline numbers) into the output folder.
    pub fn write_metrics(
        &self,
        metrics: &BTreeMap<String, serde_json::Value>,
    ) -> anyhow::Result<()> {
        Ok(self.save_metrics(metrics)?)
    }

    /// [`StageContext::write_metrics`] with the contract's own error, for library code (the
    /// training session) that does not use anyhow.
    pub fn save_metrics(
        &self,
        metrics: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), ContractError> {
        let path = self.out.join(METRICS_FILE);
        let text = serde_json::to_string_pretty(metrics).expect("JSON values serialize");
        std::fs::write(&path, text).map_err(|source| ContractError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
    }
}

/// Parses params from a JSON object, naming each offending key (unknown or mistyped) in the
/// error.
pub fn params_from_value<P: DeserializeOwned>(
    kind: &str,
    value: serde_json::Value,
) -> Result<P, ContractError> {
    check::parse_params(value).map_err(|problems| ContractError::InvalidParams {
        kind: kind.to_string(),
        problems,
    })
}

/// The whole `main` of a stage binary: parse arguments, validate, run into a staging folder,
/// rename into place. Errors are printed with their causes and give exit code 1 (2 for bad usage).
pub fn stage_main<S: Stage>() -> ExitCode {
    stage_main_from::<S>(std::env::args_os())
}

/// [`stage_main`] over given arguments (the program name first), for binaries that translate
/// convenience flags into the contract's arguments before handing over.
pub fn stage_main_from<S: Stage>(
    argv: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> ExitCode {
    let args = match StageArgs::try_parse_from_iter(S::KIND, S::DOC, argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if args.check {
        return match check_params::<S>(&args) {
            Ok(report) => {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "error: {}: {}",
                    S::KIND,
                    error_text(&anyhow::Error::from(e))
                );
                ExitCode::FAILURE
            }
        };
    }
    if args.describe {
        println!(
            "{}",
            serde_json::to_string_pretty(&S::describe()).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    match run_stage::<S>(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {}", S::KIND, error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs a stage with parsed arguments (what [`stage_main`] does after parsing): a whole run,
/// a shard task (`--shard`) or a merge (`--merge-shards`).
pub fn run_stage<S: Stage>(args: &StageArgs) -> anyhow::Result<()> {
    let Some(out) = args.out.clone() else {
        anyhow::bail!("--out DIR is required (the folder the stage's outputs go to)");
    };
    if args.shard.is_some() && args.merge_shards.is_some() {
        anyhow::bail!(
            "--shard and --merge-shards exclude each other: run each shard task with --shard I/N, then one --merge-shards"
        );
    }
    if (args.shard.is_some() || args.merge_shards.is_some()) && !S::SHARDABLE {
        return Err(ShardError::NotShardable {
            kind: S::KIND.into(),
        }
        .into());
    }
    let params_value = args.params_value(S::KIND)?;
    let params: S::Params = params_from_value(S::KIND, params_value)?;
    S::validate(&params).map_err(|problems| ContractError::InvalidParams {
        kind: S::KIND.to_string(),
        problems,
    })?;
    let inputs = resolve_inputs(S::KIND, &S::inputs(), &args.inputs)?;
    if out.exists() {
        return Err(ContractError::OutExists(out).into());
    }
    // Typed and re-serialised: what shard tasks record and the merge compares.
    let normalised = || serde_json::to_value(&params).expect("params serialise");
    let shards = args
        .merge_shards
        .as_deref()
        .map(|dir| shard::read_shards(S::KIND, dir, &normalised()))
        .transpose()?;
    in_staging(S::KIND, inputs, &out, |ctx| {
        match (args.shard, &shards) {
            (Some(spec), _) => {
                let data = S::run_shard(ctx, &params, spec)?;
                ShardRecord {
                    kind: S::KIND.into(),
                    index: spec.index,
                    count: spec.count,
                    params: normalised(),
                    data,
                }
                .write(ctx.out_dir())?;
            }
            (None, Some(shards)) => S::merge_shards(ctx, &params, shards)?,
            (None, None) => S::run(ctx, &params)?,
        }
        Ok(())
    })
}

/// Runs `work` with a context whose output folder is a fresh staging sibling of `out`, renamed
/// to `out` when `work` succeeds and removed when it fails.
fn in_staging(
    kind: &'static str,
    inputs: BTreeMap<String, PathBuf>,
    out: &Path,
    work: impl FnOnce(&StageContext) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let staging = staging_path(out);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).ok();
    }
    std::fs::create_dir_all(&staging).map_err(|source| ContractError::Io {
        context: format!("creating {}", staging.display()),
        source,
    })?;
    let ctx = StageContext {
        kind,
        inputs,
        out: staging.clone(),
        progress_mode: ProgressMode::from_env(),
    };
    if let Err(e) = work(&ctx) {
        std::fs::remove_dir_all(&staging).ok();
        return Err(e);
    }
    std::fs::rename(&staging, out).map_err(|source| ContractError::Io {
        context: format!(
            "moving {} into place as {}",
            staging.display(),
            out.display()
        ),
        source,
    })?;
    Ok(())
}

fn staging_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    out.with_file_name(format!("{name}.partial-{}", std::process::id()))
}

fn resolve_inputs(
    kind: &str,
    specs: &[InputSpec],
    given: &[(String, PathBuf)],
) -> Result<BTreeMap<String, PathBuf>, ContractError> {
    let all = specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ");
    let mut inputs = BTreeMap::new();
    for (name, path) in given {
        if !specs.iter().any(|s| s.name == name) {
            return Err(ContractError::UnknownInput {
                kind: kind.into(),
                name: name.clone(),
                all,
            });
        }
        if !path.exists() {
            return Err(ContractError::InputNotFound {
                name: name.clone(),
                path: path.clone(),
            });
        }
        inputs.insert(name.clone(), path.clone());
    }
    for spec in specs.iter().filter(|s| s.required) {
        if !inputs.contains_key(spec.name) {
            return Err(ContractError::MissingInput {
                kind: kind.into(),
                name: spec.name.into(),
                all,
            });
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests;
