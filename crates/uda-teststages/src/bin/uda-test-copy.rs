fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<uda_teststages::Copy>()
}
