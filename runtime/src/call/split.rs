//! A call split between a GPU and the CPU: items `0..cut` on the GPU, in
//! a thread of its own, the rest on the CPU at the same time; the GPU's
//! part of every written buffer then comes down into the host copy.

use std::time::Instant;

use crate::device::{Args, Launch};
use crate::error::{Error, Result};
use crate::kernel::Kernel;

use crate::buffer::Handle;

use super::{Call, Engine, SplitWork};

impl Engine {
    /// Runs a split call: items `0..cut` on the GPU, in a thread of its own,
    /// while this thread runs `cut..items` on the CPU; then the GPU's part
    /// of every written buffer comes down into the host copy. Returns how
    /// long each part took, seconds (the GPU's with its download).
    pub(super) fn run_split(
        &self,
        kernel: &Kernel,
        call: &Call<'_>,
        s: SplitWork,
    ) -> Result<(f64, f64)> {
        let lens: Vec<usize> = call.args.iter().map(|h| h.len).collect();
        let part = |a, b| {
            kernel
                .split_params(call.params, a, b)
                .expect("only splittable kernels are split")
        };
        let (gpu_params, cpu_params) = (part(0, s.cut), part(s.cut, s.items));
        let gpu_groups = kernel.workgroups(&gpu_params, &lens);
        let gpu = &self.gpus[s.gpu];
        let gpu_lane = s.gpu as u32 + 1;
        // The bytes of each written buffer that the GPU's items cover.
        let written: Vec<(usize, usize)> = call
            .args
            .iter()
            .zip(&kernel.reflection().storage)
            .enumerate()
            .filter(|(_, (_, b))| b.access.writes())
            .map(|(i, (h, _))| (i, (h.bytes / s.items * s.cut) as usize))
            .collect();
        let (cpu, gpu_part) = std::thread::scope(|scope| {
            let gpu_part = scope.spawn(|| -> Result<(Vec<Vec<u8>>, f64)> {
                let t = Instant::now();
                let timed = self.tracer.on();
                match gpu.execute(Launch {
                    kernel,
                    args: Args::Device(&s.bound),
                    params: &gpu_params,
                    workgroups: gpu_groups,
                    timed,
                    sample: false,
                    expect_s: None,
                })? {
                    Some(d) => self
                        .tracer
                        .span_ending(kernel.name(), gpu_lane, Instant::now(), d),
                    None => self.tracer.span(kernel.name(), gpu_lane, t),
                }
                let mut parts = Vec::with_capacity(written.len());
                for &(i, bytes) in &written {
                    let mut out = vec![0u8; bytes];
                    gpu.download(&s.bound[i].0, &mut out)?;
                    self.counters.download(bytes as u64);
                    parts.push(out);
                }
                Ok((parts, t.elapsed().as_secs_f64()))
            });
            let t = Instant::now();
            let cpu = self.cpu.execute(kernel, &s.raw, &cpu_params);
            self.tracer.span(kernel.name(), 0, t);
            let cpu = cpu.map(|()| t.elapsed().as_secs_f64());
            let gpu_part = gpu_part.join().unwrap_or_else(|_| {
                Err(Error::KernelPanicked {
                    kernel: kernel.name().to_owned(),
                    message: "the GPU part of a split call panicked".to_owned(),
                })
            });
            (cpu, gpu_part)
        });
        let (cpu_s, (parts, gpu_s)) = (cpu?, gpu_part?);
        for ((i, bytes), part) in written.iter().zip(parts) {
            debug_assert_eq!(part.len(), *bytes);
            debug_assert!(*bytes <= s.raw[*i].bytes);
            // SAFETY: `raw[i]` is the host copy of argument i, `raw[i].bytes`
            // long, and `bytes` (the GPU's share of it, `h.bytes / items *
            // cut` with `cut < items`) is within it; this call holds it
            // under an exclusive lease (aliased writes are refused), the CPU
            // part, which wrote only items `cut..`, has returned, and `part`
            // is a separate allocation. No safe code can break this: the
            // lengths come from the runtime's own handles.
            unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), s.raw[*i].ptr, *bytes) };
        }
        Ok((cpu_s, gpu_s))
    }
}

/// The length of a splittable call's index range, when the call can be
/// split: at least two items, and every written buffer a whole number of
/// elements per item.
pub(crate) fn split_items(kernel: &Kernel, args: &[&Handle], params: &[u8]) -> Option<u64> {
    let lens: Vec<usize> = args.iter().map(|h| h.len).collect();
    let items = kernel.split_items(params, &lens)?;
    let whole = args
        .iter()
        .zip(&kernel.reflection().storage)
        .filter(|(_, b)| b.access.writes())
        .all(|(h, _)| (h.len as u64).is_multiple_of(items.max(1)) && h.bytes.is_multiple_of(4));
    (items >= 2 && whole).then_some(items)
}
