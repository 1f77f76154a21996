//! Placement: which backend runs a call. Today's policy is deliberately
//! simple and data-driven: run where the fewest argument bytes would have to
//! move, preferring a GPU on a tie. The measured performance model replaces
//! it; this module is the only place that has to change.

use crate::device::Backend;

/// Chooses among `backends` (CPU first, then GPUs best first) given the bytes
/// each would have to receive before it could run the call.
pub(crate) fn place(backends: &[Backend], missing_bytes: impl Fn(Backend) -> u64) -> Backend {
    let mut best = Backend::Cpu;
    let mut best_cost = u64::MAX;
    // GPUs first, so that a tie goes to the best GPU.
    for &b in backends
        .iter()
        .filter(|b| **b != Backend::Cpu)
        .chain(&[Backend::Cpu])
    {
        let cost = missing_bytes(b);
        if cost < best_cost {
            best = b;
            best_cost = cost;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_on_the_gpu_keeps_the_call_there() {
        let all = [Backend::Cpu, Backend::Gpu(0), Backend::Gpu(1)];
        assert_eq!(
            place(&all, |b| if b == Backend::Gpu(1) { 0 } else { 8 }),
            Backend::Gpu(1)
        );
        assert_eq!(
            place(&all, |b| if b == Backend::Cpu { 0 } else { 8 }),
            Backend::Cpu
        );
        assert_eq!(
            place(&all, |_| 0),
            Backend::Gpu(0),
            "a tie goes to the best GPU"
        );
        assert_eq!(place(&[Backend::Cpu], |_| 8), Backend::Cpu);
    }
}
