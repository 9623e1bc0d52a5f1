//! Progress for people (an indicatif bar) and for the runner (JSON lines on stderr).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How a stage reports progress; chosen by the `UDA_PROGRESS` environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar on stderr (a person at a terminal).
    Bar,
    /// `{"uda_progress":{...}}` lines on stderr, at most a few per second (the runner).
    JsonLines,
    /// Nothing (tests).
    Silent,
}

impl ProgressMode {
    pub fn from_env() -> Self {
        match std::env::var(crate::PROGRESS_ENV).as_deref() {
            Ok("jsonl") => Self::JsonLines,
            Ok("off") | Ok("none") => Self::Silent,
            _ => Self::Bar,
        }
    }
}

/// A thread-safe progress counter; clone-free, share it by reference across rayon workers.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    stage: &'static str,
    label: String,
    total: u64,
    done: AtomicU64,
    bar: Option<indicatif::ProgressBar>,
    last_line: Mutex<Instant>,
    /// Free-form status (e.g. current loss) appended to the bar / line.
    message: Mutex<String>,
}

const LINE_INTERVAL: Duration = Duration::from_millis(250);

impl Progress {
    pub fn new(mode: ProgressMode, stage: &'static str, label: &str, total: u64) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_prefix(format!("{stage}: {label}"));
            bar
        });
        let p = Self {
            mode,
            stage,
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            bar,
            last_line: Mutex::new(Instant::now() - LINE_INTERVAL),
            message: Mutex::new(String::new()),
        };
        p.emit_line(true);
        p
    }

    /// Adds `n` finished units.
    pub fn inc(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        self.emit_line(false);
    }

    /// Sets a short status message (losses, throughput) shown beside the counter.
    pub fn set_message(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if let Some(bar) = &self.bar {
            bar.set_message(msg.clone());
        }
        if let Ok(mut m) = self.message.lock() {
            *m = msg;
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Marks the work complete (always emits a final line in JSON mode).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        self.emit_line(true);
    }

    fn emit_line(&self, force: bool) {
        if self.mode != ProgressMode::JsonLines {
            return;
        }
        let Ok(mut last) = self.last_line.lock() else {
            return;
        };
        if !force && last.elapsed() < LINE_INTERVAL && self.done() < self.total {
            return;
        }
        *last = Instant::now();
        let message = self.message.lock().map(|m| m.clone()).unwrap_or_default();
        let line = serde_json::json!({"uda_progress": {
            "stage": self.stage, "label": self.label, "done": self.done(), "total": self.total, "message": message,
        }});
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

/// Parses one stderr line written in JSON-lines mode; `None` for ordinary log lines.
pub fn parse_progress_line(line: &str) -> Option<ProgressUpdate> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let p = v.get("uda_progress")?;
    Some(ProgressUpdate {
        label: p.get("label")?.as_str()?.to_string(),
        done: p.get("done")?.as_u64()?,
        total: p.get("total")?.as_u64()?,
        message: p
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string(),
    })
}

/// One progress report as the runner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressUpdate {
    pub label: String,
    pub done: u64,
    pub total: u64,
    pub message: String,
}
