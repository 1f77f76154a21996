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

/// What the dispatcher would estimate for `gpu` for a saxpy over `x` and
/// `y` (of `n` elements).
fn saxpy_estimate(
    rt: &Runtime,
    saxpy: &pel::kernels::Saxpy,
    (x, y): (&pel::Buffer<f32>, &pel::Buffer<f32>),
    gpu: Backend,
) -> pel::Estimate {
    let params = pel::kernels::saxpy::SaxpyParams {
        a: 1.0,
        n: x.len() as u32,
    };
    let d = rt.explain(saxpy.kernel(), &[x, y], &params).unwrap();
    d.estimates.into_iter().find(|e| e.backend == gpu).unwrap()
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
        // below starts from GPU-resident keys. The sort's plans (digit
        // widths) measured first: a measured sort runs alone, waiting
        // before and after, until the model has chosen one.
        for _ in 0..12 {
            sort.radix_sort(&rt, Target::On(gpu), &b).unwrap();
            let last = rt
                .decisions()
                .into_iter()
                .rev()
                .find(|d| d.kernel == "radix_sort");
            if last.is_some_and(|d| d.reason != pel::Reason::Calibrating) {
                break;
            }
        }
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
fn queued_calls_count_in_their_gpus_queue_until_their_batch_finishes() {
    let test = "queued_calls_count_in_their_gpus_queue_until_their_batch_finishes";
    let rt = fresh();
    let saxpy = pel::kernels::Saxpy::new().unwrap();
    for (gpu, g) in batching(&rt, test) {
        let n = 4096;
        let (x, y) = (rt.buffer(&random(n, 4)), rt.buffer(&random(n, 5)));
        let queue_on_gpu = || {
            let e = saxpy_estimate(&rt, &saxpy, (&x, &y), gpu);
            (e.exec_s, e.queue_s)
        };
        // Automatic calls, each waited for, until the model knows the GPU.
        for _ in 0..100 {
            if queue_on_gpu().0.is_some() {
                break;
            }
            saxpy.run(&rt, Target::Auto, 1.0, &x, &y).unwrap();
            rt.read(&y).unwrap();
        }
        assert!(
            queue_on_gpu().0.is_some(),
            "{gpu}: the model never learnt it"
        );
        assert_eq!(queue_on_gpu().1, 0.0, "{gpu}: nothing queued yet");
        rt.reset_stats();
        // A queued call counts in the GPU's queue: its end is seen at the
        // next call's record at the soonest.
        saxpy.run(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
        let (exec, queued) = queue_on_gpu();
        assert!(
            queued > 0.0,
            "{gpu}: a queued call is on the queue ({exec:?})"
        );
        for _ in 0..39 {
            saxpy.run(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
        }
        assert_eq!(rt.stats().host_waits[g], 0, "{gpu}: {}", rt.stats());
        // The read waits for them all; their ends are then counted.
        rt.read(&y).unwrap();
        let (_, after) = queue_on_gpu();
        assert_eq!(after, 0.0, "{gpu}: every call left the queue");
    }
}

#[test]
fn queued_calls_teach_the_model_their_device_times() {
    let test = "queued_calls_teach_the_model_their_device_times";
    let rt = fresh();
    let saxpy = pel::kernels::Saxpy::new().unwrap();
    for (gpu, g) in batching(&rt, test) {
        if !rt.device(gpu).unwrap().timestamps {
            eprintln!("SKIPPED {test} on {gpu}: no timestamp queries to time queued launches");
            continue;
        }
        let n = 8191;
        let (x, y) = (rt.buffer(&random(n, 7)), rt.buffer(&random(n, 8)));
        let samples = || {
            let e = saxpy_estimate(&rt, &saxpy, (&x, &y), gpu);
            (e.samples, e.exec_s)
        };
        assert_eq!(samples().0, 0, "{gpu}: a fresh model");
        rt.reset_stats();
        // Forced calls are queued, never waited for one by one...
        for _ in 0..12 {
            saxpy.submit(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
        }
        rt.read(&y).unwrap();
        assert_eq!(rt.stats().host_waits[g], 1, "{gpu}: {}", rt.stats());
        // ...yet each (but the first, a warm-up) is a sample of the model:
        // its device time and the GPU's launch latency.
        let (n_samples, exec) = samples();
        assert_eq!(n_samples, 11, "{gpu}: the queued calls' samples");
        assert!(exec.is_some_and(|s| s > 0.0), "{gpu}: {exec:?}");
    }
}

#[test]
fn flush_starts_queued_launches_and_equal_calls_share_their_params() {
    let test = "flush_starts_queued_launches_and_equal_calls_share_their_params";
    let rt = fresh();
    let saxpy = pel::kernels::Saxpy::new().unwrap();
    for (gpu, g) in batching(&rt, test) {
        let n = 4099;
        let (xs, ys) = (random(n, 3), random(n, 4));
        let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
        saxpy.run(&rt, Target::On(gpu), 0.0, &x, &y).unwrap();
        rt.reset_stats();
        // Runs of equal calls (one params slot, bound once in the batch's
        // shared pass), broken by other params now and then.
        let mut want: Vec<f64> = ys.iter().map(|&v| v as f64).collect();
        let steps = 40;
        for step in 0..steps {
            let a = if step % 13 == 12 { -0.25 } else { 0.5 };
            saxpy.run(&rt, Target::On(gpu), a, &x, &y).unwrap();
            for (w, &xv) in want.iter_mut().zip(&xs) {
                *w = (a as f64).mul_add(xv as f64, *w) as f32 as f64;
            }
        }
        // Whatever was still queued starts now; then nothing is left.
        let started = rt.flush();
        assert!(started <= steps, "{gpu}: {started} launches started");
        assert_eq!(rt.flush(), 0, "{gpu}: nothing left to start");
        assert_eq!(rt.stats().host_waits[g], 0, "{gpu}: flush never waits");
        let got = rt.read(&y).unwrap();
        assert_eq!(
            rt.stats().host_waits[g],
            1,
            "{gpu}: one wait, for the bytes"
        );
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let tol = steps as f64 * 2.0 * f32::EPSILON as f64 * (1.0 + w.abs());
            assert!((g as f64 - w).abs() <= tol, "{gpu}: [{i}] {g} vs {w}");
        }
    }
}

/// `wgpu_device` hands out each GPU's own wgpu device and queue: work a
/// program records there runs beside pel's, and pel's buffers stay right.
#[test]
fn a_program_runs_wgpu_work_of_its_own_on_pels_device() {
    let rt = common::rt();
    assert!(rt.wgpu_device(Backend::Cpu).unwrap().is_none());
    assert!(rt.wgpu_device(Backend::Gpu(99)).is_err());
    for g in common::gpus(rt, "a_program_runs_wgpu_work_of_its_own_on_pels_device") {
        let (device, queue) = rt.wgpu_device(g).unwrap().expect("a wgpu GPU");
        let saxpy = pel::kernels::Saxpy::new().unwrap();
        let x = rt.buffer(&[1.0f32; 100]);
        let y = rt.buffer(&[2.0f32; 100]);
        saxpy.run(rt, Target::On(g), 3.0, &x, &y).unwrap();
        // The program's own buffer, written and read back on pel's queue.
        let data: Vec<u8> = (0..=255).collect();
        let mine = device.create_buffer(&pel::wgpu::BufferDescriptor {
            label: None,
            size: 256,
            usage: pel::wgpu::BufferUsages::MAP_READ | pel::wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(&mine, 0, &data);
        queue.submit([]);
        let (tx, rx) = std::sync::mpsc::channel();
        mine.map_async(pel::wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        device
            .poll(pel::wgpu::PollType::wait_indefinitely())
            .unwrap();
        rx.recv().unwrap().unwrap();
        assert_eq!(mine.get_mapped_range(..).unwrap().to_vec(), data, "{g}");
        mine.unmap();
        assert_eq!(rt.read(&y).unwrap(), vec![5.0f32; 100], "{g}");
    }
}

/// A read behind queued launches waits for them: its time is not the
/// bus's, and the bus model does not learn from it. Reads of a quiet
/// device still refine it.
#[test]
fn reads_behind_queued_work_do_not_teach_the_bus_model() {
    let rt = fresh();
    for (g, _) in batching(&rt, "reads behind queued work and the bus model") {
        let saxpy = pel::kernels::Saxpy::new().unwrap();
        let n = 1 << 20; // 4 MiB: past the size the bus model learns from
        let (x, y) = (rt.buffer(&random(n, 1)), rt.buffer(&random(n, 2)));
        saxpy.run(&rt, Target::On(g), 0.5, &x, &y).unwrap();
        rt.sync().unwrap();
        let before = rt.bus(g).expect("a GPU's bus is measured at start");
        for _ in 0..4 {
            for _ in 0..16 {
                saxpy.run(&rt, Target::On(g), 0.5, &x, &y).unwrap();
            }
            rt.read(&y).unwrap();
        }
        assert_eq!(rt.bus(g).unwrap().d2h, before.d2h, "on {g}");
        // Quiet reads: a kernel waited for, then the read of its output.
        for _ in 0..4 {
            saxpy.run(&rt, Target::On(g), 0.5, &x, &y).unwrap();
            rt.sync().unwrap();
            rt.read(&y).unwrap();
        }
        assert_ne!(
            rt.bus(g).unwrap().d2h,
            before.d2h,
            "on {g}: quiet reads refine it"
        );
    }
}
