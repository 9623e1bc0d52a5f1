fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<colour_baseline::ColourBaseline>()
}
