//! The batch scripts `sbatch` runs: one per stage job, kept in the entry's staging folder
//! (`slurm/job.sh`, or `slurm/tasks.sh` and `slurm/merge.sh` for a sharded stage) so that a
//! failed job can be read, and resubmitted by hand, as it was run.

use super::config::{SlurmConfig, format_time_limit};
use crate::pipeline::Resources;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Quotes one word for `bash` (single quotes; a `'` inside becomes `'\''`).
pub fn shell_quote(word: &OsStr) -> String {
    let s = String::from_utf8_lossy(word.as_bytes());
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.into_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A Slurm job name: `uda-<pipeline>-<node>` with characters outside `[A-Za-z0-9._=,-]`
/// (the brackets of `fda[beta=0.01]`) made `_`, so `squeue --me` shows what runs.
pub fn job_name(pipeline: &str, node: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._=,-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("uda-{}-{}", clean(pipeline), clean(node))
}

/// What one batch script runs.
#[derive(Debug, Clone)]
pub struct ScriptSpec<'a> {
    pub name: String,
    /// `--output`: the log (Slurm's `%j`, `%a` patterns allowed).
    pub log: String,
    pub workdir: &'a std::path::Path,
    pub resources: Resources,
    pub config: &'a SlurmConfig,
    /// `--array=0-(N-1)` for shard tasks.
    pub array: Option<u32>,
    /// Environment of the stage (`UDA_THREADS`, `UDA_RESUME_DIR`, ...).
    pub env: &'a [(String, String)],
    /// Lines run before the command, unquoted (they may use `$SLURM_ARRAY_TASK_ID`).
    pub setup: Vec<String>,
    /// Marker files `slurm/MARKER.start` and `slurm/MARKER.end` (a shell word, e.g.
    /// `task-$SLURM_ARRAY_TASK_ID`): the job's id and start time, then the stage's exit code
    /// and end time, for the runner and for the overhead figures.
    pub marker: String,
    /// The command line, each word already quoted or a deliberate shell expansion.
    pub command: Vec<String>,
}

impl ScriptSpec<'_> {
    /// The `#SBATCH` lines: the stage's `resources` and the executor settings.
    pub fn directives(&self) -> Vec<String> {
        let r = &self.resources;
        let mut d = vec![
            format!("--job-name={}", self.name),
            format!("--output={}", self.log),
            format!("--chdir={}", self.workdir.display()),
            "--nodes=1".to_string(),
            "--ntasks=1".to_string(),
            // A job Slurm would requeue by itself (node failure, preemption) ends instead, and
            // uda-pipe submits it afresh (`max_retries`) into a clean staging folder.
            "--no-requeue".to_string(),
            format!("--cpus-per-task={}", r.cpus.max(1)),
        ];
        let mem_gb = if r.memory_gb > 0.0 {
            r.memory_gb
        } else {
            self.config.default_memory_gb
        };
        if mem_gb > 0.0 {
            // Megabytes, rounded up: `--mem` takes an integer.
            d.push(format!("--mem={}M", (mem_gb * 1024.0).ceil() as u64));
        }
        if r.gpus > 0 {
            d.push(format!("--gres=gpu:{}", r.gpus));
        }
        if let Some(t) = r.time_s {
            d.push(format!("--time={}", format_time_limit(t)));
        }
        if let Some(n) = self.array {
            d.push(format!("--array=0-{}", n.saturating_sub(1)));
        }
        for (flag, v) in [
            ("partition", &self.config.partition),
            ("account", &self.config.account),
            ("qos", &self.config.qos),
        ] {
            if let Some(v) = v {
                d.push(format!("--{flag}={v}"));
            }
        }
        d
    }

    /// The whole script. Extra `sbatch` flags of the config are given on the command line
    /// instead (they may not be safe to write after `#SBATCH`).
    pub fn render(&self) -> String {
        let mut s = String::from(
            "#!/bin/bash\n# Written by uda-pipe (Slurm executor); sbatch runs it as it is.\n",
        );
        for d in self.directives() {
            s.push_str(&format!("#SBATCH {d}\n"));
        }
        s.push_str("set -u\n");
        for line in &self.config.prologue {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!(
            "cd {} || exit 1\n",
            shell_quote(self.workdir.as_os_str())
        ));
        s.push_str(&format!("export {}=jsonl\n", uda_stage::PROGRESS_ENV));
        for (k, v) in self.env {
            s.push_str(&format!("export {k}={}\n", shell_quote(OsStr::new(v))));
        }
        for line in &self.setup {
            s.push_str(line);
            s.push('\n');
        }
        let m = &self.marker;
        s.push_str(&format!(
            "echo \"$SLURM_JOB_ID $(date +%s%3N) $(hostname)\" > slurm/{m}.start\n"
        ));
        // Not `exec`: the exit code and end time are written after the stage. scancel and the
        // time limit still reach the stage: Slurm signals every process of the job.
        s.push_str(&self.command.join(" "));
        s.push('\n');
        s.push_str(&format!(
            "code=$?\necho \"$code $(date +%s%3N)\" > slurm/{m}.end\nexit $code\n"
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn quoting_survives_bash() {
        for w in [
            "plain",
            "with space",
            "it's",
            "$HOME",
            "a\"b",
            "",
            "x;rm -rf /",
        ] {
            let q = shell_quote(OsStr::new(w));
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("printf %s {q}"))
                .output()
                .expect("bash");
            assert_eq!(String::from_utf8_lossy(&out.stdout), w, "quoted as {q}");
        }
    }

    #[test]
    fn job_names_show_pipeline_and_node() {
        assert_eq!(
            job_name("gta2cs", "fda[beta=0.01]"),
            "uda-gta2cs-fda_beta=0.01_"
        );
    }

    #[test]
    fn resources_map_onto_sbatch_flags() {
        let cfg = SlurmConfig {
            partition: Some("gpu".into()),
            qos: Some("high".into()),
            prologue: vec!["module load cuda".into()],
            ..SlurmConfig::default()
        };
        let env = vec![("UDA_THREADS".to_string(), "4".to_string())];
        let spec = ScriptSpec {
            name: "uda-p-train".into(),
            log: "/c/tmp/k/slurm/job-%j.log".into(),
            workdir: Path::new("/c/tmp/k"),
            resources: Resources {
                cpus: 4,
                gpus: 1,
                memory_gb: 30.5,
                time_s: Some(7200),
                shards: 0,
            },
            config: &cfg,
            array: Some(3),
            env: &env,
            setup: vec![],
            marker: "job-$SLURM_JOB_ID".into(),
            command: vec!["/bin/stage".into(), "--out".into(), "out".into()],
        };
        let d = spec.directives();
        for want in [
            "--cpus-per-task=4",
            "--mem=31232M",
            "--gres=gpu:1",
            "--time=2:00:00",
            "--array=0-2",
            "--partition=gpu",
            "--qos=high",
            "--job-name=uda-p-train",
        ] {
            assert!(d.contains(&want.to_string()), "{want} missing from {d:?}");
        }
        assert!(!d.iter().any(|x| x.starts_with("--account")), "{d:?}");
        let text = spec.render();
        assert!(text.contains("module load cuda\n"), "{text}");
        assert!(text.contains("export UDA_THREADS=4\n"), "{text}");
        assert!(text.contains("\n/bin/stage --out out\ncode=$?\n"), "{text}");
        assert!(
            text.contains("> slurm/job-$SLURM_JOB_ID.end\nexit $code\n"),
            "{text}"
        );
        // No memory asked: the default, so jobs do not each take a whole node.
        let spec = ScriptSpec {
            resources: Resources::default(),
            array: None,
            ..spec
        };
        assert!(spec.directives().contains(&"--mem=4096M".to_string()));
    }
}
