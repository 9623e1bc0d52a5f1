fn main() -> std::process::ExitCode {
    uda_stage::stage_main::<synth_scenes::SynthScenes>()
}
