//! The data loader: worker threads read and augment the batches of upcoming iterations while the
//! model trains on the current one, and hand them over bounded `crossbeam-channel`s.
//!
//! Worker `w` of `W` prepares the batches of iterations `start + w, start + w + W, ...` in order
//! and sends each down its own channel (capacity `⌈prefetch / W⌉`), and the consumer reads
//! iteration `i` from channel `(i − start) mod W`. Batches therefore arrive in iteration order
//! whatever the thread timing, at most `W · (capacity + 1)` batches are in flight, and a batch's
//! content is a pure function of `(seed, iteration)` (see [`crate::sampler`]), which is what makes
//! resumed runs exact. Time the consumer spends blocked in [`Loader::next_batch`] is added to the
//! loader's [`WaitMeter`].

use crate::TrainError;
use crate::augment::{Normalization, draw_augmentation, image_to_chw, label_crop};
use crate::sampler::{Sampler, sample_rng};
use crate::source::SampleSource;
use crate::trainer::WaitMeter;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use uda_models::tch::{Device, Kind, Tensor};

/// How batches are made.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    pub batch: usize,
    /// `(height, width)` of the random crop; `None` takes whole images.
    pub crop: Option<(usize, usize)>,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
    /// Convert to grayscale (PIL's luma, replicated into the three channels) before normalising.
    pub grayscale: bool,
    /// The model's input normalisation.
    pub norm: Normalization,
    /// Whether batches carry label maps (the source must have them).
    pub labels: bool,
    /// Seed of the data order and augmentations (derive one per loader with
    /// [`crate::sampler::derive_seed`]).
    pub seed: u64,
    /// Worker threads (>= 1).
    pub workers: usize,
    /// Batches prepared ahead of the consumer, over all workers (>= 1).
    pub prefetch: usize,
}

/// One iteration's batch, on the CPU until moved with [`Batch::to_device`].
#[derive(Debug)]
pub struct Batch {
    pub iteration: u64,
    /// `(B, 3, H, W)` float32, normalised.
    pub images: Tensor,
    /// `(B, H, W)` int64 train ids (255 = ignore), when the loader reads labels.
    pub labels: Option<Tensor>,
    /// Data-set index of each sample.
    pub indices: Vec<usize>,
}

impl Batch {
    pub fn to_device(self, device: Device) -> Self {
        Self {
            iteration: self.iteration,
            images: self.images.to_device(device),
            labels: self.labels.map(|l| l.to_device(device)),
            indices: self.indices,
        }
    }
}

/// Builds the batch of one iteration, reusing `raw`/`raw_label` as read buffers. The loader's
/// workers call this; it is public so tests and tools can reproduce any batch directly.
pub fn make_batch(
    source: &dyn SampleSource,
    cfg: &LoaderConfig,
    sampler: &mut Sampler,
    iteration: u64,
    raw: &mut Vec<u8>,
    raw_label: &mut Vec<u8>,
) -> Result<Batch, TrainError> {
    let size = source.size();
    let crop = cfg.crop.unwrap_or(size);
    let (ch, cw) = crop;
    raw.resize(size.0 * size.1 * 3, 0);
    let mut images = vec![0f32; cfg.batch * 3 * ch * cw];
    let mut labels = if cfg.labels {
        vec![0u8; cfg.batch * ch * cw]
    } else {
        Vec::new()
    };
    if cfg.labels {
        raw_label.resize(size.0 * size.1, 0);
    }
    let indices = sampler.batch_indices(iteration);
    let first = sampler.first_position(iteration);
    for (k, &index) in indices.iter().enumerate() {
        let mut rng = sample_rng(cfg.seed, first + k as u64);
        let aug = draw_augmentation(&mut rng, size, crop, cfg.flip);
        source.read_image(index, raw)?;
        let dst = &mut images[k * 3 * ch * cw..(k + 1) * 3 * ch * cw];
        image_to_chw(raw, size, crop, &aug, cfg.grayscale, &cfg.norm, dst);
        if cfg.labels {
            source.read_label(index, raw_label)?;
            label_crop(
                raw_label,
                size,
                crop,
                &aug,
                &mut labels[k * ch * cw..(k + 1) * ch * cw],
            );
        }
    }
    let (b, ch, cw) = (cfg.batch as i64, ch as i64, cw as i64);
    let images = Tensor::from_slice(&images).view([b, 3, ch, cw]);
    let labels = cfg.labels.then(|| {
        Tensor::from_slice(&labels)
            .view([b, ch, cw])
            .to_kind(Kind::Int64)
    });
    Ok(Batch {
        iteration,
        images,
        labels,
        indices,
    })
}

type Slot = Result<Batch, TrainError>;

/// A running data loader over iterations `start..end`.
#[derive(Debug)]
pub struct Loader {
    receivers: Vec<Receiver<Slot>>,
    handles: Vec<JoinHandle<()>>,
    start: u64,
    end: u64,
    next: u64,
    meter: WaitMeter,
    describe: String,
}

impl Loader {
    /// Validates the configuration against the source and starts the workers on iteration `start`.
    pub fn new(
        source: Arc<dyn SampleSource>,
        cfg: LoaderConfig,
        start: u64,
        end: u64,
    ) -> Result<Self, TrainError> {
        let what = source.describe();
        let bad = |m: String| TrainError::Config(format!("data loader over {what}: {m}"));
        if cfg.batch == 0 || cfg.workers == 0 || cfg.prefetch == 0 {
            return Err(bad(
                "batch, workers and prefetch must all be at least 1".into()
            ));
        }
        if source.is_empty() {
            return Err(bad("the data set is empty".into()));
        }
        let size = source.size();
        if let Some((ch, cw)) = cfg.crop
            && (ch == 0 || cw == 0 || ch > size.0 || cw > size.1)
        {
            return Err(bad(format!(
                "crop {cw}×{ch} (width×height) does not fit in its {}×{} images; choose a smaller crop",
                size.1, size.0
            )));
        }
        if cfg.labels && !source.has_labels() {
            return Err(bad("labels were asked for but the data has none".into()));
        }
        let workers = cfg
            .workers
            .min(usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX))
            .max(1);
        let capacity = cfg.prefetch.div_ceil(workers).max(1);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded::<Slot>(capacity);
            let source = Arc::clone(&source);
            let cfg = cfg.clone();
            let first = start + w as u64;
            let handle = std::thread::Builder::new()
                .name(format!("uda-loader-{w}"))
                .spawn(move || worker(source.as_ref(), &cfg, first, end, workers as u64, &tx))
                .map_err(|e| TrainError::io("starting a data-loader thread", e))?;
            receivers.push(rx);
            handles.push(handle);
        }
        Ok(Self {
            receivers,
            handles,
            start,
            end,
            next: start,
            meter: WaitMeter::default(),
            describe: what,
        })
    }

    /// The meter the trainer should [`crate::Trainer::watch`].
    pub fn meter(&self) -> WaitMeter {
        self.meter.clone()
    }

    /// The iteration whose batch [`Self::next_batch`] returns next.
    pub fn next_iteration(&self) -> u64 {
        self.next
    }

    /// The next iteration's batch (CPU tensors), blocking until a worker has it ready.
    pub fn next_batch(&mut self) -> Result<Batch, TrainError> {
        if self.next >= self.end {
            return Err(TrainError::Config(format!(
                "data loader over {} was asked for iteration {} but was built for iterations {}..{}",
                self.describe, self.next, self.start, self.end
            )));
        }
        let w = ((self.next - self.start) % self.receivers.len() as u64) as usize;
        let t0 = Instant::now();
        let slot = self.receivers[w].recv();
        self.meter.add(t0.elapsed());
        let batch = slot.map_err(|_| {
            TrainError::LoaderGone(format!(
                "worker {w} over {} exited; see the messages above",
                self.describe
            ))
        })??;
        debug_assert_eq!(batch.iteration, self.next);
        self.next += 1;
        Ok(batch)
    }

    /// The batch of `iteration`, which must be the next one (guards against a loop and a loader
    /// that got out of step).
    pub fn batch_for(&mut self, iteration: u64) -> Result<Batch, TrainError> {
        if iteration != self.next {
            return Err(TrainError::Config(format!(
                "data loader over {} is at iteration {} but iteration {iteration} was asked for",
                self.describe, self.next
            )));
        }
        self.next_batch()
    }
}

fn worker(
    source: &dyn SampleSource,
    cfg: &LoaderConfig,
    first: u64,
    end: u64,
    stride: u64,
    tx: &Sender<Slot>,
) {
    let mut sampler = Sampler::new(cfg.seed, source.len(), cfg.batch);
    let (mut raw, mut raw_label) = (Vec::new(), Vec::new());
    let mut it = first;
    while it < end {
        let slot = make_batch(source, cfg, &mut sampler, it, &mut raw, &mut raw_label);
        let failed = slot.is_err();
        if tx.send(slot).is_err() || failed {
            return; // consumer gone (loader dropped), or the error has been handed over
        }
        it += stride;
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receivers makes every blocked `send` fail, so the workers return.
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;

    fn source(n: usize, h: usize, w: usize) -> MemorySource {
        MemorySource {
            height: h,
            width: w,
            images: (0..n * h * w * 3).map(|i| (i % 253) as u8).collect(),
            labels: Some((0..n * h * w).map(|i| (i / (h * w)) as u8).collect()),
        }
    }

    fn cfg(workers: usize) -> LoaderConfig {
        LoaderConfig {
            batch: 2,
            crop: Some((4, 6)),
            flip: true,
            grayscale: false,
            norm: Normalization {
                bgr: false,
                scale: 1.0,
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            labels: true,
            seed: 11,
            workers,
            prefetch: 4,
        }
    }

    fn collect(workers: usize, start: u64, end: u64) -> Vec<(Vec<usize>, Vec<f32>, Vec<i64>)> {
        let mut l = Loader::new(Arc::new(source(5, 8, 10)), cfg(workers), start, end).unwrap();
        (start..end)
            .map(|it| {
                let b = l.batch_for(it).unwrap();
                assert_eq!(b.images.size(), [2, 3, 4, 6]);
                let labels = b.labels.unwrap();
                assert_eq!(labels.size(), [2, 4, 6]);
                (
                    b.indices,
                    Vec::<f32>::try_from(b.images.flatten(0, -1)).unwrap(),
                    Vec::<i64>::try_from(labels.flatten(0, -1)).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn batches_do_not_depend_on_worker_count_or_start() {
        let one = collect(1, 0, 12);
        let three = collect(3, 0, 12);
        assert_eq!(one, three);
        let resumed = collect(2, 7, 12);
        assert_eq!(&one[7..], resumed.as_slice());
        // Labels follow their image: every pixel of sample k carries its data-set index.
        for (indices, _, labels) in &one {
            for (k, &i) in indices.iter().enumerate() {
                assert!(labels[k * 24..(k + 1) * 24].iter().all(|&v| v == i as i64));
            }
        }
    }

    #[test]
    fn bad_configs_are_rejected_with_the_reason() {
        let src: Arc<dyn SampleSource> = Arc::new(source(3, 8, 10));
        let mut c = cfg(1);
        c.crop = Some((9, 6));
        let e = Loader::new(Arc::clone(&src), c, 0, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit"), "{e}");
        let mut nolab = source(3, 8, 10);
        nolab.labels = None;
        let e = Loader::new(Arc::new(nolab), cfg(1), 0, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels"), "{e}");
        let mut l = Loader::new(src, cfg(2), 0, 1).unwrap();
        l.next_batch().unwrap();
        assert!(l.next_batch().is_err());
    }

    #[test]
    fn dropping_a_loader_with_full_channels_does_not_hang() {
        let l = Loader::new(Arc::new(source(5, 8, 10)), cfg(2), 0, 1000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(l);
    }
}
