//! The default `pipeline.yaml` at toy scale on the real loopback Slurm cluster, with the data
//! stages sharded into array jobs, against the same pipeline run locally: the same keys, and
//! byte-identical outputs (each entry's `outputs_hash` is blake3 over its manifest of every
//! output file's blake3). Then a local run on the Slurm run's cache runs nothing.
mod slurm_support;
mod toy;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn run(exe: &Path, cache: &Path, extra: &[&str]) -> String {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml");
    let mut c = Command::new(exe);
    c.arg("run").arg(&pipeline).arg("--cache").arg(cache);
    for s in toy::TOY {
        c.arg("--set").arg(s);
    }
    let o = c
        .args(extra)
        .env_remove("CUDA_VISIBLE_DEVICES")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "uda-pipe run {extra:?} failed:\n{text}");
    text
}

/// key → (node, outputs_hash, scheduler record) of every entry of a cache.
fn entries(cache: &Path) -> BTreeMap<String, (String, String, serde_json::Value)> {
    std::fs::read_dir(cache.join("entries"))
        .unwrap()
        .flatten()
        .map(|e| {
            let j: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path().join("entry.json")).unwrap())
                    .unwrap();
            (
                j["key"].as_str().unwrap().to_string(),
                (
                    j["node"].as_str().unwrap().to_string(),
                    j["outputs_hash"].as_str().unwrap().to_string(),
                    j.get("scheduler").cloned().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

/// The nodes whose outputs do not depend on wall-clock figures: the synthetic data and its
/// preprocessing. (FDA and training stages write timings into their metrics, so two runs of them
/// differ in those files and their downstream keys differ: that is not the executor.)
const DETERMINISTIC: [&str; 4] = [
    "synth[seed=0]",
    "source[seed=0]",
    "target[seed=0]",
    "target_val[seed=0]",
];

fn by_node(
    m: &BTreeMap<String, (String, String, serde_json::Value)>,
) -> BTreeMap<String, (String, String)> {
    m.iter()
        .map(|(k, v)| (v.0.clone(), (k.clone(), v.1.clone())))
        .collect()
}

#[test]
fn default_pipeline_sharded_on_slurm_is_byte_identical_to_local() {
    if !slurm_support::slurm_ready() {
        return;
    }
    let exe = toy::uda_pipe();
    let d = tempfile::tempdir().unwrap();
    let (local, slurm) = (d.path().join("local"), d.path().join("slurm"));
    run(&exe, &local, &["--executor", "local"]);
    run(
        &exe,
        &slurm,
        &[
            "--executor",
            "slurm",
            "--slurm-opt",
            "poll_interval_s=1",
            "--shards",
            "3",
        ],
    );
    let (a, b) = (by_node(&entries(&local)), by_node(&entries(&slurm)));
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    // Same keys and bytes where the pipeline itself is deterministic.
    for n in DETERMINISTIC {
        assert_eq!(a[n], b[n], "{n}: local vs Slurm (sharded)");
    }
    let sched = entries(&slurm);
    let mut sharded: Vec<String> = sched
        .values()
        .filter(|(_, _, s)| {
            assert_eq!(s["state"], "COMPLETED", "{s}");
            s["shards"] == 3
        })
        .map(|(n, _, _)| n.clone())
        .collect();
    sharded.sort();
    for must in [
        "source[",
        "target[",
        "target_val[",
        "eval_ours[",
        "eval_pretrain[",
        "fda[",
        "pseudo[",
    ] {
        assert!(
            sharded.iter().any(|n| n.starts_with(must)),
            "{must} did not run as an array job: {sharded:?}"
        );
    }
    // Every sharded evaluation recomputed locally, unsharded, from the very same inputs: the
    // same key and the same bytes.
    let evals: Vec<&String> = sharded.iter().filter(|n| n.starts_with("eval_")).collect();
    let mut args = vec!["--executor", "local", "--force"];
    for e in &evals {
        args.push("--stage");
        args.push(e.as_str());
    }
    run(&exe, &slurm, &args);
    let c = by_node(&entries(&slurm));
    for e in &evals {
        assert_eq!(
            b[e.as_str()],
            c[e.as_str()],
            "{e}: Slurm (3 shards) vs local"
        );
    }
    // The Slurm run's cache is complete for a local run.
    let out = run(&exe, &slurm, &["--executor", "local"]);
    assert!(out.lines().any(|l| l.starts_with("0 ran, ")), "{out}");
}
