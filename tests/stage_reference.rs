//! `docs/stages.md` is generated from the stage binaries' `--describe` (`uda-pipe stages
//! --markdown`); this test fails when it is out of date, so the reference cannot drift.
//! `UDA_BLESS=1 cargo test --test stage_reference` rewrites it.

use std::path::Path;
use std::process::Command;

#[test]
fn docs_stages_md_is_the_reference_the_binaries_describe() {
    let exe = env!("CARGO_BIN_EXE_uda-pipe");
    let out = Command::new(exe)
        .args(["stages", "--markdown"])
        .env_remove("UDA_STAGE_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "uda-pipe stages --markdown failed (the stage binaries are built by `cargo test --workspace`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/stages.md");
    if std::env::var_os("UDA_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "docs/stages.md is out of date: regenerate it with `UDA_BLESS=1 cargo test --test stage_reference` (or `uda-pipe stages --markdown > docs/stages.md`)"
    );
    for kind in uda_runner::KNOWN_STAGES {
        assert!(
            committed.contains(&format!("## `{kind}`")),
            "{kind} is documented"
        );
    }
}
