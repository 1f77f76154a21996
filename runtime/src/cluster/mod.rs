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
//! Still to come (the cluster issue): buffers whose copies live on other
//! ranks in the validity map, tasks placed on the rank that owns what they
//! write, and the network link in the dispatcher's model.

mod dist;

pub use dist::{DistMap, Distribution};

#[cfg(feature = "cluster")]
mod mpi_cluster;

#[cfg(feature = "cluster")]
pub use mpi_cluster::{Cluster, Reducible};
