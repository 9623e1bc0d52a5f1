//! The machine's budget (CPUs, GPUs, memory) that parallel stages share.

use crate::pipeline::Resources;

pub(crate) struct Pool {
    pub(crate) cpus: u32,
    pub(crate) cpus_used: u32,
    pub(crate) gpus_free: Vec<String>,
    pub(crate) gpus_total: u32,
    pub(crate) mem_gb: f64,
    pub(crate) mem_used: f64,
    pub(crate) running: usize,
}

impl Pool {
    pub(crate) fn new(jobs: usize) -> Self {
        let cpus = if jobs == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            jobs
        } as u32;
        let gpus = detect_gpus();
        Self {
            cpus,
            cpus_used: 0,
            gpus_total: gpus.len() as u32,
            gpus_free: gpus,
            mem_gb: total_memory_gb(),
            mem_used: 0.0,
            running: 0,
        }
    }

    /// No budget (a batch scheduler places the jobs): everything fits, no GPU is assigned here.
    pub(crate) fn unlimited() -> Self {
        Self {
            cpus: u32::MAX / 2,
            cpus_used: 0,
            gpus_free: Vec::new(),
            gpus_total: u32::MAX / 2,
            mem_gb: f64::INFINITY,
            mem_used: 0.0,
            running: 0,
        }
    }

    /// The share of the machine a node gets (requests above the machine's size are capped).
    pub(crate) fn need(&self, r: &Resources) -> (u32, u32, f64) {
        (
            r.cpus.min(self.cpus).max(1),
            r.gpus.min(self.gpus_total),
            if self.mem_gb > 0.0 {
                r.memory_gb.min(self.mem_gb)
            } else {
                0.0
            },
        )
    }

    pub(crate) fn fits(&self, r: &Resources) -> bool {
        let (c, g, m) = self.need(r);
        self.running == 0
            || (self.cpus_used + c <= self.cpus
                && self.gpus_free.len() as u32 >= g
                && self.mem_used + m <= self.mem_gb + 1e-9)
    }

    pub(crate) fn take(&mut self, r: &Resources) -> Vec<String> {
        let (c, g, m) = self.need(r);
        self.cpus_used += c;
        self.mem_used += m;
        self.running += 1;
        let n = (g as usize).min(self.gpus_free.len());
        self.gpus_free.drain(..n).collect()
    }

    pub(crate) fn give(&mut self, r: &Resources, gpus: Vec<String>) {
        let (c, _, m) = self.need(r);
        self.cpus_used -= c;
        self.mem_used -= m;
        self.running -= 1;
        self.gpus_free.extend(gpus);
    }
}

/// GPUs the stages may use: `UDA_GPUS` (a count), else `CUDA_VISIBLE_DEVICES`, else the NVIDIA driver's list.
pub fn detect_gpus() -> Vec<String> {
    if let Ok(n) = std::env::var("UDA_GPUS").map(|s| s.trim().parse::<usize>())
        && let Ok(n) = n
    {
        return (0..n).map(|i| i.to_string()).collect();
    }
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "-1")
            .map(str::to_string)
            .collect();
    }
    let n = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|rd| rd.count())
        .unwrap_or(0);
    (0..n).map(|i| i.to_string()).collect()
}

pub(crate) fn total_memory_gb() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / (1024.0 * 1024.0))
        .unwrap_or(0.0)
}
