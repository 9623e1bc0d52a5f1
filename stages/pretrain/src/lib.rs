//! The `pretrain` stage (paper §4.1): the first model, trained on grayscale images of both
//! domains with cross-entropy on the labelled source and λ_ent · Charbonnier entropy on the
//! unlabelled target. With `grayscale: false` and `lambda_ent: 0` it is the "source only"
//! baseline (the target input is then not needed).
//!
//! Inputs: `source` (an ImageSet folder with labels), `target` (an ImageSet folder; labels
//! unused), optional `init` (initial weights: a `.safetensors` file, or a folder holding exactly
//! one, named as `init_naming` says).
//! Outputs: `model.safetensors` + `model.json` (see [`uda_train::ModelInfo`]), `train_log.parquet`
//! (see [`uda_train::log`]), `preview.png` (target images, as fed, beside the model's
//! predictions), `metrics.json`.
//!
//! Checkpoints go to the resume folder described in [`uda_train`] (`UDA_RESUME_DIR`, or
//! `<out>.resume/`); a killed run started again with the same params and inputs resumes there.
//!
//! The training recipe (params) and the steps around the loss are [`uda_train::recipe`] and
//! [`uda_train::session`], shared with `contrastive-train`.

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uda_stage::{InputSpec, OutputSpec, ParamProblem, Stage, StageContext};
use uda_train::session::{init_input, training_outputs};
use uda_train::source::{ImageSetSource, SampleSource};
use uda_train::step::fda_step_losses;
use uda_train::{FinishOptions, Loader, Session, TrainRecipe};

/// The stage.
#[derive(Debug)]
pub struct Pretrain;

impl Stage for Pretrain {
    const KIND: &'static str = "pretrain";
    const DOC: &'static str = "Train the first model: CE on (grayscale) source + lambda_ent * Charbonnier entropy on target (paper 4.1)";
    type Params = TrainRecipe;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec::required(
                "source",
                "ImageSet folder of the labelled source domain (GTA5)",
            ),
            InputSpec::optional(
                "target",
                "ImageSet folder of the unlabelled target domain (Cityscapes train); needed when lambda_ent > 0",
            ),
            init_input(),
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        training_outputs("target images as fed to the model beside its predictions")
    }

    fn validate(p: &TrainRecipe) -> Result<(), Vec<ParamProblem>> {
        p.validate()
    }

    fn run(ctx: &StageContext, p: &TrainRecipe) -> anyhow::Result<()> {
        run(ctx, p)
    }
}

fn run(ctx: &StageContext, p: &TrainRecipe) -> anyhow::Result<()> {
    let source_dir = ctx.input("source")?;
    let source: Arc<dyn SampleSource> = Arc::new(ImageSetSource::open(source_dir, true)?);
    let target_dir: Option<&Path> = if p.lambda_ent > 0.0 {
        Some(ctx.optional_input("target").context(
            "input 'target' is required when lambda_ent > 0 (pass --input target=DIR, or set lambda_ent=0)",
        )?)
    } else {
        None
    };
    let target: Option<Arc<dyn SampleSource>> = match target_dir {
        Some(dir) => Some(Arc::new(ImageSetSource::open(dir, false)?)),
        None => None,
    };

    let init = ctx.optional_input("init");
    let session = Session::start(Pretrain::KIND, p, init)?;
    let mut inputs: Vec<(&str, &Path)> = vec![("source", source_dir)];
    inputs.extend(target_dir.map(|d| ("target", d)));
    inputs.extend(init.map(|d| ("init", d)));
    let (mut trainer, start) = session.trainer(ctx, &(), &inputs)?;
    let class_weights = session.class_weights(source.as_ref())?;

    let net = session.net();
    let device = session.device();
    let mut source_loader = Loader::new(
        Arc::clone(&source),
        session.loader_config(Some(p.crop), true, "source"),
        start,
        p.iterations,
    )?;
    trainer.watch(source_loader.meter());
    let mut target_loader = match &target {
        Some(t) => {
            let l = Loader::new(
                Arc::clone(t),
                session.loader_config(p.target_crop, false, "target"),
                start,
                p.iterations,
            )?;
            trainer.watch(l.meter());
            Some(l)
        }
        None => None,
    };

    let progress = ctx.progress("train", p.iterations);
    let summary = trainer.run(&progress, |it| {
        let batch = source_loader.batch_for(it)?.to_device(device);
        let labels = batch.labels.as_ref().expect("source loader reads labels");
        let target = match target_loader.as_mut() {
            Some(loader) => Some(loader.batch_for(it)?.to_device(device)),
            None => None,
        };
        let losses = fda_step_losses(
            net,
            p,
            it,
            (&batch.images, labels, class_weights.as_ref()),
            target.as_ref().map(|t| &t.images),
        );
        Ok(losses)
    })?;
    progress.finish();
    drop(source_loader);
    drop(target_loader);

    let preview_set = target.as_ref().unwrap_or(&source);
    session.finish(
        ctx,
        &trainer,
        &summary,
        FinishOptions {
            preview_set: preview_set.as_ref(),
            is_model_var: &|_| true,
            extra_metrics: BTreeMap::new(),
        },
    )?;
    Ok(())
}
