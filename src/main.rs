//! `uda-pipe`: the command-line front end of the runner (`uda_runner` does the work).
//! Add a subcommand by adding a variant to [`Cmd`] and an arm to [`dispatch`].

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use uda_runner::commands::{self, DagFormat};
use uda_runner::executor::LocalExecutor;
use uda_runner::run::{Outcome, RunOptions};
use uda_runner::ui::{Ui, human_duration};

mod report_pages;

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
    /// IoU tables of evaluate outputs (the paper's Table 1), other Parquet files as tables, or
    /// the run history.
    Report(ReportArgs),
    /// Let the cached results of STAGE stand for its rebuilt binary without rerunning (after a
    /// change you know leaves results unchanged); recorded and shown as "accepted".
    Accept {
        #[arg(required = true, value_name = "STAGE")]
        stages: Vec<String>,
        /// Also the stages below them (e.g. after a change to a library every stage uses).
        #[arg(long)]
        downstream: bool,
        #[command(flatten)]
        p: PipelineArgs,
    },
    /// The project's stages: what each takes and makes (`--markdown`: the reference in
    /// docs/stages.md).
    Stages {
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Evaluate folders, stage names or instances (`eval`, `'eval[beta=0.05]'`), Parquet files or
    /// folders. None: every evaluate output of the pipeline.
    targets: Vec<String>,
    #[command(flatten)]
    p: PipelineArgs,
    /// IoU table format (csv/json: IoU in percent, unrounded; columns run, sweep variables, n,
    /// classes, miou, miou_std).
    #[arg(long, value_enum)]
    format: Option<ReportFormat>,
    /// Add the differences to this row (a run or seed-group name as shown in the table).
    #[arg(long, value_name = "ROW")]
    baseline: Option<String>,
    /// With --baseline: also compare every seed group with the baseline seed by seed (mean
    /// mIoU difference over the seeds both have, its std, 95 % Student t interval, wins). Table
    /// and Markdown print it under the IoU table; CSV and JSON print only the paired records.
    #[arg(long, requires = "baseline", conflicts_with_all = ["per_seed", "layout"])]
    paired: bool,
    /// Keep only runs whose sweep variable KEY has this value (repeatable), e.g. `seed=1`.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    filters: Vec<String>,
    /// One row per seed instead of mean ± std over instances that differ only in `seed`.
    #[arg(long)]
    per_seed: bool,
    /// Print the Parquet files as they are (also for evaluate outputs).
    #[arg(long, conflicts_with_all = ["format", "baseline", "filters", "per_seed"])]
    raw: bool,
    /// The run history (stage, key, cached or ran, start, duration, peak memory, exit status).
    #[arg(long)]
    history: bool,
    /// Rows printed per Parquet file (--raw and --history).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Write one self-contained HTML page (charts inline as SVG, images as data: PNGs): the IoU
    /// table, per-class bars, training curves, pseudo-labels, confusion, panels, sweeps, the run.
    #[arg(long, value_name = "OUT.html", conflicts_with_all = ["raw", "history", "format"])]
    html: Option<PathBuf>,
    /// Write the page's charts as SVG and PNG files (and the panels as PNG) into DIR.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["raw", "history", "format"])]
    plots: Option<PathBuf>,
    /// --html/--plots: only this row's confusion matrix (default: every row's).
    #[arg(long, value_name = "ROW")]
    confusion: Option<String>,
    /// Add the paper's published rows (its Tables 1-3), marked with their source and never part
    /// of means or deltas. Alone: the rows of the backbones of the runs reported (the evaluated
    /// model.json's `backbone`); `--published=all` every row; `--published=BACKBONE` one network.
    #[arg(
        long,
        value_enum,
        value_name = "WHICH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "matching",
        conflicts_with_all = ["raw", "html", "plots"]
    )]
    published: Option<PublishedArg>,
    /// `classes`: per-class IoU and mIoU (Table 1); `components`: check marks for the training
    /// components CE / CL / λ_ent = 0 and mIoU (Table 3), from each model's training params.
    #[arg(long, value_enum, default_value_t = Layout::Classes, conflicts_with_all = ["raw", "html", "plots"])]
    layout: Layout,
}

impl ReportArgs {
    /// Seed aggregation and `--where` filters, as the text table and the HTML page use them.
    fn table_options(&self) -> anyhow::Result<uda_report::Options> {
        Ok(uda_report::Options {
            aggregate_seeds: !self.per_seed,
            filters: self
                .filters
                .iter()
                .map(|f| uda_report::parse_filter(f))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Which of the paper's rows `--published` adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PublishedArg {
    /// The backbones of the runs being reported.
    Matching,
    /// Every row of Tables 1-3.
    All,
    #[value(name = "enet")]
    Enet,
    #[value(name = "fcn8s-vgg16")]
    Fcn8sVgg16,
    #[value(name = "deeplabv2-resnet101")]
    Deeplabv2Resnet101,
}

impl PublishedArg {
    /// The rows to add. `Matching` needs to know the runs' backbones; when none is recorded
    /// (external predictions) nothing matches, and the note says how to get rows anyway.
    fn filter(self, runs: &[uda_report::Run]) -> anyhow::Result<uda_report::PublishedFilter> {
        use uda_report::PublishedFilter::{All, Backbones};
        Ok(match self {
            Self::All => All,
            Self::Enet => Backbones(vec!["enet".into()]),
            Self::Fcn8sVgg16 => Backbones(vec!["fcn8s-vgg16".into()]),
            Self::Deeplabv2Resnet101 => Backbones(vec!["deeplabv2-resnet101".into()]),
            Self::Matching => {
                let mut found: Vec<String> = Vec::new();
                for r in runs {
                    if let Some(b) = uda_report::model_backbone(&r.dir)?
                        && !found.contains(&b)
                    {
                        found.push(b);
                    }
                }
                Backbones(found)
            }
        })
    }
}

/// The table `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Layout {
    /// Per-class IoU and mIoU, one row per run (the paper's Table 1).
    Classes,
    /// CE / CL / λ_ent = 0 check marks and mIoU (the paper's Table 3).
    Components,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
    Markdown,
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
    /// Where stages run (default: the pipeline's `executor:`, else $UDA_EXECUTOR, else local).
    #[arg(long, value_enum)]
    executor: Option<ExecutorArg>,
    /// A Slurm setting, over the pipeline's `executor: {slurm: ...}` block
    /// (partition, account, qos, sbatch, prologue, poll_interval_s, max_retries, default_memory_gb).
    #[arg(long = "slurm-opt", value_name = "KEY=VALUE")]
    slurm_opts: Vec<String>,
    /// Resubmissions of a Slurm job that ended PREEMPTED, NODE_FAIL or BOOT_FAIL (default 1, or
    /// the pipeline's executor.slurm.max_retries); a training stage resumes from its checkpoint.
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// Array tasks for every shardable stage on Slurm (over each stage's resources.shards).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExecutorArg {
    Local,
    Slurm,
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
            eprintln!("error: {}", uda_stage::error_text(&e));
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
        Cmd::Accept {
            stages,
            downstream,
            p,
        } => {
            uda_runner::accept::accept(&p.load()?, &stages, downstream, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stages { markdown } => {
            let stages = uda_runner::reference::project_stages()?;
            if markdown {
                write!(stdout, "{}", uda_runner::reference::markdown(&stages))?;
            } else {
                for d in &stages {
                    writeln!(stdout, "{:22} {}", d.kind, d.doc)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report(a) => {
            report(a, &mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `report`: an IoU table when the targets are evaluate outputs (or a table option is given),
/// otherwise every Parquet file printed as it is.
fn report(a: ReportArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let pipeline = Some(a.p.pipeline.as_path()).filter(|p| p.exists() || !a.targets.is_empty());
    let cache = a.p.cache.as_deref();
    if a.history {
        commands::report_history(pipeline, cache, a.limit, out)?;
        return Ok(());
    }
    if a.html.is_some() || a.plots.is_some() {
        return report_pages::report_pages(&a, out);
    }
    if a.raw && a.targets.is_empty() {
        anyhow::bail!("report --raw: name the Parquet files, folders or stages to print");
    }
    let mut targets = commands::resolve_report_targets(&a.targets, pipeline, &a.p.sets, cache)?;
    let dir_of = |t: &commands::ReportTarget| -> PathBuf {
        // per_class.parquet / summary.parquet named directly stand for their folder.
        let named = t.path.file_name().and_then(|n| n.to_str());
        match (named, t.path.parent()) {
            (Some(uda_report::PER_CLASS | uda_report::SUMMARY), Some(p)) => p.to_path_buf(),
            _ => t.path.clone(),
        }
    };
    if a.targets.is_empty() {
        targets.retain(|t| uda_report::is_evaluate_output(&t.path));
        if targets.is_empty() {
            anyhow::bail!(
                "no evaluate outputs among the results of {} (run it first, or name folders, files or stages)",
                a.p.pipeline.display()
            );
        }
    }
    let table_wanted = a.format.is_some()
        || a.published.is_some()
        || a.layout != Layout::Classes
        || a.baseline.is_some()
        || !a.filters.is_empty()
        || a.per_seed
        || targets
            .iter()
            .any(|t| uda_report::is_evaluate_output(&dir_of(t)));
    if a.raw || !table_wanted {
        commands::report_parquet(&targets, a.limit, out)?;
        return Ok(());
    }
    let runs: Vec<uda_report::Run> = targets
        .iter()
        .map(|t| {
            let run = match &t.instance {
                Some(i) => {
                    uda_report::Run::new(&i.id, dir_of(t)).with_stage(&i.stage, i.vars.clone())
                }
                None => uda_report::Run::from_dir(dir_of(t)),
            };
            let training = (a.layout == Layout::Components)
                .then(|| training_of(&run.dir))
                .flatten();
            run.with_training(training)
        })
        .collect();
    let options = a.table_options()?;
    let table = uda_report::IouTable::build(&runs, &options)?;
    let format = match a.format.unwrap_or(ReportFormat::Table) {
        ReportFormat::Table => uda_report::Format::Table,
        ReportFormat::Csv => uda_report::Format::Csv,
        ReportFormat::Json => uda_report::Format::Json,
        ReportFormat::Markdown => uda_report::Format::Markdown,
    };
    let published = match a.published {
        Some(which) => {
            let rows = uda_report::select_published(&which.filter(&runs)?)?;
            let shown = match a.layout {
                Layout::Classes => rows.len(),
                Layout::Components => rows.iter().filter(|r| r.components.is_some()).count(),
            };
            if shown == 0 {
                eprintln!("{}", no_published_note(which, a.layout));
            }
            rows
        }
        None => Vec::new(),
    };
    // `--paired`: CSV and JSON are the paired records alone (one document a script can parse);
    // table and Markdown put them under the IoU table with its Δ rows.
    let paired = if a.paired {
        let baseline = a.baseline.as_deref().unwrap_or_default();
        let pairs = uda_report::paired_differences(&runs, &options, baseline)?;
        let paired = uda_report::render_paired(&pairs, format);
        if matches!(format, uda_report::Format::Csv | uda_report::Format::Json) {
            write!(out, "{paired}")?;
            return Ok(());
        }
        format!(
            "\nPaired over seeds: mIoU of each row minus {baseline}'s on the same seed \
             ({:.0} % Student t interval, n - 1 degrees of freedom)\n\n{paired}",
            uda_report::CONFIDENCE * 100.0
        )
    } else {
        String::new()
    };
    let text = match a.layout {
        Layout::Classes => {
            uda_report::render_with(&table, format, a.baseline.as_deref(), &published)?
        }
        Layout::Components => {
            if let Some(b) = &a.baseline {
                table.row(b)?;
            }
            let rows = uda_report::component_rows(&table, &runs, options.aggregate_seeds);
            uda_report::render_components(&rows, &published, format)
        }
    };
    write!(out, "{text}{paired}")?;
    Ok(())
}

/// Why `--published` added nothing, and what would.
fn no_published_note(which: PublishedArg, layout: Layout) -> String {
    match (which, layout) {
        (PublishedArg::Matching, Layout::Classes) => "note: --published: the paper has no rows \
            for the backbones of these runs (none recorded: external predictions?); \
            --published=all adds every row"
            .into(),
        (_, Layout::Components) => "note: --published: the paper's component ablation (Table 3) \
            is DeepLab-ResNet-101 only; --published=all (or =deeplabv2-resnet101) adds its rows"
            .into(),
        (_, Layout::Classes) => "note: --published: the paper has no rows for that backbone".into(),
    }
}

/// How the model an evaluate output scored was trained: the evaluate entry's `model` input is
/// the training stage's entry, whose `entry.json` holds its kind and complete params. `None`
/// for folders outside the cache and for models that did not come from a training stage.
fn training_of(dir: &std::path::Path) -> Option<uda_report::Training> {
    use uda_runner::cache::{Cache, InputRecord};
    // `<cache>/entries/<key>/out`: only then is the folder a cache entry's output.
    let out = dir.canonicalize().ok()?;
    let entry = out
        .parent()
        .filter(|_| out.file_name() == Some("out".as_ref()))?;
    let entries = entry
        .parent()
        .filter(|e| e.file_name() == Some("entries".as_ref()))?;
    let cache = Cache::open(entries.parent()?).ok()?;
    let eval = cache.read_entry(entry.file_name()?.to_str()?)?;
    let InputRecord::Stage { key, .. } = eval.inputs.get("model")? else {
        return None;
    };
    let model = cache.read_entry(key)?;
    Some(uda_report::Training {
        kind: model.kind,
        params: model.params,
    })
}

/// The executor the run asked for: `--executor`, else `UDA_EXECUTOR`, else the pipeline's
/// `executor:`, else local. Stages start through this very binary (`uda-pipe __stage-exec`) so
/// their peak memory and exit status are exact, here or on a Slurm node.
fn executor(
    a: &RunArgs,
    file: Option<&serde_json::Value>,
) -> anyhow::Result<Box<dyn uda_runner::executor::Executor>> {
    use uda_runner::slurm::{ExecutorKind, SlurmConfig, config};
    let exe = std::env::current_exe().context("locating the uda-pipe executable")?;
    let (file_kind, mut slurm) = match file {
        Some(v) => config::parse_executor_block(v).map_err(|m| anyhow::anyhow!("executor: {m}"))?,
        None => (ExecutorKind::Local, SlurmConfig::default()),
    };
    let env = std::env::var(config::EXECUTOR_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    let kind = match (a.executor, env) {
        (Some(ExecutorArg::Local), _) => ExecutorKind::Local,
        (Some(ExecutorArg::Slurm), _) => ExecutorKind::Slurm,
        (None, Some(e)) => ExecutorKind::parse(&e)
            .map_err(|m| anyhow::anyhow!("{}={e}: {m}", config::EXECUTOR_ENV))?,
        (None, None) => file_kind,
    };
    for o in &a.slurm_opts {
        slurm.set_opt(o).map_err(anyhow::Error::msg)?;
    }
    if let Some(n) = a.max_retries {
        slurm.max_retries = n;
    }
    Ok(match kind {
        ExecutorKind::Local => Box::new(LocalExecutor::with_trampoline(exe)),
        ExecutorKind::Slurm => Box::new(uda_runner::slurm::SlurmExecutor::new(slurm, exe)?),
    })
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    // SIGTERM/SIGINT/SIGHUP stop the stages cleanly (forwarded, then SIGKILL after the grace).
    uda_runner::process::install_cancel_handlers().context("installing signal handlers")?;
    let ctx = uda_runner::load(&a.pipeline, &a.sets, a.cache.as_deref())?;
    let exec = executor(&a, ctx.executor.as_ref())?;
    let opts = RunOptions {
        stages: a.stages,
        downstream: a.downstream,
        force: a.force,
        dry_run: a.dry_run,
        jobs: a.jobs,
        verify: a.verify,
        keep_going: a.keep_going,
        shards: a.shards,
    };
    let ui = Ui::new();
    let summary = uda_runner::run::run(&ctx, &opts, exec.as_ref(), &ui)?;
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
    if let Some(sig) = uda_runner::process::cancel_signal() {
        ui.line(&format!(
            "cancelled by {}: nothing of the stopped stages was committed",
            uda_runner::process::signal_name(sig)
        ));
        // The shell convention for "ended by signal N".
        return Ok(ExitCode::from((128 + sig).clamp(0, 255) as u8));
    }
    Ok(if summary.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
