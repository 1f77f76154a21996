//! A rank's bound CPU tasks: a task that runs on the CPU with the same
//! kernel and buffers as one before it reuses that one's checked binding
//! ([`Runtime::run_bound`]): a stencil or an iterative solver submits the
//! same few tasks step after step, and each runs at a fraction of a
//! call's cost.

use std::sync::{Arc, Mutex};

use crate::buffer::BufferArg;
use crate::call::Bound;
use crate::hash::FxMap;
use crate::ids::{Backend, Target};
use crate::kernel::Kernel;
use crate::runtime::Runtime;

/// Bindings kept at the most; past it they are all forgotten (a program
/// that makes buffer after buffer binds again what it still uses).
const KEPT: usize = 4096;

/// A task's kernel and its arguments' [`DistBuffer`](super::DistBuffer)
/// ids.
type Key = (u64, smallvec::SmallVec<[u64; 8]>);

/// The bindings of the tasks this rank ran: `None` for a kernel that
/// cannot be bound (placement chooses among its implementations).
#[derive(Default)]
pub(super) struct Bindings {
    map: Mutex<FxMap<Key, Option<Arc<Bound>>>>,
}

impl Bindings {
    /// The binding of `kernel` on `local` (the rank's copies of the
    /// buffers `ids`), made at its first run; `None` where an ordinary call
    /// must run it: an automatic task on a rank with GPUs (placement
    /// decides), or a kernel that cannot be bound.
    pub(super) fn get(
        &self,
        rt: &Runtime,
        (kernel, target): (&Kernel, Target),
        ids: impl Iterator<Item = u64>,
        local: &[&dyn BufferArg],
    ) -> Option<Arc<Bound>> {
        let on_cpu = match target {
            Target::On(Backend::Cpu) => true,
            Target::Auto => rt.gpu_count() == 0,
            _ => false,
        };
        if !on_cpu {
            return None;
        }
        let key: Key = (kernel.id(), ids.collect());
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(&key) {
            return b.clone();
        }
        // A binding that fails its checks is not kept: the ordinary call
        // reports the error.
        let b = rt.bind(kernel, local).ok()?.map(Arc::new);
        if map.len() >= KEPT {
            map.clear();
        }
        map.insert(key, b.clone());
        b
    }
}
