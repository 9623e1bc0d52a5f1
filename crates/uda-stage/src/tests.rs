use super::*;
use serde::Deserialize;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
struct EchoParams {
    beta: f64,
    sizes: Vec<u32>,
    name: String,
}

impl Default for EchoParams {
    fn default() -> Self {
        Self {
            beta: 0.01,
            sizes: vec![64, 128],
            name: "x".into(),
        }
    }
}

struct Echo;
impl Stage for Echo {
    const KIND: &'static str = "echo";
    const DOC: &'static str = "writes its params";
    type Params = EchoParams;
    fn inputs() -> Vec<InputSpec> {
        vec![InputSpec {
            name: "data",
            doc: "a folder",
            required: true,
        }]
    }
    fn outputs() -> Vec<OutputSpec> {
        vec![OutputSpec {
            name: "params.json",
            doc: "the params",
        }]
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
            name: "flag".into()
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
    assert!(e.contains("invalid type"), "{e}");
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
