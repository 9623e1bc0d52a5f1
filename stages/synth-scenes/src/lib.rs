//! The `synth-scenes` stage: writes the procedural benchmark of `uda-synth` (GTA5-layout source,
//! Cityscapes-layout target, previews, class statistics) into its output folder. It has no
//! inputs; everything follows from the params, so the runner's cache key is the params.

use std::time::Instant;
use uda_stage::{InputSpec, OutputSpec, ParamProblem, Stage, StageContext};
use uda_synth::{Split, SynthParams};

/// The stage (see the crate docs).
#[derive(Debug)]
pub struct SynthScenes;

impl Stage for SynthScenes {
    const KIND: &'static str = "synth-scenes";
    const DOC: &'static str = "Generate synthetic street scenes: a 'game' source in the GTA5 layout and a 'camera' target in the Cityscapes layout";
    type Params = SynthParams;

    fn inputs() -> Vec<InputSpec> {
        Vec::new()
    }

    fn outputs() -> Vec<OutputSpec> {
        vec![
            OutputSpec::new(
                "gta5",
                "source: images/NNNNN.png (RGB) and labels/NNNNN.png (Cityscapes label ids)",
            ),
            OutputSpec::new(
                "cityscapes",
                "target: leftImg8bit/{train,val}/CITY/*_leftImg8bit.png and gtFine/{train,val}/CITY/*_gtFine_labelIds.png",
            ),
            OutputSpec::new(
                uda_synth::PREVIEWS,
                "PNG panels: image | colourised labels per split; shift_*: one scene in both looks",
            ),
            OutputSpec::new(
                uda_synth::CLASS_STATS,
                "class_id, class_name, domain, pixel_fraction, image_fraction",
            ),
            OutputSpec::new(
                uda_stage::METRICS_FILE,
                "counts, per-class fractions, mean colour and contrast per split",
            ),
        ]
    }

    fn validate(params: &SynthParams) -> Result<(), Vec<ParamProblem>> {
        params.validate().map_err(|e| match e {
            uda_synth::SynthError::BadParam { key, message } => {
                vec![ParamProblem::new(key, message)]
            }
            other => vec![ParamProblem::new("", other.to_string())],
        })
    }

    fn run(ctx: &StageContext, params: &SynthParams) -> anyhow::Result<()> {
        let start = Instant::now();
        let total: usize = Split::ALL.iter().map(|s| s.count(params)).sum();
        let progress = ctx.progress("scenes", total as u64);
        let summary = uda_synth::write_benchmark(ctx.out_dir(), params, &|| progress.inc(1))?;
        progress.finish();
        let mut metrics = uda_synth::metrics(&summary.stats);
        metrics.insert("height".into(), serde_json::json!(params.height));
        metrics.insert("width".into(), serde_json::json!(params.width));
        metrics.insert("seed".into(), serde_json::json!(params.seed));
        metrics.insert("previews".into(), serde_json::json!(summary.previews));
        metrics.insert(
            "seconds".into(),
            serde_json::json!((start.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        );
        ctx.write_metrics(&metrics)
    }
}
