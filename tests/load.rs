//! Load: 8 threads × 2,000 mixed submissions (chains of saxpy, sums, fresh
//! buffers made and dropped all along, automatic placement and forced
//! GPUs), every result checked, inside a bounded time; afterwards the
//! buffers, the pool and the process's memory come back to their baseline.

mod common;

use common::random;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pel::kernels::{Saxpy, Sum};
use pel::{Backend, Runtime, Target};

const THREADS: usize = 8;
const SUBMISSIONS: usize = 2000;
/// Submissions between two checks of a thread's buffers.
const ROUND: usize = 50;

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// One thread's work: `SUBMISSIONS` submissions in rounds; each round makes
/// fresh buffers, submits a saxpy chain and sums on them, then checks every
/// result against the same arithmetic on the host.
fn worker(rt: &Runtime, gpus: &[Backend], thread: usize) -> Result<usize, String> {
    let saxpy = Saxpy::new().map_err(|e| e.to_string())?;
    let sum = Sum::new().map_err(|e| e.to_string())?;
    let mut done = 0;
    let mut round = 0u64;
    while done < SUBMISSIONS {
        round += 1;
        let seed = thread as u64 * 1_000_003 + round;
        // Awkward sizes: 1, primes, just over a workgroup, a few thousand.
        let n = [1, 257, 4099, 65_537][(seed % 4) as usize];
        let xs = random(n, seed);
        let mut want = random(n, seed + 7);
        let (x, y) = (rt.buffer(&xs), rt.buffer(&want));
        let mut sums = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..ROUND.min(SUBMISSIONS - done) {
            // Every eighth on a GPU, forced; the rest placed by pel.
            let target = match (i % 8, gpus.is_empty()) {
                (0, false) => Target::On(gpus[i / 8 % gpus.len()]),
                _ => Target::Auto,
            };
            if i % 5 == 4 {
                let out = rt.zeros::<f32>(1);
                tasks.push(
                    sum.submit(rt, target, &y, &out)
                        .map_err(|e| e.to_string())?,
                );
                let expected: f64 = want.iter().map(|&v| v as f64).sum();
                let scale: f64 = want.iter().map(|&v| v.abs() as f64).sum();
                sums.push((out, expected, scale));
            } else {
                let a = 0.5 - (i % 3) as f32 * 0.25;
                tasks.push(
                    saxpy
                        .submit(rt, target, a, &x, &y)
                        .map_err(|e| e.to_string())?,
                );
                for (y, &x) in want.iter_mut().zip(&xs) {
                    *y = a.mul_add(x, *y);
                }
            }
            done += 1;
        }
        for t in tasks {
            t.wait().map_err(|e| format!("thread {thread}: {e}"))?;
        }
        let got = rt.read(&y).map_err(|e| e.to_string())?;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if (g - w).abs() > 1e-5 * (1.0 + w.abs()) {
                return Err(format!(
                    "thread {thread} round {round}: y[{i}] = {g}, expected {w}"
                ));
            }
        }
        for (out, expected, scale) in sums {
            let g = rt.read(&out).map_err(|e| e.to_string())?[0] as f64;
            if (g - expected).abs() > 1e-5 * (scale + 1.0) {
                return Err(format!(
                    "thread {thread} round {round}: sum {g}, expected {expected}"
                ));
            }
        }
    }
    Ok(done)
}

#[test]
fn eight_threads_of_mixed_submissions_all_verify_and_memory_comes_back() {
    let rt = Runtime::builder().persist_model(false).build().unwrap();
    let gpus = common::gpus(&rt, "load with GPUs (the CPU part runs regardless)");
    // A first, short pass warms the devices and the allocator up, so the
    // baseline includes what stays allocated for good (pipelines, pools).
    worker(&rt, &gpus, 99).unwrap();
    rt.wait_all().unwrap();
    let baseline = rss();

    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (rt, gpus, tx) = (rt.clone(), gpus.clone(), tx.clone());
            s.spawn(move || {
                let r = worker(&rt, &gpus, t);
                let _ = tx.send((t, r));
            });
        }
        drop(tx);
        // No deadlock: every thread reports within the bound.
        let bound = Duration::from_secs(600);
        for _ in 0..THREADS {
            match rx.recv_timeout(bound.saturating_sub(start.elapsed())) {
                Ok((t, r)) => {
                    let done = r.unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(done, SUBMISSIONS, "thread {t}");
                }
                Err(_) => panic!("a thread did not finish within {bound:?}: deadlock?"),
            }
        }
    });
    rt.wait_all().unwrap();
    eprintln!(
        "load: {} submissions in {:.1} s; {}",
        THREADS * SUBMISSIONS,
        start.elapsed().as_secs_f64(),
        rt.stats()
    );

    // Every buffer was dropped: none is live, the pool holds at most its
    // cap, and the process is back near its baseline.
    let s = rt.stats();
    assert_eq!(s.live_buffers, 0, "{s}");
    assert!(s.pool_free_bytes <= 512 << 20, "the pool is bounded: {s}");
    let after = rss();
    assert!(
        after <= baseline + (128 << 20),
        "resident memory grew from {} MiB to {} MiB",
        baseline >> 20,
        after >> 20
    );
}
