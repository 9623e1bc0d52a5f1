//! `uda-pipe`: the command-line front end of the runner (`uda_runner` does the work).
//! Add a subcommand by adding a variant to [`Cmd`] and an arm to [`dispatch`].

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use uda_runner::commands::{self, DagFormat};
use uda_runner::executor::LocalExecutor;
use uda_runner::run::{Outcome, RunOptions};
use uda_runner::ui::{Ui, human_duration};

#[derive(Debug, Parser)]
#[command(
    name = "uda-pipe",
    version,
    about = "GTA5 -> Cityscapes domain adaptation as a cached, resumable DAG of stage binaries"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the pipeline file and cache are, shared by most commands.
#[derive(Debug, Args)]
struct PipelineArgs {
    /// The pipeline file.
    #[arg(
        short = 'f',
        long = "pipeline",
        value_name = "FILE",
        default_value = "pipeline.yaml"
    )]
    pipeline: PathBuf,
    /// Override a param: `seed=3`, `fda.beta=0.05`, `fda.beta=[0.01,0.02]` (sweep values),
    /// `'fda[beta=0.01].iters=5'` (one instance).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Use this cache folder instead of the pipeline's `cache:` (default: cache/ beside the file).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
}

impl PipelineArgs {
    fn load(&self) -> anyhow::Result<uda_runner::Context> {
        Ok(uda_runner::load(
            &self.pipeline,
            &self.sets,
            self.cache.as_deref(),
        )?)
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Translate one image into another's style with FDA (the paper's Figure 1).
    Fda {
        /// Image whose content is kept.
        #[arg(long)]
        src: PathBuf,
        /// Image whose low-frequency amplitude (style) is taken; same size as --src.
        #[arg(long)]
        trg: PathBuf,
        /// Window size: b = floor(min(H, W)·β) for the square window.
        #[arg(long, default_value_t = 0.01)]
        beta: f64,
        /// `square` (the official FDA numpy function) or `rect` (the paper's eq. 1 rectangle).
        #[arg(long, value_enum, default_value_t = FdaWindow::Square)]
        window: FdaWindow,
        /// Output image (PNG).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Run what is out of date, in dependency order and in parallel.
    Run(RunArgs),
    /// Show every stage: up to date, or why it would run.
    Status {
        #[command(flatten)]
        p: PipelineArgs,
        /// Re-hash all cached outputs instead of trusting unchanged file stats.
        #[arg(long)]
        verify: bool,
    },
    /// Print the DAG as text, Graphviz dot or Mermaid.
    Dag {
        #[command(flatten)]
        p: PipelineArgs,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Path, params, key, state and metrics of a stage (all its instances) or one instance.
    Show {
        /// `stage` or `stage[var=value]`.
        stage: String,
        #[command(flatten)]
        p: PipelineArgs,
    },
    /// The captured stdout/stderr of a stage's current result (or of its last failed attempt).
    Log {
        stage: String,
        #[command(flatten)]
        p: PipelineArgs,
    },
    /// Remove cache entries not reachable from the given pipeline files.
    Gc {
        /// Pipeline files whose current results are kept (default: pipeline.yaml).
        pipelines: Vec<PathBuf>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
    /// Print Parquet files as tables: paths, folders, a stage's outputs, or the run history.
    Report {
        /// Parquet files, folders, or stage names (their outputs).
        targets: Vec<String>,
        #[arg(
            short = 'f',
            long = "pipeline",
            value_name = "FILE",
            default_value = "pipeline.yaml"
        )]
        pipeline: PathBuf,
        /// The run history (stage, key, cached or ran, start, duration, peak memory, exit status).
        #[arg(long)]
        history: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The pipeline file.
    #[arg(default_value = "pipeline.yaml")]
    pipeline: PathBuf,
    /// Run only these stages or instances (their missing upstream results are run first).
    #[arg(long = "stage", value_name = "NAME")]
    stages: Vec<String>,
    /// Also run everything downstream of the --stage selection.
    #[arg(long)]
    downstream: bool,
    /// Rerun the selected stages even if cached (the old entry goes to cache/trash).
    #[arg(long)]
    force: bool,
    /// List what would run and why; run nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// CPU budget shared by parallel stages (default: number of CPUs).
    #[arg(short = 'j', long, default_value_t = 0)]
    jobs: usize,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Re-hash all cached outputs instead of trusting unchanged file stats.
    #[arg(long)]
    verify: bool,
    /// Keep starting independent stages after one failed.
    #[arg(short = 'k', long)]
    keep_going: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FdaWindow {
    Square,
    Rect,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Dot,
    Mermaid,
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == uda_runner::executor::TRAMPOLINE_ARG)
    {
        return uda_runner::executor::trampoline_main(&args[2..]);
    }
    match dispatch(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Fda {
            src,
            trg,
            beta,
            window,
            out,
        } => {
            let window = match window {
                FdaWindow::Square => uda_fda::Window::Square,
                FdaWindow::Rect => uda_fda::Window::Rect,
            };
            uda_fda::translate_png(&src, &trg, beta, window, &out)?;
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(a) => run(a),
        Cmd::Status { p, verify } => {
            commands::status(&p.load()?, verify, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Dag { p, format } => {
            let f = match format {
                Format::Text => DagFormat::Text,
                Format::Dot => DagFormat::Dot,
                Format::Mermaid => DagFormat::Mermaid,
            };
            commands::dag(&p.load()?.graph, f, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Show { stage, p } => {
            commands::show(&p.load()?, &stage, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Log { stage, p } => {
            commands::log(&p.load()?, &stage, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gc {
            pipelines,
            dry_run,
            cache,
        } => {
            let pipelines = if pipelines.is_empty() {
                vec![PathBuf::from("pipeline.yaml")]
            } else {
                pipelines
            };
            let mut contexts = Vec::new();
            for p in &pipelines {
                contexts.push(
                    uda_runner::load(p, &[], cache.as_deref())
                        .with_context(|| format!("loading {}", p.display()))?,
                );
            }
            let root = contexts[0].cache.root().to_path_buf();
            if let Some(other) = contexts.iter().find(|c| c.cache.root() != root) {
                anyhow::bail!(
                    "the pipelines use different caches ({} and {}); run gc once per cache",
                    root.display(),
                    other.cache.root().display()
                );
            }
            let cache = contexts[0].cache.clone();
            commands::gc(&cache, &contexts, dry_run, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report {
            targets,
            pipeline,
            history,
            limit,
        } => {
            let pipeline =
                Some(pipeline.as_path()).filter(|p| p.exists() || !targets.is_empty() || history);
            commands::report(
                &targets,
                pipeline.map(Path::new),
                history,
                limit,
                &mut stdout,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Stages start through this very binary (`uda-pipe __stage-exec`) so their peak memory is exact.
fn executor() -> anyhow::Result<LocalExecutor> {
    let exe = std::env::current_exe().context("locating the uda-pipe executable")?;
    Ok(LocalExecutor::with_trampoline(exe))
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let ctx = uda_runner::load(&a.pipeline, &a.sets, a.cache.as_deref())?;
    let opts = RunOptions {
        stages: a.stages,
        downstream: a.downstream,
        force: a.force,
        dry_run: a.dry_run,
        jobs: a.jobs,
        verify: a.verify,
        keep_going: a.keep_going,
    };
    let ui = Ui::new();
    let summary = uda_runner::run::run(&ctx, &opts, &executor()?, &ui)?;
    if a.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let count = |f: fn(&Outcome) -> bool| summary.outcomes.iter().filter(|(_, o)| f(o)).count();
    let cached: Vec<&str> = summary
        .outcomes
        .iter()
        .filter(|(_, o)| *o == Outcome::Cached)
        .map(|(i, _)| ctx.graph.nodes[*i].id.as_str())
        .collect();
    if !cached.is_empty() {
        ui.line(&format!("cached: {}", cached.join(", ")));
    }
    for (i, o) in &summary.outcomes {
        if let Outcome::Skipped(why) = o {
            ui.line(&format!("skipped {}: {why}", ctx.graph.nodes[*i].id));
        }
    }
    ui.line(&format!(
        "{} ran, {} cached, {} failed, {} skipped in {}",
        count(|o| matches!(o, Outcome::Ran(_))),
        count(|o| matches!(o, Outcome::Cached)),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_))),
        human_duration(summary.elapsed)
    ));
    Ok(if summary.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
