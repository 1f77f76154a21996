//! Ranks: one program started by an MPI launcher (`mpirun`, `srun`) on
//! many processes, each with its own runtime.
//!
//! [`Distribution`] and [`DistMap`] (which rank owns which element) are
//! in every build. [`Cluster`] (MPI itself, through rsmpi) is behind the
//! `cluster` feature, so a program without MPI builds pel as before:
//!
//! - [`Cluster::init`] starts MPI with the thread level pel needs
//!   (`MPI_THREAD_MULTIPLE`, checked) and knows its rank; started without a
//!   launcher it is a one-rank cluster;
//! - collectives on pel buffers go through MPI's own (`allreduce`,
//!   `broadcast`, `gather`), split where a count would pass MPI's `int`;
//! - a rank that panics aborts the whole job with a message naming it:
//!   unwinding would run `MPI_Finalize` while the others wait for it, and
//!   the job would hang.
//!
//! - [`ClusterRuntime`] runs one task graph over the ranks: every rank
//!   makes the same [`DistBuffer`]s and submits the same tasks in the same
//!   order; a task runs on the rank that owns what it writes, its inputs
//!   sent there once and cached; one progress thread a rank completes the
//!   sends.
//!
//! - A [`Recording`] keeps a stretch of tasks and how each rank ran them;
//!   [`ClusterRuntime::replay`] submits them again without working them
//!   out, where the ranks holding their buffers are those of last time.
//!
//! Inside a rank, each task is placed among that rank's CPU and GPUs as on
//! one machine. With [`ClusterRuntime::balance`] on, a task may also move
//! off its owner when a common model (each rank's queue, its measured
//! speed, and the network's measured latency and bandwidth) says it pays.

mod dist;

pub use dist::{DistMap, Distribution};

#[cfg(feature = "cluster")]
mod balance;
#[cfg(feature = "cluster")]
mod bindings;
#[cfg(feature = "cluster")]
mod dist_buffer;
#[cfg(feature = "cluster")]
mod make;
#[cfg(feature = "cluster")]
mod mpi_cluster;
#[cfg(feature = "cluster")]
mod place;
#[cfg(feature = "cluster")]
mod progress;
#[cfg(feature = "cluster")]
mod ranks;
#[cfg(feature = "cluster")]
mod recording;
#[cfg(feature = "cluster")]
mod wire;

#[cfg(feature = "cluster")]
pub use dist_buffer::{DistArg, DistBuffer, DistRef};
#[cfg(feature = "cluster")]
pub use mpi_cluster::{Cluster, Reducible};
#[cfg(feature = "cluster")]
pub use place::{MARGIN, NetLink, RankSpeed};
#[cfg(feature = "cluster")]
pub use ranks::{ClusterRuntime, ClusterStats};
#[cfg(feature = "cluster")]
pub use recording::Recording;
