//! The `contrastive-train` stage (paper §4.2, eq. 5): the final model, trained with
//!
//! ```text
//! L = λ_ce · CE(s→t images, source labels) + λ_cl · L_contrastive(I_t, I_t→s; labels) + λ_ent · entropy(I_t)
//!     [+ λ_pl · CE(I_t, labels)]
//! ```
//!
//! where the contrastive term ([`uda_train::contrastive`], eq. 4) takes anchors in a target
//! image and keys in its target→source translation, with positives = same pseudo-label, on the
//! unit features of a projection head over the backbone's penultimate features (labels resized
//! to that grid by nearest neighbour). The head is trained with the network and left out of the
//! saved model. Each weight is a param, so Table 3's rows (CE only, CE + CL, CE + CL + entropy)
//! are param changes; `labels: ground_truth` is the "CL using GT" upper bound. `lambda_pl` adds
//! FDA's self-training term (CE on the pseudo-labelled target, `SStrain.py`); with `lambda_cl: 0`
//! the stage is FDA-MBT's self-training round and needs no `target_ts`.
//!
//! Inputs: `source` (ImageSet with labels: the source in target style, `fda/s2t`), `target`
//! (ImageSet of target images), `target_ts` (ImageSet of the same images in source style,
//! `fda/t2s`), `pseudo` (a `pseudolabel-dump` output for those images; not needed with
//! `labels: ground_truth`, which reads `target`'s labels), optional `init` (initial weights).
//!
//! Pairing: the target and translated loaders share one RNG stream, so iteration `i` draws the
//! same images with the same crops from both (checked every step); the two sets must hold the
//! same images in the same order (manifests compared).
//!
//! Outputs: as `pretrain` (`model.safetensors`, `model.json`, `train_log.parquet` with the
//! weighted terms `ce`, `cl`, `ent` and, with `lambda_pl`, `pl`; `preview.png`, `metrics.json`).

pub mod params;
mod source;

use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uda_models::tch::Kind;
use uda_stage::{InputSpec, OutputSpec, ParamProblem, Stage, StageContext};
use uda_train::contrastive::{
    ContrastiveConfig, ProjectionHead, labels_to_grid, pixel_contrastive_loss,
};
use uda_train::losses::{segmentation_cross_entropy, weighted_cross_entropy};
use uda_train::sampler::derive_seed;
use uda_train::session::{init_input, training_outputs};
use uda_train::source::{ImageSetSource, SampleSource};
use uda_train::{FinishOptions, Loader, Session, StepLosses};

pub use params::{ContrastiveOptions, ContrastiveParams, LabelSource};
pub use source::PseudoLabelledSource;

/// Var-store prefix of the projection head (trained, not saved with the model).
pub const HEAD_PREFIX: &str = "contrast_head";

/// The stage.
#[derive(Debug)]
pub struct ContrastiveTrain;

impl Stage for ContrastiveTrain {
    const KIND: &'static str = "contrastive-train";
    const DOC: &'static str = "Train the final model: CE on s->t + pixel contrastive loss between target and t->s (pseudo-labels) + lambda_ent * entropy (paper 4.2)";
    type Params = ContrastiveParams;

    fn inputs() -> Vec<InputSpec> {
        vec![
            InputSpec::required(
                "source",
                "ImageSet with labels: the source in target style (fda s2t)",
            ),
            InputSpec::required(
                "target",
                "ImageSet of the target images (anchors; entropy term)",
            ),
            InputSpec::optional(
                "target_ts",
                "ImageSet of the same target images in source style (fda t2s; keys); needed when lambda_cl > 0",
            ),
            InputSpec::optional(
                "pseudo",
                "pseudolabel-dump output for the target images (needed unless labels=ground_truth)",
            ),
            init_input(),
        ]
    }

    fn outputs() -> Vec<OutputSpec> {
        training_outputs("target images as fed to the model beside its predictions")
    }

    fn validate(p: &ContrastiveParams) -> Result<(), Vec<ParamProblem>> {
        p.validate()
    }

    fn run(ctx: &StageContext, p: &ContrastiveParams) -> anyhow::Result<()> {
        run(ctx, p)
    }
}

fn run(ctx: &StageContext, params: &ContrastiveParams) -> anyhow::Result<()> {
    let p = &params.train;
    let c = &params.contrastive;
    let kind = ContrastiveTrain::KIND;

    let source_dir = ctx.input("source")?;
    let target_dir = ctx.input("target")?;
    let use_cl = c.lambda_cl > 0.0;
    let ts_dir = if use_cl {
        Some(ctx.optional_input("target_ts").context(
            "input 'target_ts' (the target in source style, fda t2s) is required when lambda_cl > 0; pass --input target_ts=DIR or set lambda_cl=0",
        )?)
    } else {
        None
    };
    let source: Arc<dyn SampleSource> = Arc::new(ImageSetSource::open(source_dir, true)?);
    let (target, pseudo_dir): (Arc<dyn SampleSource>, Option<&Path>) = match c.labels {
        LabelSource::Pseudo => {
            let dir = ctx.optional_input("pseudo").context(
                "input 'pseudo' (a pseudolabel-dump output) is required with labels=pseudo; pass --input pseudo=DIR or set labels=ground_truth",
            )?;
            (Arc::new(PseudoLabelledSource::open(target_dir, dir)?), Some(dir))
        }
        LabelSource::GroundTruth => (
            Arc::new(ImageSetSource::open(target_dir, true).context(
                "labels=ground_truth reads the target's own labels.zarr (preprocess the target with labels)",
            )?),
            None,
        ),
    };
    let translated = match ts_dir {
        Some(dir) => Some(source::open_translation(target_dir, dir)?),
        None => None,
    };

    let init = ctx.optional_input("init");
    let session = Session::start(kind, p, init)?;
    let head = ProjectionHead::new(
        &(session.vs().root().set_group(uda_models::GROUP_HEAD) / HEAD_PREFIX),
        session.net().feature_dim(),
        c.proj_dim,
    );
    let mut inputs: Vec<(&str, &Path)> = vec![("source", source_dir), ("target", target_dir)];
    inputs.extend(ts_dir.map(|d| ("target_ts", d)));
    inputs.extend(pseudo_dir.map(|d| ("pseudo", d)));
    inputs.extend(init.map(|d| ("init", d)));
    // The fingerprint covers the recipe's result params and every contrastive option.
    let (mut trainer, start) = session.trainer(ctx, c, &inputs)?;
    // The weights are the source CE's; the pseudo-label CE (FDA-MBT's self-training) stays
    // unweighted, as in FDA's code.
    let class_weights = session.class_weights(source.as_ref())?;

    let (net, device) = (session.net(), session.device());
    let mut source_loader = Loader::new(
        Arc::clone(&source),
        session.loader_config(Some(p.crop), true, "source"),
        start,
        p.iterations,
    )?;
    trainer.watch(source_loader.meter());
    // Same purpose → same RNG stream → same images and crops in both target loaders.
    let target_cfg = session.loader_config(p.target_crop, true, "target");
    // CE only needs no target pass: it would only move the BatchNorm running statistics toward
    // the target (an AdaBN-like adaptation the CE-only ablation must not get unless `target_bn`
    // asks for exactly that), so no loader either.
    let target_loss = use_cl || p.lambda_ent > 0.0 || c.lambda_pl > 0.0;
    let mut target_loader = if target_loss || c.target_bn {
        let l = Loader::new(Arc::clone(&target), target_cfg.clone(), start, p.iterations)?;
        trainer.watch(l.meter());
        Some(l)
    } else {
        None
    };
    let mut ts_loader = match &translated {
        Some(translated) => {
            let cfg = uda_train::LoaderConfig {
                labels: false,
                ..target_cfg
            };
            let l = Loader::new(Arc::clone(translated), cfg, start, p.iterations)?;
            trainer.watch(l.meter());
            Some(l)
        }
        None => None,
    };
    let cl_cfg = ContrastiveConfig {
        temperature: c.temperature,
        max_anchors_per_class: c.max_anchors_per_class,
        max_keys_per_class: c.max_keys_per_class,
    };
    let cl_seed = derive_seed(p.seed, "contrastive-sampling");
    let mut anchors_used = 0u64;
    let mut steps_with_anchors = 0u64;

    let progress = ctx.progress("train", p.iterations);
    let summary = trainer.run(&progress, |it| {
        let s = source_loader.batch_for(it)?.to_device(device);
        let s_labels = s.labels.as_ref().expect("source loader reads labels");
        let out_s = net.forward_t(&s.images, true);
        let mut losses = StepLosses::new().with(
            "ce",
            c.lambda_ce,
            weighted_cross_entropy(&out_s.logits, s_labels, class_weights.as_ref()),
        );
        let Some(target_loader) = target_loader.as_mut() else {
            return Ok(losses);
        };
        let t = target_loader.batch_for(it)?.to_device(device);
        if !target_loss {
            // `target_bn` alone: the pass only updates the BatchNorm running statistics.
            uda_models::tch::no_grad(|| net.forward_t(&t.images, true));
            return Ok(losses);
        }
        let out_t = net.forward_t(&t.images, true);
        if let Some(ts_loader) = ts_loader.as_mut() {
            let ts = ts_loader.batch_for(it)?.to_device(device);
            if ts.indices != t.indices {
                return Err(uda_train::TrainError::Data {
                    context: format!("iteration {it}"),
                    message: format!(
                        "target images {:?} and translated images {:?} are out of step",
                        t.indices, ts.indices
                    ),
                });
            }
            let out_ts = net.forward_t(&ts.images, true);
            let za = head.forward(&out_t.features);
            let zk = head.forward(&out_ts.features);
            let grid = za.size();
            let labels = labels_to_grid(
                t.labels.as_ref().expect("target loader reads labels"),
                grid[2],
                grid[3],
            );
            let (cl, stats) =
                pixel_contrastive_loss(&za, &labels, &zk, &labels, &cl_cfg, cl_seed ^ it);
            anchors_used += stats.anchors as u64;
            steps_with_anchors += u64::from(stats.images > 0);
            let weight = if it >= c.cl_start { c.lambda_cl } else { 0.0 };
            losses.push("cl", weight, cl.to_kind(Kind::Float));
        }
        if c.lambda_pl > 0.0 {
            let labels = t.labels.as_ref().expect("target loader reads labels");
            let pl = segmentation_cross_entropy(&out_t.logits, labels);
            losses.push("pl", c.lambda_pl, pl);
        }
        if p.lambda_ent > 0.0 {
            let ent = p.entropy(&out_t.logits, &t.images);
            let weight = if it >= p.ent_start { p.lambda_ent } else { 0.0 };
            losses.push("ent", weight, ent);
        }
        Ok(losses)
    })?;
    progress.finish();
    drop((source_loader, target_loader, ts_loader));

    let mut extra = BTreeMap::new();
    extra.insert(
        "mean_anchors_per_step".into(),
        (steps_with_anchors > 0)
            .then(|| anchors_used as f64 / steps_with_anchors as f64)
            .into(),
    );
    let head_prefix = format!("{HEAD_PREFIX}.");
    session.finish(
        ctx,
        &trainer,
        &summary,
        FinishOptions {
            preview_set: target.as_ref(),
            is_model_var: &|name| !name.starts_with(&head_prefix),
            extra_metrics: extra,
        },
    )?;
    Ok(())
}
