//! GPU streams on real adapters: launches on GPU-resident data are queued
//! and submitted in batches, the host waits only when it needs bytes, and
//! the queued calls' device times still reach the performance model.

mod common;

use common::random;

use pel::kernels::Sort;
use pel::{Backend, Runtime, Target};

/// Every GPU of a fresh runtime that queues its launches, with its index
/// (a skip where none does: GL waits for every launch).
fn batching(rt: &Runtime, test: &str) -> Vec<(Backend, usize)> {
    let all = common::gpus(rt, test);
    let batching: Vec<(Backend, usize)> = all
        .iter()
        .filter(|&&g| rt.device(g).is_ok_and(|d| d.batches))
        .map(|&g| match g {
            Backend::Gpu(i) => (g, i),
            Backend::Cpu => unreachable!("a GPU backend"),
        })
        .collect();
    if !all.is_empty() && batching.is_empty() {
        eprintln!("SKIPPED {test}: no GPU here queues its launches");
    }
    batching
}

fn fresh() -> Runtime {
    Runtime::builder().persist_model(false).build().unwrap()
}

#[test]
fn a_chain_of_calls_waits_once_for_its_result() {
    let rt = fresh();
    let saxpy = pel::kernels::Saxpy::new().unwrap();
    for (gpu, g) in batching(&rt, "a_chain_of_calls_waits_once_for_its_result") {
        let n = 10_007;
        let (xs, ys) = (random(n, 1), random(n, 2));
        let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
        // Both vectors onto the GPU, the pipeline compiled.
        saxpy.run(&rt, Target::On(gpu), 0.0, &x, &y).unwrap();
        rt.reset_stats();
        // More calls than one batch holds, through both APIs (and fewer
        // than the 64 versions past which a buffer's lineage is cut short
        // by bringing it to the host).
        let mut want: Vec<f64> = ys.iter().map(|&v| v as f64).collect();
        for step in 0..60 {
            let a = 0.125 * (step % 5) as f32;
            if step % 2 == 0 {
                saxpy.run(&rt, Target::On(gpu), a, &x, &y).unwrap();
            } else {
                saxpy.submit(&rt, Target::On(gpu), a, &x, &y).unwrap();
            }
            for (w, &xv) in want.iter_mut().zip(&xs) {
                *w = (a as f64).mul_add(xv as f64, *w) as f32 as f64;
            }
        }
        rt.wait_all().unwrap();
        let s = rt.stats();
        assert_eq!(s.host_waits[g], 0, "{gpu}: no wait before the read: {s}");
        assert_eq!(s.gpu_runs, 60, "{s}");
        let got = rt.read(&y).unwrap();
        let s = rt.stats();
        assert_eq!(s.host_waits[g], 1, "{gpu}: one wait, for the bytes: {s}");
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            // Each step rounds once (fma or a·x + y, 2 roundings at most).
            let tol = 60.0 * 2.0 * f32::EPSILON as f64 * (1.0 + w.abs());
            assert!((g as f64 - w).abs() <= tol, "{gpu}: [{i}] {g} vs {w}");
        }
    }
}

#[test]
fn a_gpu_sort_waits_once_when_its_result_is_read() {
    let rt = fresh();
    let sort = Sort::new().unwrap();
    for (gpu, g) in batching(&rt, "a_gpu_sort_waits_once_when_its_result_is_read") {
        let n = 100_003;
        let keys: Vec<u32> = random(n, 3).iter().map(|v| v.to_bits()).collect();
        let b = rt.buffer(&keys);
        // The pipelines compiled and the keys on the GPU, sorted; the sort
        // below starts from GPU-resident keys, reversed there first.
        sort.radix_sort(&rt, Target::On(gpu), &b).unwrap();
        let mut want = keys.clone();
        want.sort_unstable();
        rt.reset_stats();
        sort.radix_sort(&rt, Target::On(gpu), &b).unwrap();
        assert_eq!(rt.stats().host_waits[g], 0, "{gpu}: {}", rt.stats());
        assert_eq!(rt.read(&b).unwrap(), want, "{gpu}");
        let s = rt.stats();
        assert_eq!(s.host_waits[g], 1, "{gpu}: {s}");
        assert!(s.gpu_runs >= 8, "every pass ran on the GPU: {s}");
    }
}

#[test]
fn queued_calls_reach_the_model_once_their_batch_finishes() {
    let rt = fresh();
    let saxpy = pel::kernels::Saxpy::new().unwrap();
    for (gpu, _) in batching(
        &rt,
        "queued_calls_reach_the_model_once_their_batch_finishes",
    ) {
        let n = 4096;
        let (x, y) = (rt.buffer(&random(n, 4)), rt.buffer(&random(n, 5)));
        saxpy.run(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
        let before = samples(&rt, gpu);
        // One queued launch in eight is timed on the device.
        for _ in 0..40 {
            saxpy.run(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
        }
        rt.read(&y).unwrap();
        // The read waited for the batch; the next call hands its times on.
        saxpy.run(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
        let after = samples(&rt, gpu);
        assert!(
            after >= before + 4,
            "{gpu}: {before} samples before, {after} after"
        );
    }
}

/// The model's samples of saxpy on `gpu`, over every size.
fn samples(rt: &Runtime, gpu: Backend) -> u64 {
    let i = rt.device(gpu).unwrap();
    let key = format!("{} {} [{}] ({})", i.api, i.name, i.driver, i.kind);
    rt.model_rows()
        .iter()
        .filter(|r| r.kernel == "saxpy" && r.device == key)
        .map(|r| r.summary.samples as u64)
        .sum()
}
