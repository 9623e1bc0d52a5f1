//! Which executor runs the stages, and the Slurm settings: the `executor:` block of
//! `pipeline.yaml`, `UDA_EXECUTOR`, `uda-pipe run --executor` and `--slurm-opt KEY=VALUE`.
//!
//! ```yaml
//! executor:
//!   slurm:
//!     partition: gpu
//!     account: my-lab
//!     qos: normal
//!     sbatch: ["--constraint=a100"]          # extra sbatch flags, passed as they are
//!     prologue: ["module load cuda/12.4"]    # shell lines run on the node before the stage
//!     poll_interval_s: 10                    # one sacct call per interval (at least 1 s)
//!     max_retries: 1                         # resubmissions after PREEMPTED / NODE_FAIL
//!     default_memory_gb: 4                   # --mem for stages that do not ask for memory
//! ```
//!
//! None of this is part of a cache key: where a result was computed does not change it.

use std::time::Duration;

/// Where stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// Child processes of `uda-pipe` on this machine.
    #[default]
    Local,
    /// One `sbatch` job per stage (an array job per sharded stage).
    Slurm,
}

impl ExecutorKind {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "local" => Ok(Self::Local),
            "slurm" => Ok(Self::Slurm),
            other => Err(format!("unknown executor '{other}' (known: local, slurm)")),
        }
    }
}

/// The environment variable that picks the executor (below `--executor`, above the file).
pub const EXECUTOR_ENV: &str = "UDA_EXECUTOR";

/// Settings of the Slurm executor.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Extra `sbatch` flags, each one argument (`--constraint=a100`).
    pub sbatch: Vec<String>,
    /// Shell lines the batch script runs before the stage (`module load ...`, `export ...`).
    pub prologue: Vec<String>,
    /// Time between two state polls; each poll is one `sacct` call for every tracked job.
    pub poll_interval: Duration,
    /// How many times a job that Slurm ended through no fault of its own (PREEMPTED, NODE_FAIL,
    /// BOOT_FAIL) is submitted again.
    pub max_retries: u32,
    /// `--mem` for a stage whose `resources` ask for no memory. Without it, a cluster with
    /// `CR_Core_Memory` gives the job the whole node and runs such jobs one at a time.
    pub default_memory_gb: f64,
}

/// Polls closer than this flood `slurmctld`; admins ask users not to.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            partition: None,
            account: None,
            qos: None,
            sbatch: Vec::new(),
            prologue: Vec::new(),
            poll_interval: Duration::from_secs(5),
            max_retries: 1,
            default_memory_gb: 4.0,
        }
    }
}

/// The keys of the `executor: {slurm: {...}}` block and of `--slurm-opt`.
pub const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "sbatch",
    "prologue",
    "poll_interval_s",
    "max_retries",
    "default_memory_gb",
];

/// The `executor:` value of a pipeline file: `local`, `slurm`, or `{slurm: {...}}`.
pub fn parse_executor_block(v: &serde_json::Value) -> Result<(ExecutorKind, SlurmConfig), String> {
    let mut cfg = SlurmConfig::default();
    match v {
        serde_json::Value::String(s) => Ok((ExecutorKind::parse(s)?, cfg)),
        serde_json::Value::Object(m) if m.len() == 1 => {
            let (k, body) = m.iter().next().expect("one key");
            let kind = ExecutorKind::parse(k)?;
            match (kind, body) {
                (_, serde_json::Value::Null) => {}
                (ExecutorKind::Slurm, serde_json::Value::Object(opts)) => {
                    for (key, value) in opts {
                        cfg.set(key, value)
                            .map_err(|m| format!("executor.slurm.{key}: {m}"))?;
                    }
                }
                (ExecutorKind::Slurm, other) => {
                    return Err(format!(
                        "executor.slurm must be a mapping of settings, found {other}"
                    ));
                }
                (ExecutorKind::Local, _) => {
                    return Err("executor.local takes no settings".into());
                }
            }
            Ok((kind, cfg))
        }
        _ => Err(
            "`executor` must be `local`, `slurm` or a mapping like {slurm: {partition: gpu}}"
                .into(),
        ),
    }
}

impl SlurmConfig {
    /// Sets one key from a JSON value (the file) ; lists append.
    pub fn set(&mut self, key: &str, v: &serde_json::Value) -> Result<(), String> {
        let text = |v: &serde_json::Value| -> Result<String, String> {
            match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => Err(format!("expected text, found {other}")),
            }
        };
        let list = |v: &serde_json::Value| -> Result<Vec<String>, String> {
            match v {
                serde_json::Value::Array(a) => a.iter().map(text).collect(),
                other => Ok(vec![text(other)?]),
            }
        };
        let number = |v: &serde_json::Value| -> Result<f64, String> {
            match v {
                serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".into()),
                serde_json::Value::String(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| format!("expected a number, found '{s}'")),
                other => Err(format!("expected a number, found {other}")),
            }
            .and_then(|x| {
                if x.is_finite() && x >= 0.0 {
                    Ok(x)
                } else {
                    Err(format!("must be a non-negative number, found {x}"))
                }
            })
        };
        match key {
            "partition" => self.partition = Some(text(v)?),
            "account" => self.account = Some(text(v)?),
            "qos" => self.qos = Some(text(v)?),
            "sbatch" => self.sbatch.extend(list(v)?),
            "prologue" => self.prologue.extend(list(v)?),
            "poll_interval_s" => {
                let s = number(v)?;
                let d = Duration::from_secs_f64(s);
                if d < MIN_POLL_INTERVAL {
                    return Err(format!(
                        "{s} s would flood slurmctld; use at least {} s",
                        MIN_POLL_INTERVAL.as_secs()
                    ));
                }
                self.poll_interval = d;
            }
            "max_retries" => self.max_retries = number(v)? as u32,
            "default_memory_gb" => self.default_memory_gb = number(v)?,
            other => {
                return Err(format!(
                    "unknown Slurm setting '{other}' (known: {})",
                    SLURM_KEYS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// `--slurm-opt KEY=VALUE` (the value is text; numbers are parsed for numeric keys).
    pub fn set_opt(&mut self, assignment: &str) -> Result<(), String> {
        let Some((k, v)) = assignment.split_once('=') else {
            return Err(format!(
                "--slurm-opt '{assignment}': expected KEY=VALUE (keys: {})",
                SLURM_KEYS.join(", ")
            ));
        };
        self.set(k.trim(), &serde_json::Value::String(v.to_string()))
            .map_err(|m| format!("--slurm-opt {}: {m}", k.trim()))
    }
}

/// Slurm's `--time` from `resources.time`: minutes as a number, or `[D-]HH:MM:SS`, `MM:SS`,
/// `D-HH`, `D-HH:MM`, as `sbatch` accepts them. Returns seconds.
pub fn parse_time_limit(s: &str) -> Result<u64, String> {
    let bad =
        || format!("'{s}' is not a time limit (minutes, or [D-]HH:MM:SS as sbatch --time takes)");
    let s = s.trim();
    let num = |p: &str| p.parse::<u64>().map_err(|_| bad());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (num(d)?, Some(r)),
        None => (0, None),
    };
    let secs = match rest {
        Some(r) => {
            let p: Vec<&str> = r.split(':').collect();
            match p.as_slice() {
                [h] => num(h)? * 3600,
                [h, m] => num(h)? * 3600 + num(m)? * 60,
                [h, m, sec] => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
                _ => return Err(bad()),
            }
        }
        None => {
            let p: Vec<&str> = s.split(':').collect();
            match p.as_slice() {
                [m] => num(m)? * 60,
                [m, sec] => num(m)? * 60 + num(sec)?,
                [h, m, sec] => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
                _ => return Err(bad()),
            }
        }
    };
    let total = days * 86400 + secs;
    if total == 0 {
        return Err(format!("'{s}': a time limit must be above zero"));
    }
    Ok(total)
}

/// Seconds as `sbatch --time` takes them (`HH:MM:SS`; hours may pass 24).
pub fn format_time_limit(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn executor_block_forms() {
        assert_eq!(
            parse_executor_block(&json!("local")).unwrap().0,
            ExecutorKind::Local
        );
        let (k, c) = parse_executor_block(&json!({"slurm": {
            "partition": "gpu", "account": "lab", "sbatch": ["--constraint=a100"],
            "prologue": "module load cuda", "poll_interval_s": 2, "max_retries": 3
        }}))
        .unwrap();
        assert_eq!(k, ExecutorKind::Slurm);
        assert_eq!(c.partition.as_deref(), Some("gpu"));
        assert_eq!(c.account.as_deref(), Some("lab"));
        assert_eq!(c.sbatch, vec!["--constraint=a100"]);
        assert_eq!(c.prologue, vec!["module load cuda"]);
        assert_eq!(c.poll_interval, Duration::from_secs(2));
        assert_eq!(c.max_retries, 3);
        assert_eq!(
            parse_executor_block(&json!({"slurm": null})).unwrap().0,
            ExecutorKind::Slurm
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = parse_executor_block(&json!({"slurm": {"partion": "gpu"}})).unwrap_err();
        assert!(
            e.contains("executor.slurm.partion") && e.contains("partition"),
            "{e}"
        );
        let e = parse_executor_block(&json!({"slurm": {"poll_interval_s": 0.1}})).unwrap_err();
        assert!(e.contains("flood"), "{e}");
        let e = parse_executor_block(&json!("pbs")).unwrap_err();
        assert!(e.contains("'pbs'"), "{e}");
        let mut c = SlurmConfig::default();
        let e = c.set_opt("partition").unwrap_err();
        assert!(e.contains("KEY=VALUE"), "{e}");
        c.set_opt("qos=high").unwrap();
        c.set_opt("max_retries=0").unwrap();
        assert_eq!((c.qos.as_deref(), c.max_retries), (Some("high"), 0));
        assert!(
            c.set_opt("max_retries=many")
                .unwrap_err()
                .contains("max_retries")
        );
    }

    #[test]
    fn time_limits_as_sbatch_reads_them() {
        assert_eq!(parse_time_limit("90"), Ok(90 * 60));
        assert_eq!(parse_time_limit("1:30"), Ok(90));
        assert_eq!(parse_time_limit("2:00:00"), Ok(7200));
        assert_eq!(parse_time_limit("1-12"), Ok(36 * 3600));
        assert_eq!(parse_time_limit("1-00:30:00"), Ok(86400 + 1800));
        assert!(parse_time_limit("soon").is_err());
        assert!(parse_time_limit("0").is_err());
        assert_eq!(format_time_limit(36 * 3600 + 61), "36:01:01");
    }
}
