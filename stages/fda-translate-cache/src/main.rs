fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<fda_translate_cache::FdaTranslateCache>()
}
