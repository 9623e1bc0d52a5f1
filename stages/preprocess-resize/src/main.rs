fn main() -> std::process::ExitCode {
    preprocess_resize::keep_freed_memory();
    uda_stage::stage_main::<preprocess_resize::PreprocessResize>()
}
