//! The GPU stream's rows of `pel bench peers`: chains of small kernels on
//! GPU-resident data against a hand-written wgpu program that batches them,
//! and the host waits of one GPU sort.
//!
//! - `chain_vs_raw_wgpu`: [`CALLS`] saxpy calls on data already on the GPU,
//!   then one read of the result, through `run` and through `submit`, at
//!   1K, 64K and 1M elements; the peer records the whole chain into one
//!   command buffer, submits it once and reads the result once. Each row's
//!   ratio is the median over rounds of pel's chain over the peer's chain
//!   of the same round; the worst row's, over sizes and both APIs.
//! - `sort_gpu_waits`: the times the host blocked on the GPU during one
//!   radix sort of 1M keys there, its result read back included.

use std::collections::BTreeMap;

use pel::kernels::saxpy::SaxpyParams;
use pel::kernels::{Saxpy, Sort};
use pel::{Backend, Result, Runtime, Target};

use super::{RawWgpu, random_f32};
use crate::median;

/// Calls in one chain.
pub const CALLS: usize = 64;

/// Elements of the chains' vectors.
pub const SIZES: [usize; 3] = [1 << 10, 1 << 16, 1 << 20];

/// Seconds of chains a side that a row's rounds aim at. The ratio is the
/// worst of six rows, each a median with its own noise: at 0.5 s a row,
/// 1K and 64K rows whose ratio sits at 1.03-1.05 gave up to 1.16 in one
/// run of eight; at 1 s, they move half as much.
pub const ROW_S: f64 = 1.0;

/// The most rounds of one row.
pub const MAX_REPS: usize = 201;

/// Keys of the sort whose host waits are counted.
pub const SORT_KEYS: usize = 1 << 20;

/// Times the chains on GPU `g` (medians under `chain_*`) and returns the
/// worst ratio of pel's time over the peer's.
pub fn chain_vs_raw(
    rt: &Runtime,
    g: Backend,
    raw: &RawWgpu,
    reps: usize,
    medians: &mut BTreeMap<String, f64>,
) -> Result<f64> {
    let saxpy = Saxpy::new()?;
    let mut worst: f64 = 0.0;
    // Chains are short and llvmpipe shares the host's cores, which makes
    // single chains' times swing by 2x: more rounds, as many as fit in
    // about [`ROW_S`] a side (a median of 27 short chains moved by 10%
    // between runs).
    let least = (reps * 3).max(9);
    for (i, &n) in SIZES.iter().enumerate() {
        let (x, y) = (random_f32(20 + i as u64, n), random_f32(30 + i as u64, n));
        let (xb, yb) = (rt.buffer(&x), rt.buffer(&y));
        let p = SaxpyParams {
            a: 0.5,
            n: n as u32,
        };
        let groups = (n as u64).div_ceil(256);
        let args = [bytemuck::cast_slice(&x), bytemuck::cast_slice(&y)];
        let params = bytemuck::bytes_of(&p);
        // Untimed: the data onto the GPU, the pipelines compiled.
        saxpy.run(rt, Target::On(g), 0.5, &xb, &yb)?;
        raw.chain(pel::kernels::saxpy::WGSL, &args, params, groups, 1, true)?;
        // The peer's chain, on the data already on the device.
        let raw_chain = || {
            raw.chain(
                pel::kernels::saxpy::WGSL,
                &args,
                params,
                groups,
                CALLS,
                false,
            )
            .map(drop)
        };
        let t = std::time::Instant::now();
        raw_chain()?;
        let fit = (ROW_S / t.elapsed().as_secs_f64().max(1e-6)) as usize;
        let reps = fit.clamp(least, MAX_REPS);
        for api in ["run", "submit"] {
            let names = [
                format!("chain_{n}_pel_{api}"),
                format!("chain_{n}_raw_wgpu_{api}"),
            ];
            let t = crate::interleaved_rounds(
                &[0u8, 1],
                reps,
                0.0,
                40 + i as u64,
                |_| Ok(()),
                |m, _| {
                    if m == 1 {
                        return raw_chain();
                    }
                    for _ in 0..CALLS {
                        if api == "run" {
                            saxpy.run(rt, Target::On(g), 0.5, &xb, &yb)?;
                        } else {
                            saxpy.submit(rt, Target::On(g), 0.5, &xb, &yb)?;
                        }
                    }
                    rt.read(&yb).map(drop)
                },
                |_| false,
            )?;
            let (ours, peer) = (&t[&0], &t[&1]);
            medians.insert(names[0].clone(), median(ours.clone()));
            medians.insert(names[1].clone(), median(peer.clone()));
            // Each round's pel chain over the peer's chain of the same
            // round, which ran moments before or after it: a burst of this
            // machine's noise slows both, and leaves their ratio.
            let ratio = median(ours.iter().zip(peer).map(|(a, b)| a / b).collect());
            worst = worst.max(ratio);
        }
    }
    Ok(worst)
}

/// The host waits on GPU `g` during one radix sort of [`SORT_KEYS`] random
/// keys there and the read of its result (the keys' upload before it not
/// counted: it is made before).
pub fn sort_gpu_waits(rt: &Runtime, g: Backend) -> Result<u64> {
    let sort = Sort::new()?;
    let keys: Vec<u32> = random_f32(50, SORT_KEYS)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let kb = rt.buffer(&keys);
    // Compiles the passes' pipelines and leaves the (sorted) keys valid on
    // the GPU only: the measured sort starts from GPU-resident keys, as
    // radix sort's time does not depend on their order.
    sort.radix_sort(rt, Target::On(g), &kb)?;
    let index = match g {
        Backend::Gpu(i) => i,
        Backend::Cpu => return Ok(0),
    };
    let before = rt.stats().host_waits.get(index).copied().unwrap_or(0);
    sort.radix_sort(rt, Target::On(g), &kb)?;
    rt.read(&kb)?;
    let waits = rt.stats().host_waits.get(index).copied().unwrap_or(0) - before;
    Ok(waits)
}
