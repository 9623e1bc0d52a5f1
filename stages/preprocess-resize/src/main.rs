fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<preprocess_resize::PreprocessResize>()
}
