//! Decisions remembered for calls that cost microseconds.
//!
//! A call whose decision sends it to the CPU, with every device idle, is
//! placed the same way again as long as nothing that decision read has
//! changed: the kernel, its size, its arguments' sizes and where their
//! valid copies live ([`MemoKey`]), and the model, the exclusions, the
//! splits and the buses (the dispatcher's `epoch`, moved by each change
//! that could change a choice). Such a call is then placed without its
//! candidates being built or estimated: for a tiny kernel, that was a
//! third of what `rt.run` cost over the direct call.
//!
//! The CPU's own samples move its estimate a little at every call without
//! moving the epoch; a remembered decision is therefore made afresh every
//! [`REDECIDE`] uses, as the estimates it shows would otherwise grow old.
//! Decisions for a GPU are not remembered: their launches cost far more
//! than placing them, and whether a GPU can take a call also depends on
//! its memory at the time.

use std::sync::Arc;

use super::decision::{Decision, Placement, Reason};
use super::{Dispatcher, device_index};
use crate::hash::FxMap;
use crate::ids::Backend;

/// Arguments a remembered call has at most (more: always decided).
pub(crate) const MEMO_ARGS: usize = 4;

/// Uses of a remembered decision before it is made afresh.
const REDECIDE: u32 = 16;

/// Remembered decisions at most (all forgotten when full).
const MEMO_CAP: usize = 256;

/// What a decision for one call read that the call itself brings: the
/// kernel and its variants, the call's size and workgroups, the backend it
/// names, and per argument its bytes and where its valid copies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MemoKey {
    pub(crate) kernel: u64,
    /// The kernel's variants, their identities folded (0: none). A
    /// decision names a variant by its place among them, so it is recalled
    /// only for the same variants: [`Kernel::alone`](crate::Kernel::alone)
    /// shares its kernel's id but has none, and two kernels of one id may
    /// have different ones.
    pub(crate) variants: u64,
    pub(crate) size: u64,
    pub(crate) workgroups: u64,
    pub(crate) forced: Option<Backend>,
    /// (bytes, residency bits) per argument, in order; unused slots zero.
    pub(crate) args: [(u64, u64); MEMO_ARGS],
}

/// A remembered decision, the epoch it was made in and its uses since.
pub(crate) struct Memo {
    placement: Placement,
    decision: Arc<Decision>,
    epoch: u64,
    uses: u32,
}

/// The dispatcher's remembered decisions.
#[derive(Default)]
pub(crate) struct Memos {
    map: FxMap<MemoKey, Memo>,
}

impl Dispatcher {
    /// Something a decision reads has changed: remembered decisions are
    /// made afresh.
    pub(super) fn touch(&mut self) {
        self.epoch += 1;
    }

    /// Whether no device has a call placed on it and unfinished.
    fn idle(&self) -> bool {
        self.in_flight.iter().all(|q| q.0 == 0)
    }

    /// The remembered placement for a call with this key, recorded as a
    /// decision would be; `None` where the call must be decided.
    pub(crate) fn recall(&mut self, key: &MemoKey) -> Option<Placement> {
        if !self.idle() {
            return None;
        }
        let epoch = self.epoch;
        let m = self.memos.map.get_mut(key)?;
        if m.epoch != epoch || m.uses >= REDECIDE {
            return None;
        }
        m.uses += 1;
        let (placement, decision) = (m.placement, Arc::clone(&m.decision));
        self.log_shared(decision);
        Some(placement)
    }

    /// Remembers `decision` (just recorded, its verdict `placement`) for
    /// calls with `key`, where it may be: an unsplit call to the CPU,
    /// decided with every device idle.
    pub(super) fn remember(
        &mut self,
        key: MemoKey,
        placement: Placement,
        decision: &Arc<Decision>,
    ) {
        let kept = matches!(
            decision.reason,
            Reason::Modelled | Reason::Forced | Reason::OnlyBackend
        );
        if !kept || decision.split.is_some() || device_index(decision.chosen) != 0 || !self.idle() {
            return;
        }
        if self.memos.map.len() >= MEMO_CAP {
            self.memos.map.clear();
        }
        let memo = Memo {
            placement,
            decision: Arc::clone(decision),
            epoch: self.epoch,
            uses: 0,
        };
        self.memos.map.insert(key, memo);
    }
}
