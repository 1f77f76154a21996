//! Faults, injected deterministically on real adapters: a GPU lost in the
//! middle of a chain, GPU allocations failing, a memory budget smaller than
//! the working set, a CPU kernel panicking halfway, a device turning slow.
//! After each, the results are checked against a serial reference.

mod common;

use common::random;

use pel::kernels::{Saxpy, Sum};
use pel::{Backend, Error, Inject, Reason, Runtime, Target};

/// `y = a·x + y` in f32, as both backends compute it (to a few ulp).
fn saxpy_ref(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * (1.0 + w.abs());
        assert!((g - w).abs() <= tol, "{what}: [{i}] got {g}, expected {w}");
    }
}

fn runtime(inject: &str) -> Runtime {
    Runtime::builder()
        .persist_model(false)
        .inject(inject.parse().unwrap())
        .build()
        .unwrap()
}

fn faults(spec: &str) -> Inject {
    spec.parse().unwrap()
}

#[test]
fn a_lost_gpu_is_replaced_and_its_data_rebuilt_from_lineage() {
    let rt = runtime("");
    let Some((gpu, saxpy)) = common::gpu_and_saxpy(
        &rt,
        "a_lost_gpu_is_replaced_and_its_data_rebuilt_from_lineage",
    ) else {
        return;
    };
    let n = 100_003;
    let (xs, ys) = (random(n, 1), random(n, 2));
    let (x, y, t) = (rt.buffer(&xs), rt.buffer(&ys), rt.zeros::<f32>(n));
    // The GPU is lost when it is about to run the fourth kernel from now.
    rt.set_faults(faults("gpu-lost@3")).unwrap();
    let on_gpu = Target::On(gpu);
    saxpy.run(&rt, on_gpu, 2.0, &x, &y).unwrap(); // y1 = 2x + y0
    saxpy.run(&rt, on_gpu, -0.5, &y, &t).unwrap(); // t = -0.5·y1
    saxpy.run(&rt, on_gpu, 3.0, &t, &y).unwrap(); // y2 = 3t + y1
    assert_eq!(rt.validity(&y).unwrap().describe(), gpu.to_string());
    drop(t); // y2 was made from t: its data must outlive the handle
    let info = saxpy.run(&rt, on_gpu, 1.0, &x, &y).unwrap(); // y3 = x + y2
    assert_eq!(info.backend, Backend::Cpu, "ran elsewhere");
    assert_eq!(info.reason, Reason::Recovered);

    let mut want = ys.clone();
    let mut tw = vec![0.0f32; n];
    saxpy_ref(2.0, &xs, &mut want);
    saxpy_ref(-0.5, &want, &mut tw);
    saxpy_ref(3.0, &tw, &mut want);
    saxpy_ref(1.0, &xs, &mut want);
    assert_close(&rt.read(&y).unwrap(), &want, "y after the loss");

    let s = rt.stats();
    assert_eq!(s.devices_lost, 1, "{s}");
    assert_eq!(s.replayed_tasks, 3, "y1, t and y2 were replayed: {s}");
    assert!(s.recoveries >= 1, "{s}");
    assert!(!rt.backends().contains(&gpu), "a lost GPU is not offered");
    // Forced there again, a call runs elsewhere; automatic placement too.
    let info = saxpy.run(&rt, on_gpu, 1.0, &x, &y).unwrap();
    assert_ne!(info.backend, gpu);
    saxpy_ref(1.0, &xs, &mut want);
    let info = saxpy.run(&rt, Target::Auto, 1.0, &x, &y).unwrap();
    assert_ne!(info.backend, gpu);
    saxpy_ref(1.0, &xs, &mut want);
    assert_close(&rt.read(&y).unwrap(), &want, "y after more calls");
    drop((x, y));
    assert_eq!(rt.stats().live_buffers, 0);
}

#[test]
fn submitted_tasks_survive_a_lost_gpu() {
    let rt = runtime("");
    let Some((gpu, saxpy)) = common::gpu_and_saxpy(&rt, "submitted_tasks_survive_a_lost_gpu")
    else {
        return;
    };
    let n = 65_537;
    let xs = random(n, 3);
    let x = rt.buffer(&xs);
    let chains: Vec<(Vec<f32>, pel::Buffer<f32>)> = (0..4)
        .map(|c| {
            let ys = random(n, 10 + c);
            let b = rt.buffer(&ys);
            (ys, b)
        })
        .collect();
    rt.set_faults(faults("gpu-lost@9")).unwrap();
    let mut tasks = Vec::new();
    for step in 0..6 {
        for (_, y) in &chains {
            let a = 0.25 + step as f32;
            tasks.push(saxpy.submit(&rt, Target::On(gpu), a, &x, y).unwrap());
        }
    }
    for t in tasks {
        t.wait().unwrap();
    }
    rt.wait_all().unwrap();
    for (c, (ys, y)) in chains.iter().enumerate() {
        let mut want = ys.clone();
        for step in 0..6 {
            saxpy_ref(0.25 + step as f32, &xs, &mut want);
        }
        assert_close(&rt.read(y).unwrap(), &want, &format!("chain {c}"));
    }
    let s = rt.stats();
    assert_eq!(s.devices_lost, 1, "{s}");
    assert!(s.recoveries >= 1, "{s}");
}

#[test]
fn a_gpu_lost_with_a_batch_in_flight_loses_no_work() {
    let test = "a_gpu_lost_with_a_batch_in_flight_loses_no_work";
    let rt = runtime("");
    let Some((gpu, saxpy)) = common::gpu_and_saxpy(&rt, test) else {
        return;
    };
    if !rt.device(gpu).unwrap().batches {
        eprintln!("skipped {test}: {gpu} waits for every launch (no batches to lose)");
        return;
    }
    let Backend::Gpu(g) = gpu else { unreachable!() };
    let n = 4099;
    let (xs, ys) = (random(n, 5), random(n, 6));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    let on_gpu = Target::On(gpu);
    // The pipeline compiled and both vectors on the GPU (a = 0 leaves y).
    saxpy.run(&rt, on_gpu, 0.0, &x, &y).unwrap();
    rt.wait_all().unwrap();
    rt.reset_stats();
    const QUEUED: usize = 12;
    rt.set_faults(faults(&format!("gpu-lost@{QUEUED}")))
        .unwrap();
    let mut want = ys.clone();
    let mut tasks = Vec::new();
    for step in 0..QUEUED {
        let a = 0.5 + step as f32;
        tasks.push(saxpy.submit(&rt, on_gpu, a, &x, &y).unwrap());
        saxpy_ref(a, &xs, &mut want);
    }
    for t in &tasks {
        t.wait().unwrap();
    }
    // Every task has finished for the graph, and the host has not waited
    // for the GPU once: the twelve launches are queued there. Those not
    // yet submitted are now: all twelve are in flight.
    let started = rt.flush();
    assert!(started <= QUEUED, "{started} launches started");
    assert_eq!(rt.flush(), 0, "nothing left to start");
    let s = rt.stats();
    assert_eq!(s.host_waits[g], 0, "{s}");
    assert_eq!(s.gpu_runs, QUEUED as u64, "{s}");
    // The next launch finds the GPU lost: it runs elsewhere, and the
    // twelve are rebuilt from their lineage on the way.
    let info = saxpy.run(&rt, on_gpu, 2.0, &x, &y).unwrap();
    saxpy_ref(2.0, &xs, &mut want);
    assert_ne!(info.backend, gpu);
    assert_close(&rt.read(&y).unwrap(), &want, "y after the loss");
    let s = rt.stats();
    assert_eq!(s.devices_lost, 1, "{s}");
    // The twelve, and the warm-up call, whose y also lived on the GPU only.
    assert_eq!(s.replayed_tasks, QUEUED as u64 + 1, "{s}");
}

#[test]
fn gpu_allocations_failing_send_the_work_to_the_cpu() {
    // Without a GPU the fault could never fire, and the runtime refuses it.
    if common::gpu(
        common::rt(),
        "gpu_allocations_failing_send_the_work_to_the_cpu",
    )
    .is_none()
    {
        return;
    }
    let rt = runtime("gpu-oom");
    let gpu = rt.gpu_backends()[0];
    let saxpy = Saxpy::new().unwrap();
    let n = 1 << 18;
    let (xs, ys) = (random(n, 4), random(n, 5));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    let mut want = ys.clone();
    let info = saxpy.run(&rt, Target::On(gpu), 2.0, &x, &y).unwrap();
    saxpy_ref(2.0, &xs, &mut want);
    assert_eq!(
        (info.backend, info.reason),
        (Backend::Cpu, Reason::Recovered)
    );
    for _ in 0..3 {
        saxpy.run(&rt, Target::Auto, -1.0, &x, &y).unwrap();
        saxpy_ref(-1.0, &xs, &mut want);
    }
    assert_close(&rt.read(&y).unwrap(), &want, "y");
    let s = rt.stats();
    assert_eq!(s.gpu_runs, 0, "{s}");
    assert!(s.recoveries >= 1, "{s}");
}

#[test]
fn a_memory_budget_evicts_and_refuses_only_what_cannot_fit() {
    let rt = Runtime::builder()
        .persist_model(false)
        .gpu_memory_budget(Some(16 << 20))
        .build()
        .unwrap();
    let Some((gpu, saxpy)) = common::gpu_and_saxpy(
        &rt,
        "a_memory_budget_evicts_and_refuses_only_what_cannot_fit",
    ) else {
        return;
    };
    // Eight pairs of 2 MiB buffers: 32 MiB of working set for 16 MiB, each
    // call needing 4 MiB.
    let n = 1 << 19;
    let xs: Vec<Vec<f32>> = (0..8).map(|i| random(n, 20 + i)).collect();
    let ys: Vec<Vec<f32>> = (0..8).map(|i| random(n, 40 + i)).collect();
    let x: Vec<_> = xs.iter().map(|v| rt.buffer(v)).collect();
    let y: Vec<_> = ys.iter().map(|v| rt.buffer(v)).collect();
    let mut want = ys.clone();
    for round in 0..3 {
        for i in 0..8 {
            let a = 0.5 + round as f32;
            let info = saxpy.run(&rt, Target::On(gpu), a, &x[i], &y[i]).unwrap();
            assert_eq!(info.backend, gpu, "each call fits the budget");
            saxpy_ref(a, &xs[i], &mut want[i]);
        }
    }
    for i in 0..8 {
        assert_close(&rt.read(&y[i]).unwrap(), &want[i], &format!("y{i}"));
    }
    let s = rt.stats();
    assert!(s.evictions > 0, "{s}");

    // One call needing 24 MiB: refused on the GPU, run on the CPU when
    // placement is automatic.
    let big = 3 << 20;
    let (bx, by) = (random(big, 60), random(big, 61));
    let (x, y) = (rt.buffer(&bx), rt.buffer(&by));
    let err = saxpy.run(&rt, Target::On(gpu), 2.0, &x, &y).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("PEL_GPU_MEMORY_BUDGET") && msg.contains("saxpy"),
        "{msg}"
    );
    assert_eq!(rt.read(&y).unwrap(), by, "a refused call changes nothing");
    let info = saxpy.run(&rt, Target::Auto, 2.0, &x, &y).unwrap();
    assert_eq!(info.backend, Backend::Cpu);
    let mut want = by.clone();
    saxpy_ref(2.0, &bx, &mut want);
    assert_close(&rt.read(&y).unwrap(), &want, "the big call");
}

#[test]
fn a_panicking_cpu_kernel_leaves_no_half_written_buffer_valid() {
    let rt = runtime("cpu-panic@saxpy");
    let saxpy = Saxpy::new().unwrap();
    let n = 4099;
    let (xs, ys) = (random(n, 7), random(n, 8));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    let cpu = Target::On(Backend::Cpu);
    let err = saxpy.run(&rt, cpu, 2.0, &x, &y).unwrap_err();
    assert!(
        matches!(&err, Error::KernelPanicked { kernel, .. } if kernel == "saxpy"),
        "{err}"
    );
    // Its only copy was half-written: reading it is the panic, not garbage.
    let read = rt.read(&y).unwrap_err();
    assert!(matches!(read, Error::KernelPanicked { .. }), "{read}");
    // What it read is untouched, and the runtime goes on.
    assert_eq!(rt.read(&x).unwrap(), xs);
    let out = rt.zeros::<f32>(1);
    Sum::new().unwrap().run(&rt, cpu, &x, &out).unwrap();
    let total: f64 = xs.iter().map(|&v| v as f64).sum();
    assert!((rt.read(&out).unwrap()[0] as f64 - total).abs() < 1e-2);
    // Written afresh, the buffer is good again.
    rt.write(&y, &ys).unwrap();
    assert_eq!(rt.read(&y).unwrap(), ys);

    let Some(gpu) = common::gpu(
        &rt,
        "a_panicking_cpu_kernel_leaves_no_half_written_buffer_valid",
    ) else {
        return;
    };
    // With a GPU copy of the same version, that copy stays valid.
    let z = rt.zeros::<f32>(n);
    saxpy.run(&rt, Target::On(gpu), 1.0, &y, &z).unwrap(); // uploads y
    assert_eq!(rt.validity(&y).unwrap().describe(), format!("host+{gpu}"));
    assert!(saxpy.run(&rt, cpu, 2.0, &x, &y).is_err());
    assert_eq!(rt.validity(&y).unwrap().describe(), gpu.to_string());
    assert_eq!(rt.read(&y).unwrap(), ys, "the GPU's copy is the truth");
    // And the GPU runs saxpy as ever.
    saxpy.run(&rt, Target::On(gpu), 2.0, &x, &y).unwrap();
    let mut want = ys.clone();
    saxpy_ref(2.0, &xs, &mut want);
    assert_close(&rt.read(&y).unwrap(), &want, "y on the GPU");
}

#[test]
fn a_device_that_turns_slow_loses_its_work() {
    let rt = Runtime::builder()
        .persist_model(false)
        .calibration_samples(3)
        .build()
        .unwrap();
    let Some((_, saxpy)) = common::gpu_and_saxpy(&rt, "a_device_that_turns_slow_loses_its_work")
    else {
        return;
    };
    let n = 1 << 20;
    let (xs, ys) = (random(n, 9), random(n, 10));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    let mut want = ys.clone();
    let mut run = |rt: &Runtime| {
        // Fresh inputs on the host each time, as new data would be.
        rt.write(&y, &want).unwrap();
        let info = saxpy.run(rt, Target::Auto, 0.5, &x, &y).unwrap();
        saxpy_ref(0.5, &xs, &mut want);
        assert_close(&rt.read(&y).unwrap(), &want, "y");
        info.backend
    };
    // Calibrated, saxpy on host data runs on the CPU here (and on any
    // machine where the bus costs more than the CPU's pass).
    let mut before = Backend::Cpu;
    for _ in 0..30 {
        before = run(&rt);
    }
    // Now the device it chose runs 200× slower.
    rt.set_faults(faults(&format!("slow@{before}:200")))
        .unwrap();
    let mut after = Vec::new();
    for _ in 0..40 {
        after.push(run(&rt));
    }
    let last: Vec<Backend> = after[after.len() - 5..].to_vec();
    assert!(
        last.iter().all(|b| *b != before),
        "still on {before} after it turned slow: {after:?}"
    );
}

#[test]
fn an_input_overwritten_on_the_host_is_kept_for_replay() {
    let rt = runtime("");
    let Some((gpu, saxpy)) =
        common::gpu_and_saxpy(&rt, "an_input_overwritten_on_the_host_is_kept_for_replay")
    else {
        return;
    };
    let n = 10_007;
    let (xs, ys, x2) = (random(n, 11), random(n, 12), random(n, 13));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    rt.set_faults(faults("gpu-lost@1")).unwrap();
    saxpy.run(&rt, Target::On(gpu), 2.0, &x, &y).unwrap(); // y only on the GPU
    // x changes on the host: the version y was made from is kept aside.
    rt.write(&x, &x2).unwrap();
    // The next GPU kernel finds the device lost; y is rebuilt from the old x.
    let info = saxpy.run(&rt, Target::On(gpu), 1.0, &x, &y).unwrap();
    assert_eq!(info.reason, Reason::Recovered);
    let mut want = ys.clone();
    saxpy_ref(2.0, &xs, &mut want);
    saxpy_ref(1.0, &x2, &mut want);
    assert_close(&rt.read(&y).unwrap(), &want, "y");
    assert_eq!(rt.read(&x).unwrap(), x2);
    assert_eq!(rt.stats().replayed_tasks, 1);
}

#[test]
fn a_fault_on_a_gpu_the_runtime_lacks_is_refused() {
    // No machine this runs on has eight GPUs: the fault could never fire.
    let Err(err) = Runtime::builder()
        .persist_model(false)
        .inject(faults("slow@gpu7:2"))
        .build()
    else {
        panic!("slow@gpu7 accepted");
    };
    let gpus = common::rt().gpu_count();
    assert!(gpus < 8, "{gpus} GPUs: pick a higher index");
    let have = match gpus {
        0 => "this runtime has no GPU".to_owned(),
        1 => "this runtime has 1 GPU (gpu0)".to_owned(),
        n => format!("this runtime has {n} GPUs (gpu0, "),
    };
    match &err {
        Error::BadInjection { item, message } => {
            assert_eq!(item, "slow@gpu7:2");
            assert!(message.contains(&have), "{message}");
        }
        other => panic!("expected BadInjection, got {other:?}"),
    }
    // A runtime that exists refuses it too, and keeps its faults.
    let rt = runtime("");
    let e = rt.set_faults(faults("slow@gpu7:2")).unwrap_err();
    assert!(e.to_string().contains("slow@gpu7:2"), "{e}");
    assert!(!rt.faults().any());
    // Without a GPU, GPU faults are refused outright.
    let Err(cpu_only) = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .inject(faults("gpu-lost@2"))
        .build()
    else {
        panic!("gpu-lost@2 accepted without a GPU");
    };
    assert!(
        cpu_only.to_string().contains("this runtime has no GPU"),
        "{cpu_only}"
    );
}

#[test]
fn a_fault_given_twice_or_an_empty_item_is_refused() {
    for spec in [
        "gpu-lost@1,,gpu-oom",
        "slow@cpu:2,",
        "slow@gpu0:2,slow@gpu0:3",
    ] {
        let e = spec.parse::<Inject>().unwrap_err();
        assert!(matches!(e, Error::BadInjection { .. }), "{spec}: {e:?}");
    }
}
