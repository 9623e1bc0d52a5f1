//! Live progress: one line per running stage (name, elapsed time, the stage's own progress) on a
//! terminal; plain start/finish lines otherwise (logs, CI, tests).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;
use uda_stage::ProgressUpdate;

#[derive(Debug)]
pub struct Ui {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Ui {
    /// Live lines when stderr is a terminal.
    pub fn new() -> Self {
        let live = std::io::stderr().is_terminal();
        let multi =
            live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Self {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Plain lines only.
    pub fn plain() -> Self {
        Self {
            multi: None,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Prints a line (above the live lines when there are any). A closed or full output
    /// (`uda-pipe run … 2>&1 | head -1`) is not an error: the run goes on and finishes, and what
    /// it did stays in the cache, its logs and the run history.
    pub fn line(&self, s: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr().lock(), "{s}");
            }
        }
    }

    pub fn started(&self, node: &str, what: &str) {
        match &self.multi {
            Some(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(node.to_string());
                bar.set_message(what.to_string());
                bar.enable_steady_tick(Duration::from_millis(200));
                if let Ok(mut b) = self.bars.lock() {
                    b.insert(node.to_string(), bar);
                }
            }
            None => self.line(&format!("▶ {node}: {what}")),
        }
    }

    pub fn progress(&self, node: &str, u: &ProgressUpdate) {
        if let Ok(b) = self.bars.lock()
            && let Some(bar) = b.get(node)
        {
            let pct = (u.done * 100)
                .checked_div(u.total)
                .map(|p| format!(" {p:>3}%"))
                .unwrap_or_default();
            let msg = if u.message.is_empty() {
                String::new()
            } else {
                format!("  {}", u.message)
            };
            bar.set_message(format!("{} {}/{}{pct}{msg}", u.label, u.done, u.total));
        }
    }

    pub fn finished(&self, node: &str, line: &str) {
        if let Ok(mut b) = self.bars.lock()
            && let Some(bar) = b.remove(node)
        {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
        self.line(line);
    }
}

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}

pub fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}
