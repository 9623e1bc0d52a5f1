//! The `uda-pipe` runner: a DAG of stage binaries over a content-addressed cache.
//!
//! Flow of `uda-pipe run pipeline.yaml`:
//! 1. [`pipeline`] reads the file into a located YAML tree ([`yaml`]), applies `--set`, resolves
//!    `${...}` ([`interp`]) and checks the shape;
//! 2. [`graph`] expands sweeps into nodes and validates params and inputs against each stage
//!    binary's `--describe` ([`describe`]), reporting every problem with file:line:column;
//! 3. [`plan`] hashes external inputs ([`hashing`], with a stat memo) and computes every node's
//!    key, then decides what is out of date and why;
//! 4. [`run`] schedules the out-of-date nodes within the CPU/GPU/memory budget, runs each under
//!    its key's lock through an [`executor::Executor`] and commits the entry atomically
//!    ([`cache`]); [`history`] records the run in Parquet; [`ui`] shows live progress.
//!
//! Executors: [`executor::LocalExecutor`] runs stages as child processes; [`slurm::SlurmExecutor`]
//! submits each as a Slurm job (array jobs for shardable stages), follows all of them with one
//! batched `sacct` per poll, and leaves the commit to this process as the local one does. Key
//! locks hold an [`owner`] record that other hosts of a shared cache can judge.
//!
//! The user-facing reference (commands, pipeline.yaml, cache layout, guarantees) is the crate's
//! README.md.

pub mod accept;
pub mod cache;
pub mod commands;
pub(crate) mod describe;
pub mod error;
pub mod executor;
pub mod graph;
pub(crate) mod hashing;
pub mod history;
pub(crate) mod interp;
mod node;
pub(crate) mod overrides;
pub mod owner;
pub mod pipeline;
pub mod plan;
pub mod process;
pub mod reason;
pub mod reference;
pub(crate) mod refs;
pub(crate) mod report;
pub(crate) mod resources;
pub mod run;
pub mod slurm;
pub(crate) mod sweep;
pub mod ui;
pub(crate) mod validate;
pub(crate) mod yaml;

pub use describe::KNOWN_STAGES;
pub use error::{Result, RunnerError};
pub use run::{Context, RunOptions, load};
