//! Tiny stages for the runner's tests: they exercise the stage contract (inputs, params,
//! progress, metrics, failure, being killed mid-write) without libtorch or real data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use uda_stage::{InputSpec, OutputSpec, Stage, StageContext};

/// `uda-test-gen`: writes `count` text files `files/f<i>.txt` (no inputs).
#[derive(Debug)]
pub struct Gen;

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenParams {
    pub count: u32,
    pub text: String,
    pub scale: f64,
    pub seed: i64,
    /// Also write `stamp.txt` with the current time (a non-deterministic output).
    pub stamp: bool,
    /// Touch this many MiB of memory for `hold_ms` (to test peak-memory reporting and limits).
    pub alloc_mb: u64,
    pub hold_ms: u64,
    /// Also write `files/link`, a symbolic link to this path (outputs must be plain files).
    pub link_to: String,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            count: 2,
            text: "hello".into(),
            scale: 1.0,
            seed: 0,
            stamp: false,
            alloc_mb: 0,
            hold_ms: 200,
            link_to: String::new(),
        }
    }
}

impl Stage for Gen {
    const KIND: &'static str = "uda-test-gen";
    const DOC: &'static str = "Writes count small text files (a test stage)";
    type Params = GenParams;
    fn inputs() -> Vec<InputSpec> {
        Vec::new()
    }
    fn outputs() -> Vec<OutputSpec> {
        vec![OutputSpec {
            name: "files",
            doc: "the text files",
        }]
    }
    fn validate(p: &GenParams) -> Result<(), Vec<uda_stage::ParamProblem>> {
        let mut problems = uda_stage::ParamProblems::new();
        problems.ensure(
            p.scale.is_finite() && p.scale > 0.0,
            "scale",
            format!("must be a positive number, not {}", p.scale),
        );
        problems.into_result()
    }
    fn run(ctx: &StageContext, p: &GenParams) -> anyhow::Result<()> {
        if p.alloc_mb > 0 {
            let block = vec![1u8; (p.alloc_mb as usize) << 20];
            std::thread::sleep(std::time::Duration::from_millis(p.hold_ms));
            println!(
                "touched {} MiB (checksum {})",
                p.alloc_mb,
                block
                    .iter()
                    .step_by(4096)
                    .map(|&b| u64::from(b))
                    .sum::<u64>()
            );
        }
        let dir = ctx.out_path("files");
        std::fs::create_dir_all(&dir)?;
        let progress = ctx.progress("writing", u64::from(p.count));
        for i in 0..p.count {
            std::fs::write(
                dir.join(format!("f{i}.txt")),
                format!("{} {i} x{} seed {}\n", p.text, p.scale, p.seed),
            )?;
            progress.inc(1);
        }
        progress.finish();
        if !p.link_to.is_empty() {
            std::os::unix::fs::symlink(&p.link_to, dir.join("link"))?;
        }
        if p.stamp {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos();
            std::fs::write(ctx.out_path("stamp.txt"), now.to_string())?;
        }
        println!("wrote {} files", p.count);
        ctx.write_metrics(&BTreeMap::from([
            ("files".to_string(), serde_json::json!(p.count)),
            ("scale".to_string(), serde_json::json!(p.scale)),
        ]))
    }
}

/// `uda-test-copy`: copies every file of input `src` (a file or folder, links followed) into
/// the output, optionally upper-cased and with a suffix appended to each text file.
#[derive(Debug)]
pub struct Copy;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopyParams {
    pub upper: bool,
    pub suffix: String,
    pub beta: f64,
    /// Copy only this folder inside `src` (empty: all of it); lets a sweep pick one fixture
    /// folder per instance (`subdir: 's${seed}'`).
    pub subdir: String,
}

impl Stage for Copy {
    const KIND: &'static str = "uda-test-copy";
    const DOC: &'static str =
        "Copies (and optionally transforms) the files of its input (a test stage)";
    type Params = CopyParams;
    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec {
                name: "src",
                doc: "a file or folder",
                required: true,
            },
            InputSpec {
                name: "extra",
                doc: "another file or folder, copied under extra/",
                required: false,
            },
        ]
    }
    fn outputs() -> Vec<OutputSpec> {
        Vec::new()
    }
    fn run(ctx: &StageContext, p: &CopyParams) -> anyhow::Result<()> {
        let src = ctx.input("src")?;
        if p.subdir.is_empty() {
            copy_tree(src, ctx.out_dir(), p)?;
        } else {
            copy_tree(&src.join(&p.subdir), ctx.out_dir(), p)?;
        }
        if let Some(extra) = ctx.optional_input("extra") {
            copy_tree(extra, &ctx.out_path("extra"), p)?;
        }
        eprintln!("copied with beta {}", p.beta);
        Ok(())
    }
}

fn copy_tree(src: &Path, dst: &Path, p: &CopyParams) -> anyhow::Result<()> {
    let meta = std::fs::metadata(src)?;
    if meta.is_file() {
        let name = src
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "file".into());
        std::fs::create_dir_all(dst)?;
        return copy_file(src, &dst.join(name), p);
    }
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let path = e.path();
        let target = dst.join(e.file_name());
        if std::fs::metadata(&path)?.is_dir() {
            copy_tree(&path, &target, p)?;
        } else {
            std::fs::create_dir_all(dst)?;
            copy_file(&path, &target, p)?;
        }
    }
    Ok(())
}

fn copy_file(src: &Path, dst: &Path, p: &CopyParams) -> anyhow::Result<()> {
    let bytes = std::fs::read(src)?;
    match String::from_utf8(bytes) {
        Ok(text) if p.upper || !p.suffix.is_empty() => {
            let t = if p.upper { text.to_uppercase() } else { text };
            std::fs::write(dst, format!("{t}{}", p.suffix))?;
        }
        Ok(text) => std::fs::write(dst, text)?,
        Err(e) => std::fs::write(dst, e.into_bytes())?,
    }
    Ok(())
}

/// `uda-test-slow`: writes `out/big.txt` in `chunks` pieces over `millis` ms (or
/// `$UDA_TEST_SLOW_MILLIS`, which is not a param so it does not change the cache key), reporting
/// progress; first appends its pid to `pid_file`, so a test can count runs and SIGKILL it mid-write.
#[derive(Debug)]
pub struct Slow;

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowParams {
    pub millis: u64,
    pub chunks: u64,
    pub pid_file: String,
    pub tag: String,
}

impl Default for SlowParams {
    fn default() -> Self {
        Self {
            millis: 500,
            chunks: 10,
            pid_file: String::new(),
            tag: String::new(),
        }
    }
}

impl Stage for Slow {
    const KIND: &'static str = "uda-test-slow";
    const DOC: &'static str = "Writes a file slowly, in chunks (a test stage)";
    type Params = SlowParams;
    fn inputs() -> Vec<InputSpec> {
        vec![InputSpec {
            name: "src",
            doc: "optional; its file count is written first",
            required: false,
        }]
    }
    fn outputs() -> Vec<OutputSpec> {
        vec![OutputSpec {
            name: "big.txt",
            doc: "the slowly written file",
        }]
    }
    fn run(ctx: &StageContext, p: &SlowParams) -> anyhow::Result<()> {
        use std::io::Write;
        if !p.pid_file.is_empty() {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p.pid_file)?;
            writeln!(f, "{}", std::process::id())?;
        }
        let millis = std::env::var("UDA_TEST_SLOW_MILLIS")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(p.millis);
        let mut f = std::fs::File::create(ctx.out_path("big.txt"))?;
        writeln!(f, "tag {}", p.tag)?;
        let progress = ctx.progress("chunks", p.chunks);
        for i in 0..p.chunks {
            writeln!(f, "chunk {i} {}", "x".repeat(1000))?;
            f.flush()?;
            progress.inc(1);
            std::thread::sleep(std::time::Duration::from_millis(millis / p.chunks.max(1)));
        }
        progress.finish();
        Ok(())
    }
}

/// `uda-test-fail`: prints to stdout and stderr, writes a partial file, then fails.
#[derive(Debug)]
pub struct Fail;

#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailParams {
    pub message: String,
}

impl Default for FailParams {
    fn default() -> Self {
        Self {
            message: "boom".into(),
        }
    }
}

impl Stage for Fail {
    const KIND: &'static str = "uda-test-fail";
    const DOC: &'static str = "Always fails (a test stage)";
    type Params = FailParams;
    fn inputs() -> Vec<InputSpec> {
        vec![InputSpec {
            name: "src",
            doc: "ignored",
            required: false,
        }]
    }
    fn outputs() -> Vec<OutputSpec> {
        Vec::new()
    }
    fn run(ctx: &StageContext, p: &FailParams) -> anyhow::Result<()> {
        println!("about to fail on stdout");
        eprintln!("about to fail on stderr");
        std::fs::write(ctx.out_path("partial.txt"), "half")?;
        anyhow::bail!("{}", p.message)
    }
}
