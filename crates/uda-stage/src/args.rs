//! Command-line arguments shared by every stage binary.

use crate::{ContractError, ParamProblem, ShardSpec};
use clap::{Arg, ArgAction, Command};
use std::path::PathBuf;

/// Parsed stage arguments (see the crate docs for their meaning).
#[derive(Debug, Clone, Default)]
pub struct StageArgs {
    pub out: Option<PathBuf>,
    pub inputs: Vec<(String, PathBuf)>,
    pub params_file: Option<PathBuf>,
    pub params: Vec<(String, String)>,
    pub describe: bool,
    /// `--check`: validate the params, print a [`crate::CheckReport`] and exit.
    pub check: bool,
    /// `--shard I/N`: compute only shard I of N (see [`crate::shard`]).
    pub shard: Option<ShardSpec>,
    /// `--merge-shards DIR`: assemble the output from the finished shards in `DIR/0 .. DIR/N-1`.
    pub merge_shards: Option<PathBuf>,
}

impl StageArgs {
    fn command(kind: &'static str, doc: &'static str) -> Command {
        Command::new(kind)
            .about(doc)
            .arg(
                Arg::new("out")
                    .long("out")
                    .value_name("DIR")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Output folder (must not exist; written atomically)"),
            )
            .arg(
                Arg::new("input")
                    .long("input")
                    .value_name("NAME=PATH")
                    .action(ArgAction::Append)
                    .help("An input folder, by the name the stage declares (see --describe)"),
            )
            .arg(
                Arg::new("params")
                    .long("params")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("JSON or YAML object of params"),
            )
            .arg(
                Arg::new("param")
                    .long("param")
                    .short('p')
                    .value_name("KEY=VALUE")
                    .action(ArgAction::Append)
                    .help("Set one param (YAML value); wins over --params"),
            )
            .arg(
                Arg::new("describe")
                    .long("describe")
                    .action(ArgAction::SetTrue)
                    .help("Print inputs, outputs and params with defaults as JSON, then exit"),
            )
            .arg(
                Arg::new("check")
                    .long("check")
                    .action(ArgAction::SetTrue)
                    .conflicts_with("describe")
                    .help(
                        "Validate the params (no --out or inputs needed), print {\"ok\": ..} as JSON, then exit",
                    ),
            )
            .arg(
                Arg::new("shard")
                    .long("shard")
                    .value_name("I/N")
                    .value_parser(|s: &str| s.parse::<ShardSpec>().map_err(|e| e.to_string()))
                    .conflicts_with_all(["describe", "check", "merge-shards"])
                    .help("Compute only shard I of N (0 <= I < N) into --out, for a later --merge-shards"),
            )
            .arg(
                Arg::new("merge-shards")
                    .long("merge-shards")
                    .value_name("SHARDS_DIR")
                    .value_parser(clap::value_parser!(PathBuf))
                    .conflicts_with_all(["describe", "check"])
                    .help("Assemble --out from the shard outputs SHARDS_DIR/0 .. SHARDS_DIR/N-1 (same inputs and params as the shard tasks)"),
            )
    }

    /// Parses `std::env::args()` for a stage of the given kind.
    pub fn try_parse_for(kind: &'static str, doc: &'static str) -> Result<Self, clap::Error> {
        Self::try_parse_from_iter(kind, doc, std::env::args_os())
    }

    pub fn try_parse_from_iter<I, T>(
        kind: &'static str,
        doc: &'static str,
        it: I,
    ) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cmd = Self::command(kind, doc);
        let m = cmd.clone().try_get_matches_from(it)?;
        let split = |s: &String, what: &str| -> Result<(String, String), clap::Error> {
            parse_assignment(s).ok_or_else(|| {
                cmd.clone().error(
                    clap::error::ErrorKind::ValueValidation,
                    format!("{what} '{s}' is not of the form NAME=VALUE"),
                )
            })
        };
        let mut inputs = Vec::new();
        for s in m.get_many::<String>("input").into_iter().flatten() {
            let (k, v) = split(s, "--input")?;
            inputs.push((k, PathBuf::from(v)));
        }
        let mut params = Vec::new();
        for s in m.get_many::<String>("param").into_iter().flatten() {
            params.push(split(s, "--param")?);
        }
        Ok(Self {
            out: m.get_one::<PathBuf>("out").cloned(),
            inputs,
            params_file: m.get_one::<PathBuf>("params").cloned(),
            params,
            describe: m.get_flag("describe"),
            check: m.get_flag("check"),
            shard: m.get_one::<ShardSpec>("shard").copied(),
            merge_shards: m.get_one::<PathBuf>("merge-shards").cloned(),
        })
    }

    /// The params as one JSON object: `--params FILE` first, then each `--param` over it.
    /// Dotted keys (`a.b=1`) set nested objects.
    pub fn params_value(&self, kind: &str) -> Result<serde_json::Value, ContractError> {
        let (value, problems) = self.params_value_and_problems()?;
        match problems.into_iter().next() {
            None => Ok(value),
            Some(p) => Err(ContractError::BadParams {
                kind: kind.into(),
                message: p.to_string(),
            }),
        }
    }

    /// [`StageArgs::params_value`], with each `--param` whose value is not YAML as a problem
    /// (left out of the object) instead of an error; only the params file is an error.
    pub(crate) fn params_value_and_problems(
        &self,
    ) -> Result<(serde_json::Value, Vec<ParamProblem>), ContractError> {
        let mut value = match &self.params_file {
            None => serde_json::Value::Object(Default::default()),
            Some(path) => read_params_file(path)?,
        };
        let mut problems = Vec::new();
        for (key, raw) in &self.params {
            match serde_saphyr::from_str::<serde_json::Value>(raw) {
                Ok(parsed) => set_dotted(&mut value, key, parsed),
                Err(e) => problems.push(ParamProblem::new(
                    key.clone(),
                    format!("--param {key}={raw}: not a valid value ({e})"),
                )),
            }
        }
        Ok((value, problems))
    }
}

fn read_params_file(path: &std::path::Path) -> Result<serde_json::Value, ContractError> {
    let text = std::fs::read_to_string(path).map_err(|source| ContractError::ParamsRead {
        path: path.to_path_buf(),
        source,
    })?;
    let v: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| ContractError::ParamsFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if !v.is_object() {
        return Err(ContractError::ParamsFile {
            path: path.to_path_buf(),
            message: "expected a mapping of param names to values".into(),
        });
    }
    Ok(v)
}

/// Splits `NAME=VALUE` at the first `=`; `None` when there is none or NAME is empty.
pub fn parse_assignment(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    let k = k.trim();
    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
}

fn set_dotted(root: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    let mut cur = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            *cur = serde_json::Value::Object(Default::default());
        }
        let obj = cur.as_object_mut().expect("just made an object");
        if parts.peek().is_none() {
            obj.insert(part.to_string(), value);
            return;
        }
        cur = obj
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
}
