use super::*;
use serde::Deserialize;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct EchoParams {
    beta: f64,
    sizes: Vec<u32>,
    name: String,
    inner: Inner,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct Inner {
    depth: u32,
}

impl Default for EchoParams {
    fn default() -> Self {
        Self {
            beta: 0.01,
            sizes: vec![64, 128],
            name: "x".into(),
            inner: Inner::default(),
        }
    }
}

struct Echo;
impl Stage for Echo {
    const KIND: &'static str = "echo";
    const DOC: &'static str = "writes its params";
    type Params = EchoParams;
    fn inputs() -> Vec<InputSpec> {
        vec![InputSpec::required("data", "a folder")]
    }
    fn outputs() -> Vec<OutputSpec> {
        vec![OutputSpec::new("params.json", "the params")]
    }
    fn validate(p: &EchoParams) -> Result<(), Vec<ParamProblem>> {
        let mut problems = ParamProblems::new();
        problems.ensure(
            p.beta > 0.0 && p.beta < 1.0,
            "beta",
            format!("must lie in (0, 1), got {}", p.beta),
        );
        problems.ensure(p.inner.depth < 10, "inner.depth", "must be below 10");
        problems.into_result()
    }
    fn run(ctx: &StageContext, params: &EchoParams) -> anyhow::Result<()> {
        if params.name == "fail" {
            std::fs::write(ctx.out_path("half.txt"), "half")?;
            anyhow::bail!("asked to fail");
        }
        std::fs::write(ctx.out_path("params.json"), serde_json::to_string(params)?)?;
        Ok(())
    }
}

fn args(v: &[&str]) -> StageArgs {
    StageArgs::try_parse_from_iter("echo", "", std::iter::once("echo").chain(v.iter().copied()))
        .unwrap()
}

#[test]
fn params_merge_file_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, "beta: 0.05\nname: from-file\n").unwrap();
    let a = args(&[
        "--params",
        file.to_str().unwrap(),
        "-p",
        "name=flag",
        "--param",
        "sizes=[1, 2]",
    ]);
    let p: EchoParams = params_from_value("echo", a.params_value("echo").unwrap()).unwrap();
    assert_eq!(
        p,
        EchoParams {
            beta: 0.05,
            sizes: vec![1, 2],
            name: "flag".into(),
            inner: Inner::default(),
        }
    );
}

#[test]
fn unknown_and_mistyped_params_name_the_key() {
    let a = args(&["-p", "bta=0.1"]);
    let e = params_from_value::<EchoParams>("echo", a.params_value("echo").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bta"), "{e}");
    let a = args(&["-p", "beta=abc"]);
    let e = params_from_value::<EchoParams>("echo", a.params_value("echo").unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("param beta: invalid type"), "{e}");
}

/// What `--check` reports for these params, as the JSON it prints.
fn check_json(v: &[&str]) -> serde_json::Value {
    serde_json::to_value(check_params::<Echo>(&args(v)).unwrap()).unwrap()
}

#[test]
fn check_reports_ok_for_good_params_without_out_or_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, "beta: 0.05\ninner: {depth: 3}\n").unwrap();
    let a = args(&["--check", "--params", file.to_str().unwrap()]);
    assert!(a.check);
    assert_eq!(
        check_json(&["--check", "--params", file.to_str().unwrap()]),
        serde_json::json!({"ok": true})
    );
}

#[test]
fn check_reports_every_problem_by_dotted_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    // Unknown key, mistyped value, and an unknown nested key: all found, not just the first.
    std::fs::write(&file, "bta: 0.05\nsizes: big\ninner: {dpth: 1}\n").unwrap();
    let report = check_json(&["--check", "--params", file.to_str().unwrap()]);
    assert_eq!(report["ok"], false, "{report}");
    let mut params: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["param"].as_str().unwrap())
        .collect();
    params.sort();
    assert_eq!(params, ["bta", "inner.dpth", "sizes"], "{report}");
    assert!(report.to_string().contains("invalid type"), "{report}");

    // Values that parse but fail validate.
    let report = check_json(&["--check", "-p", "beta=1.5", "-p", "inner.depth=12"]);
    assert_eq!(
        report,
        serde_json::json!({"ok": false, "problems": [
            {"param": "beta", "message": "must lie in (0, 1), got 1.5"},
            {"param": "inner.depth", "message": "must be below 10"},
        ]})
    );
    // A --param value that is not YAML names its key.
    let report = check_json(&["--check", "-p", "sizes=[1,"]);
    assert_eq!(report["problems"][0]["param"], "sizes", "{report}");
}

#[test]
fn check_fails_only_when_the_params_file_cannot_be_read() {
    let e =
        check_params::<Echo>(&args(&["--check", "--params", "/nonexistent/p.yaml"])).unwrap_err();
    assert!(matches!(e, ContractError::ParamsRead { .. }), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn run_validates_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = dir.path().join("out");
    let input = format!("data={}", data.display());
    let e = run_stage::<Echo>(&args(&[
        "--out",
        out.to_str().unwrap(),
        "--input",
        &input,
        "-p",
        "beta=2",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("param beta: must lie in (0, 1), got 2"), "{e}");
    assert!(!out.exists());
}

#[test]
fn run_moves_outputs_into_place_and_cleans_up_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = dir.path().join("out");
    let input = format!("data={}", data.display());
    run_stage::<Echo>(&args(&["--out", out.to_str().unwrap(), "--input", &input])).unwrap();
    assert!(out.join("params.json").exists());
    // The output folder is never overwritten.
    let e =
        run_stage::<Echo>(&args(&["--out", out.to_str().unwrap(), "--input", &input])).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");

    let failed = dir.path().join("failed");
    let e = run_stage::<Echo>(&args(&[
        "--out",
        failed.to_str().unwrap(),
        "--input",
        &input,
        "-p",
        "name=fail",
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("asked to fail"));
    assert!(!failed.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "staging folder left behind: {leftovers:?}"
    );
}

#[test]
fn inputs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let e = run_stage::<Echo>(&args(&["--out", out.to_str().unwrap()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing required input 'data'"), "{e}");
    let e = run_stage::<Echo>(&args(&[
        "--out",
        out.to_str().unwrap(),
        "--input",
        "data=/nonexistent/x",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/x"), "{e}");
    let e = run_stage::<Echo>(&args(&[
        "--out",
        out.to_str().unwrap(),
        "--input",
        "dta=/tmp",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown input 'dta'"), "{e}");
}

#[test]
fn describe_lists_defaults_with_types() {
    let d = Echo::describe();
    assert_eq!(d.params["beta"], serde_json::json!(0.01));
    assert_eq!(d.inputs[0].name, "data");
}

#[test]
fn progress_lines_round_trip() {
    let line =
        r#"{"uda_progress":{"stage":"s","label":"resize","done":3,"total":10,"message":"x"}}"#;
    let u = parse_progress_line(line).unwrap();
    assert_eq!((u.done, u.total, u.label.as_str()), (3, 10, "resize"));
    assert!(parse_progress_line("plain log line").is_none());
}

/// A shardable stage: item `i` is the `i`-th file (by name) of input `data`; the output is one
/// upper-cased copy per item and `all.txt` (every name, in order), which depends on all items.
struct Upper;
impl Upper {
    fn names(ctx: &StageContext) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(ctx.input("data").unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
    fn compute(ctx: &StageContext, shard: ShardSpec) -> Vec<String> {
        let names = Self::names(ctx);
        let range = shard.range(names.len(), 2);
        let progress = ctx.progress("upper", range.len() as u64);
        std::fs::create_dir_all(ctx.out_path("items")).unwrap();
        for name in &names[range.clone()] {
            let text = std::fs::read_to_string(ctx.input("data").unwrap().join(name)).unwrap();
            std::fs::write(ctx.out_path("items").join(name), text.to_uppercase()).unwrap();
            progress.inc(1);
        }
        names[range].to_vec()
    }
    fn finish(ctx: &StageContext, names: &[String]) {
        std::fs::write(ctx.out_path("all.txt"), names.join("\n")).unwrap();
    }
}
impl Stage for Upper {
    const KIND: &'static str = "upper";
    const DOC: &'static str = "upper-cases files";
    const SHARDABLE: bool = true;
    type Params = EchoParams;
    fn inputs() -> Vec<InputSpec> {
        vec![InputSpec::required("data", "a folder of text files")]
    }
    fn outputs() -> Vec<OutputSpec> {
        vec![OutputSpec::new("items", "the files, upper-cased")]
    }
    fn run(ctx: &StageContext, _: &EchoParams) -> anyhow::Result<()> {
        let names = Self::compute(ctx, ShardSpec::WHOLE);
        Self::finish(ctx, &names);
        Ok(())
    }
    fn run_shard(
        ctx: &StageContext,
        _: &EchoParams,
        shard: ShardSpec,
    ) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::json!(Self::compute(ctx, shard)))
    }
    fn merge_shards(ctx: &StageContext, _: &EchoParams, shards: &[Shard]) -> anyhow::Result<()> {
        let mut names = Vec::new();
        for s in shards {
            shard::link_tree(&s.dir, ctx.out_dir(), &|p| p == Path::new(SHARD_FILE))?;
            names.extend(s.data::<Vec<String>>()?);
        }
        Self::finish(ctx, &names);
        Ok(())
    }
}

fn upper_args(v: &[&str]) -> StageArgs {
    StageArgs::try_parse_from_iter(
        "upper",
        "",
        std::iter::once("upper").chain(v.iter().copied()),
    )
    .unwrap()
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn shard_tasks_and_merge_give_the_unsharded_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (i, name) in ["e", "a", "d", "b", "c"].iter().enumerate() {
        std::fs::write(data.join(name), format!("{name}{i}")).unwrap();
    }
    let input = format!("data={}", data.display());
    let whole = dir.path().join("whole");
    run_stage::<Upper>(&upper_args(&[
        "--out",
        whole.to_str().unwrap(),
        "--input",
        &input,
    ]))
    .unwrap();
    assert_eq!(tree(&whole).len(), 6);
    for count in [1usize, 2, 3, 7] {
        let shards = dir.path().join(format!("shards{count}"));
        for index in 0..count {
            let out = shards.join(index.to_string());
            let spec = format!("{index}/{count}");
            let a = upper_args(&[
                "--shard",
                &spec,
                "--out",
                out.to_str().unwrap(),
                "--input",
                &input,
            ]);
            run_stage::<Upper>(&a).unwrap();
            let record: ShardRecord =
                serde_json::from_slice(&std::fs::read(out.join(SHARD_FILE)).unwrap()).unwrap();
            assert_eq!((record.index, record.count), (index, count));
            assert_eq!(
                record.params["beta"],
                serde_json::json!(0.01),
                "defaults spelled out"
            );
        }
        let merged = dir.path().join(format!("merged{count}"));
        let a = upper_args(&[
            "--merge-shards",
            shards.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
            "--input",
            &input,
        ]);
        run_stage::<Upper>(&a).unwrap();
        assert_eq!(tree(&merged), tree(&whole), "{count} shards");
    }

    // A missing shard is named, and nothing is written.
    std::fs::remove_dir_all(dir.path().join("shards3/1")).unwrap();
    let out = dir.path().join("incomplete");
    let e = run_stage::<Upper>(&upper_args(&[
        "--merge-shards",
        dir.path().join("shards3").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--input",
        &input,
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("1 of 3 shards missing or unfinished: 1 (no folder"),
        "{e}"
    );
    assert!(!out.exists());
    // Other params than the shards'.
    let e = run_stage::<Upper>(&upper_args(&[
        "--merge-shards",
        dir.path().join("shards2").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--input",
        &input,
        "-p",
        "beta=0.5",
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("beta: shard 0.01 vs merge 0.5"), "{e}");
}

#[test]
fn sharding_flags_are_refused_where_they_do_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = dir.path().join("out");
    let input = format!("data={}", data.display());
    for flags in [["--shard", "0/2"], ["--merge-shards", "/tmp"]] {
        let mut v = vec!["--out", out.to_str().unwrap(), "--input", &input];
        v.extend(flags);
        let e = run_stage::<Echo>(&args(&v)).unwrap_err().to_string();
        assert!(e.contains("stage echo is not shardable"), "{e}");
    }
    assert!(!out.exists());
    for bad in [
        &["--shard", "0/2", "--merge-shards", "/tmp"][..],
        &["--shard", "0/2", "--describe"],
        &["--shard", "0/2", "--check"],
        &["--merge-shards", "/tmp", "--describe"],
        &["--merge-shards", "/tmp", "--check"],
        &["--shard", "2/2"],
    ] {
        let argv = std::iter::once("upper").chain(bad.iter().copied());
        assert!(
            StageArgs::try_parse_from_iter("upper", "", argv).is_err(),
            "{bad:?} accepted"
        );
    }
    assert!(Upper::describe().shardable);
    assert!(!Echo::describe().shardable);
    let json = serde_json::to_value(Echo::describe()).unwrap();
    assert_eq!(json["shardable"], serde_json::json!(false));
}
