fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<pseudolabel_dump::PseudolabelDump>()
}
