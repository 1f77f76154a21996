//! [`Cluster`]: MPI through rsmpi.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use mpi::Threading;
use mpi::collective::SystemOperation;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Equivalence, Root};

use super::DistMap;
use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::kernel::{Element, Kernel};
use crate::runtime::Runtime;

/// The most elements one MPI call moves: its counts are C `int`s.
const MAX_COUNT: usize = i32::MAX as usize;

/// An element type MPI can reduce: pel's elements that are numbers.
pub trait Reducible: Element + Equivalence + Default {}
impl Reducible for f32 {}
impl Reducible for u32 {}
impl Reducible for i32 {}

/// This process's place in an MPI job; see the [module](super) page.
pub struct Cluster {
    // Dropped last: finalises MPI.
    universe: mpi::environment::Universe,
    rank: usize,
    size: usize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

static HOOK: Once = Once::new();

/// The task this rank runs now, for the message of a rank that dies in
/// it: its number in the common order plus one (0: none yet), and its
/// kernel's name (written only when the kernel changes, which its id
/// tells).
static TASK: AtomicU64 = AtomicU64::new(0);
static TASK_KERNEL: Mutex<String> = Mutex::new(String::new());
static TASK_KERNEL_ID: AtomicU64 = AtomicU64::new(0);

/// Records that this rank now runs task `seq`, of `kernel`.
pub(super) fn set_task(seq: u64, kernel: &Kernel) {
    if TASK_KERNEL_ID.load(Ordering::Relaxed) != kernel.id() {
        let mut name = TASK_KERNEL.lock().unwrap_or_else(|p| p.into_inner());
        name.clear();
        name.push_str(kernel.name());
        TASK_KERNEL_ID.store(kernel.id(), Ordering::Relaxed);
    }
    TASK.store(seq + 1, Ordering::Release);
}

/// " in task N (`kernel`)", or nothing before the first task.
fn current_task() -> String {
    let seq = TASK.load(Ordering::Acquire);
    match (seq.checked_sub(1), TASK_KERNEL.try_lock().as_deref()) {
        (Some(seq), Ok(kernel)) => format!(" in task {seq} (`{kernel}`)"),
        (Some(seq), Err(_)) => format!(" in task {seq}"),
        _ => String::new(),
    }
}

impl Cluster {
    /// Starts MPI with `MPI_THREAD_MULTIPLE` (pel's workers may call MPI
    /// from any thread) and returns this rank's place. Run without a
    /// launcher, the job is this process alone (rank 0 of 1).
    ///
    /// From here on, a panic on any thread of this rank prints its rank and
    /// message and aborts the whole job (`MPI_Abort`), so no other rank
    /// waits for it forever.
    ///
    /// [`Error::Cluster`] if MPI was started already, or grants a lower
    /// thread level.
    pub fn init() -> Result<Cluster> {
        let Some((universe, granted)) = mpi::initialize_with_threading(Threading::Multiple) else {
            return Err(Error::Cluster {
                rank: 0,
                size: 0,
                message: "MPI was started already in this process (one Cluster a process)"
                    .to_owned(),
            });
        };
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if granted != Threading::Multiple {
            return Err(Error::Cluster {
                rank,
                size,
                message: format!(
                    "MPI granted thread level {granted:?}; pel needs Multiple (build the MPI with thread support)"
                ),
            });
        }
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                eprintln!(
                    "pel: rank {rank} of {size} panicked{} ({info}); aborting the job so no rank waits for it",
                    current_task()
                );
                SimpleCommunicator::world().abort(70);
            }));
        });
        Ok(Cluster {
            universe,
            rank,
            size,
        })
    }

    /// This process's rank, 0 to `size() - 1`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Ranks in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    fn world(&self) -> SimpleCommunicator {
        self.universe.world()
    }

    /// MPI's largest tag (`MPI_TAG_UB`; the standard promises 32,767).
    pub(super) fn tag_ub(&self) -> i32 {
        let mut value: *mut std::os::raw::c_int = std::ptr::null_mut();
        let mut found: std::os::raw::c_int = 0;
        // SAFETY: MPI_TAG_UB is a predefined attribute of the world
        // communicator; MPI writes a pointer to its `int` value into
        // `value` (and sets `found`), valid while MPI runs, which `self`
        // keeps it doing.
        unsafe {
            mpi::ffi::MPI_Comm_get_attr(
                self.world().as_raw(),
                mpi::ffi::MPI_TAG_UB as std::os::raw::c_int,
                (&raw mut value).cast(),
                &mut found,
            );
            if found != 0 && !value.is_null() {
                *value
            } else {
                32_767
            }
        }
    }

    /// Waits until every rank has come here.
    pub fn barrier(&self) {
        self.world().barrier();
    }

    /// Ends the whole job at once, with `message` naming this rank.
    pub fn abort(&self, message: &str) -> ! {
        eprintln!(
            "pel: rank {} of {}: {message}; aborting the job",
            self.rank, self.size
        );
        self.world().abort(71)
    }

    /// `Ok` if every rank built the same `map`; else [`Error::Distribution`]
    /// naming `buffer` and the first rank whose map differs from rank 0's
    /// (two ranks that disagree would each think they own an element).
    pub fn agree(&self, buffer: &str, map: &DistMap) -> Result<()> {
        let all = self.all_gather_u64(map.digest());
        match all.iter().position(|&d| d != all[0]) {
            None => Ok(()),
            Some(r) => Err(Error::Distribution {
                buffer: buffer.to_owned(),
                rank: r,
                message: format!(
                    "rank {r}'s distribution differs from rank 0's: an element would have two owners"
                ),
            }),
        }
    }

    /// `value` summed over every rank; every rank gets the sum.
    pub fn sum_u64(&self, value: u64) -> u64 {
        self.all_gather_u64(value).iter().sum()
    }

    /// Every rank's `value`, in rank order.
    pub fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size];
        self.world().all_gather_into(&value, &mut all[..]);
        all
    }

    /// Sums `buf` element by element over every rank, in place on each
    /// (`MPI_Allreduce`). Every rank passes a buffer of the same length.
    pub fn allreduce_sum<T: Reducible>(&self, rt: &Runtime, buf: &Buffer<T>) -> Result<()> {
        self.same_len("allreduce_sum", buf.len())?;
        let mine = rt.read(buf)?;
        let mut sum = vec![T::default(); mine.len()];
        let world = self.world();
        for (src, dst) in mine.chunks(MAX_COUNT).zip(sum.chunks_mut(MAX_COUNT)) {
            world.all_reduce_into(src, dst, SystemOperation::sum());
        }
        rt.write(buf, &sum)
    }

    /// Gives every rank `root`'s contents of `buf` (`MPI_Bcast`).
    pub fn broadcast<T: Reducible>(
        &self,
        rt: &Runtime,
        buf: &Buffer<T>,
        root: usize,
    ) -> Result<()> {
        self.check_root("broadcast", root)?;
        self.same_len("broadcast", buf.len())?;
        let mut data = rt.read(buf)?;
        let world = self.world();
        let process = world.process_at_rank(root as i32);
        for chunk in data.chunks_mut(MAX_COUNT) {
            process.broadcast_into(chunk);
        }
        if self.rank != root {
            rt.write(buf, &data)?;
        }
        Ok(())
    }

    /// Every rank's `buf`, in rank order, on `root` (`MPI_Gather`);
    /// `None` elsewhere. Every rank passes a buffer of the same length.
    pub fn gather<T: Reducible>(
        &self,
        rt: &Runtime,
        buf: &Buffer<T>,
        root: usize,
    ) -> Result<Option<Vec<T>>> {
        self.check_root("gather", root)?;
        let n = buf.len();
        self.same_len("gather", n)?;
        let mine = rt.read(buf)?;
        let world = self.world();
        let process = world.process_at_rank(root as i32);
        if self.rank != root {
            for chunk in mine.chunks(MAX_COUNT) {
                process.gather_into(chunk);
            }
            return Ok(None);
        }
        let mut all = vec![T::default(); n * self.size];
        let mut start = 0;
        for chunk in mine.chunks(MAX_COUNT) {
            let mut part = vec![T::default(); chunk.len() * self.size];
            process.gather_into_root(chunk, &mut part[..]);
            for r in 0..self.size {
                let from = &part[r * chunk.len()..(r + 1) * chunk.len()];
                all[r * n + start..r * n + start + chunk.len()].copy_from_slice(from);
            }
            start += chunk.len();
        }
        Ok(Some(all))
    }

    fn check_root(&self, what: &str, root: usize) -> Result<()> {
        if root < self.size {
            return Ok(());
        }
        Err(Error::Cluster {
            rank: self.rank,
            size: self.size,
            message: format!(
                "{what}: root rank {root}; the job has ranks 0 to {}",
                self.size - 1
            ),
        })
    }

    /// Every rank agrees on `len` (a collective over buffers of different
    /// lengths would read past one).
    fn same_len(&self, what: &str, len: usize) -> Result<()> {
        let all = self.all_gather_u64(len as u64);
        match all.iter().position(|&l| l != len as u64) {
            None => Ok(()),
            Some(r) => Err(Error::Cluster {
                rank: self.rank,
                size: self.size,
                message: format!(
                    "{what}: this rank's buffer has {len} elements, rank {r}'s {}",
                    all[r]
                ),
            }),
        }
    }
}
