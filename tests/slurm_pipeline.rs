//! The default `pipeline.yaml` at toy scale on the real loopback Slurm cluster, with the data
//! stages sharded into array jobs, against the same pipeline run locally: the same keys, and
//! byte-identical outputs (each entry's `outputs_hash` is blake3 over its manifest of every
//! output file's blake3). Then a local run on the Slurm run's cache runs nothing.
mod slurm_support;
mod toy;
use std::collections::BTreeMap;
use std::path::Path;

fn run(exe: &Path, cache: &Path, extra: &[&str]) -> String {
    toy::run_default(exe, cache, extra)
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
    let cache = d.path().join("cache");
    run(
        &exe,
        &cache,
        &[
            "--executor",
            "slurm",
            "--slurm-opt",
            "poll_interval_s=1",
            "--shards",
            "3",
        ],
    );
    let slurm = entries(&cache);
    let mut sharded: Vec<String> = slurm
        .values()
        .filter(|(_, _, s)| {
            assert_eq!(s["executor"], "slurm", "{s}");
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
        "fda[",
        "pseudo[",
        "eval_ours[",
        "eval_pretrain[",
    ] {
        assert!(
            sharded.iter().any(|n| n.starts_with(must)),
            "{must} did not run as an array job: {sharded:?}"
        );
    }
    // Every sharded preprocessing and evaluation recomputed locally, unsharded, from the very
    // same inputs: the same key and the same bytes. (FDA's and pseudolabel-dump's metrics hold
    // wall-clock timings, which differ between any two runs; their other files are compared by
    // the stages' own shard tests.)
    let compared: Vec<&String> = sharded
        .iter()
        .filter(|n| !n.starts_with("fda[") && !n.starts_with("pseudo["))
        .collect();
    let mut args = vec!["--executor", "local", "--force"];
    for n in &compared {
        args.push("--stage");
        args.push(n.as_str());
    }
    run(&exe, &cache, &args);
    let (before, after) = (by_node(&slurm), by_node(&entries(&cache)));
    for n in &compared {
        assert_eq!(
            before[n.as_str()],
            after[n.as_str()],
            "{n}: Slurm (3 shards) vs local"
        );
    }
    // The Slurm run's cache is complete for a local run.
    let out = run(&exe, &cache, &["--executor", "local"]);
    assert!(out.lines().any(|l| l.starts_with("0 ran, ")), "{out}");
}
