fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<contrastive_train::ContrastiveTrain>()
}
