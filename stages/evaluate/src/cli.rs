//! The binary's entry: the stage contract, plus the convenience flags for external mode.

use crate::Evaluate;
use std::ffi::OsString;
use std::process::ExitCode;
use uda_stage::Stage;

/// Convenience flag → (contract flag, input or param name).
const FLAGS: [(&str, &str, &str); 4] = [
    ("--pred-dir", "--input", "pred_dir"),
    ("--gt-root", "--input", "gt_root"),
    ("--split", "--param", "split"),
    ("--pred-ids", "--param", "pred_ids"),
];

fn assignment(contract: &str, name: &str, value: OsString) -> OsString {
    let mut s = OsString::from(format!("{name}="));
    if contract == "--param" {
        // Quoted as a YAML/JSON string, so a split named e.g. `1` stays a string.
        s.push(serde_json::to_string(&value.to_string_lossy()).unwrap_or_default());
    } else {
        s.push(value);
    }
    s
}

/// Rewrites `--pred-dir DIR`, `--gt-root DIR`, `--split S` and `--pred-ids K` (or
/// `--flag=value`) into `--input pred_dir=DIR`, `--input gt_root=DIR`, `--param split="S"`,
/// `--param pred_ids="K"`; everything else passes through unchanged.
pub fn translate_args(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy().into_owned();
        let hit = FLAGS.iter().find_map(|&(flag, contract, name)| {
            if text == flag {
                Some((flag, contract, name, None))
            } else {
                text.strip_prefix(flag)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(|v| (flag, contract, name, Some(OsString::from(v))))
            }
        });
        let Some((flag, contract, name, inline)) = hit else {
            out.push(arg);
            continue;
        };
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        out.push(OsString::from(contract));
        out.push(assignment(contract, name, value));
    }
    Ok(out)
}

/// `uda_stage::stage_main` with [`translate_args`] in front.
pub fn main() -> ExitCode {
    let argv = match translate_args(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {}: {e}", Evaluate::KIND);
            return ExitCode::from(2);
        }
    };
    uda_stage::stage_main_from::<Evaluate>(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn convenience_flags_become_contract_arguments() {
        let got = translate_args(strings(&[
            "evaluate",
            "--pred-dir",
            "/p",
            "--gt-root=/g",
            "--split",
            "1",
            "--out",
            "/o",
            "--pred-ids=label",
            "-p",
            "panels=0",
        ]))
        .unwrap();
        assert_eq!(
            got,
            strings(&[
                "evaluate",
                "--input",
                "pred_dir=/p",
                "--input",
                "gt_root=/g",
                "--param",
                "split=\"1\"",
                "--out",
                "/o",
                "--param",
                "pred_ids=\"label\"",
                "-p",
                "panels=0"
            ])
        );
        let args =
            uda_stage::StageArgs::try_parse_from_iter(Evaluate::KIND, Evaluate::DOC, got).unwrap();
        let params = args.params_value(Evaluate::KIND).unwrap();
        assert_eq!(params["split"], serde_json::json!("1"));
        assert_eq!(params["pred_ids"], serde_json::json!("label"));
        assert_eq!(
            args.inputs[1],
            ("gt_root".to_string(), std::path::PathBuf::from("/g"))
        );
        assert!(
            translate_args(strings(&["evaluate", "--split"]))
                .unwrap_err()
                .contains("--split needs a value")
        );
        // Not a prefix match on other flags.
        assert_eq!(
            translate_args(strings(&["--splits", "x"])).unwrap(),
            strings(&["--splits", "x"])
        );
    }
}
