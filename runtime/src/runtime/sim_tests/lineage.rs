//! Lineage: what only a lost device held is rebuilt by replaying the calls
//! that wrote it, on the CPU; the counters say so; a call lost with its
//! device runs again elsewhere, once.

use std::sync::OnceLock;

use super::*;

const N: usize = 64;

/// `1 + k·x` for `x = 0..N`: `y = 1`s after `k` adds of `x`.
fn after_adds(k: f32) -> Vec<f32> {
    iota(N).iter().map(|v| 1.0 + k * v).collect()
}

/// Two devices, `x = 0..N`, `y = 1`s, and `k` adds of `x` into `y` on gpu0.
fn written_on_gpu0(k: usize) -> (Runtime, SimDevice, SimDevice, Buffer<f32>, Buffer<f32>) {
    let (a, b) = (sim("a", US), sim("b", US));
    let rt = runtime(&[&a, &b]);
    let (x, y) = (rt.buffer(&iota(N)), rt.buffer(&[1.0f32; N]));
    let add = add();
    for _ in 0..k {
        rt.run_on(Backend::Gpu(0), &add, &[&x, &y], &()).unwrap();
    }
    (rt, a, b, x, y)
}

#[test]
fn a_chain_of_device_writes_is_replayed_after_a_loss() {
    let (rt, a, _, _, y) = written_on_gpu0(3);
    assert_eq!(describe(&rt, &y), "gpu0");
    a.lose("pulled out");
    assert_eq!(rt.gpu_backends(), vec![Backend::Gpu(1)]);
    assert_eq!(rt.read(&y).unwrap(), after_adds(3.0));
    let s = rt.stats();
    assert_eq!((s.devices_lost, s.replayed_tasks), (1, 3), "{s}");
    assert_eq!(describe(&rt, &y), "host");
    // The device ran three kernels; the replay ran on the CPU.
    assert_eq!(a.kernels_run(), 3);
}

#[test]
fn data_a_lost_device_held_reaches_another_device() {
    let (rt, a, b, x, y) = written_on_gpu0(2);
    a.lose("reset");
    let info = rt.run_on(Backend::Gpu(1), &add(), &[&x, &y], &()).unwrap();
    assert_eq!(info.backend, Backend::Gpu(1));
    assert_eq!(describe(&rt, &y), "gpu1");
    assert_eq!(rt.read(&y).unwrap(), after_adds(3.0));
    assert_eq!(b.kernels_run(), 1);
    assert_eq!(rt.stats().replayed_tasks, 2);
}

#[test]
fn a_loss_where_the_host_holds_the_current_version_replays_nothing() {
    let (rt, a, _, x, y) = written_on_gpu0(2);
    assert_eq!(rt.read(&y).unwrap(), after_adds(2.0));
    a.lose("gone");
    let info = rt.run(&add(), &[&x, &y], &()).unwrap();
    assert_ne!(info.backend, Backend::Gpu(0));
    assert_eq!(rt.read(&y).unwrap(), after_adds(3.0));
    let s = rt.stats();
    assert_eq!((s.replayed_tasks, s.recoveries), (0, 0), "{s}");
}

#[test]
fn a_replay_rebuilds_an_input_whose_handles_were_dropped() {
    let (a, b) = (sim("a", US), sim("b", US));
    let rt = runtime(&[&a, &b]);
    let (x, y) = (rt.buffer(&iota(N)), rt.buffer(&[1.0f32; N]));
    let t = rt.zeros::<f32>(N);
    let on0 = |k: &Kernel, src: &Buffer<f32>, dst: &Buffer<f32>| {
        rt.run_on(Backend::Gpu(0), k, &[src, dst], &()).unwrap();
    };
    on0(&copy(), &x, &t); // t = x, only on gpu0
    on0(&add(), &t, &y); // y = 1 + x, read t's first version
    on0(&add(), &x, &t); // t = 2x: its first version lives on in y's record
    drop(t);
    a.lose("gone");
    assert_eq!(rt.read(&y).unwrap(), after_adds(1.0));
    // t's first version (a copy) was replayed, then y's add.
    assert_eq!(rt.stats().replayed_tasks, 2);
}

#[test]
fn a_long_lineage_is_cut_short_by_a_checkpoint_on_the_host() {
    let a = sim("a", US);
    let rt = runtime(&[&a]);
    let c = rt.zeros::<u32>(N);
    let inc = inc();
    for _ in 0..70 {
        rt.run_on(Backend::Gpu(0), &inc, &[&c], &()).unwrap();
    }
    // The 65th write brought the buffer home: 64 records is the most kept.
    assert_eq!(rt.stats().downloads, 1);
    a.lose("gone");
    assert_eq!(rt.read(&c).unwrap(), vec![70; N]);
    assert_eq!(rt.stats().replayed_tasks, 5);
}

#[test]
fn a_device_lost_during_a_call_runs_the_call_again_elsewhere_once() {
    // The device is lost as its second kernel finishes: that kernel's
    // result is lost with it.
    let me: Arc<OnceLock<SimDevice>> = Arc::new(OnceLock::new());
    let runs = Arc::new(Mutex::new(0));
    let dev = {
        let (me, runs) = (Arc::clone(&me), Arc::clone(&runs));
        SimDevice::new("flaky").cost(move |op| {
            if let SimOp::Kernel { .. } = op {
                let mut n = runs.lock().unwrap();
                *n += 1;
                if *n == 2 {
                    me.get().unwrap().lose("fell off the bus mid-call");
                }
            }
            US
        })
    };
    me.set(dev.clone()).unwrap();
    let rt = runtime(&[&dev]);
    let (x, y) = (rt.buffer(&iota(N)), rt.buffer(&[1.0f32; N]));
    let add = add();
    rt.run_on(Backend::Gpu(0), &add, &[&x, &y], &()).unwrap();
    let info = rt.run_on(Backend::Gpu(0), &add, &[&x, &y], &()).unwrap();
    assert_eq!(
        (info.backend, info.reason),
        (Backend::Cpu, Reason::Recovered)
    );
    // Exactly two adds: the first replayed, the second run again on the CPU.
    assert_eq!(rt.read(&y).unwrap(), after_adds(2.0));
    let s = rt.stats();
    assert_eq!((s.recoveries, s.devices_lost, s.replayed_tasks), (1, 1, 1));
    assert_eq!(rt.gpu_backends(), vec![]);
}

#[test]
fn a_call_forced_onto_a_lost_device_runs_elsewhere() {
    let (a, b) = (sim("a", US), sim("b", US));
    let rt = runtime(&[&a, &b]);
    let (x, y) = (rt.buffer(&iota(N)), rt.buffer(&[1.0f32; N]));
    a.lose("gone");
    let info = rt.run_on(Backend::Gpu(0), &add(), &[&x, &y], &()).unwrap();
    assert_ne!(info.backend, Backend::Gpu(0));
    assert_eq!(info.reason, Reason::Recovered);
    assert_eq!(rt.read(&y).unwrap(), after_adds(1.0));
    assert_eq!((a.kernels_run(), rt.stats().recoveries), (0, 1));
    match rt.run_on(Backend::Gpu(2), &add(), &[&x, &y], &()) {
        Err(Error::NoSuchBackend { backend, .. }) => assert_eq!(backend, Backend::Gpu(2)),
        other => panic!("expected NoSuchBackend, got {other:?}"),
    }
}

#[test]
fn a_kernel_without_a_cpu_implementation_is_refused_by_a_simulated_device() {
    let a = sim("a", US);
    let rt = runtime(&[&a]);
    let (x, y) = (rt.buffer(&iota(N)), rt.buffer(&[1.0f32; N]));
    let k = gpu_only();
    let no_backend = |r: Result<RunInfo>| match r {
        Err(Error::NoBackend { kernel, reason }) => {
            assert_eq!(kernel, "gpu-only");
            assert!(reason.contains("CPU implementation"), "{reason}");
        }
        other => panic!("expected NoBackend, got {other:?}"),
    };
    no_backend(rt.run_on(Backend::Gpu(0), &k, &[&x, &y], &()));
    no_backend(rt.run(&k, &[&x, &y], &()));
    assert!(matches!(
        rt.run_on(Backend::Cpu, &k, &[&x, &y], &()),
        Err(Error::NoCpuImplementation { .. })
    ));
    // Nothing ran and nothing changed.
    assert_eq!(a.kernels_run(), 0);
    assert_eq!(rt.read(&y).unwrap(), vec![1.0; N]);
    // A task fails the same way, and what it was to write has no contents.
    no_backend(rt.submit(&k, &[&x, &y], &()).and_then(|t| t.wait()));
    assert!(matches!(rt.read(&y), Err(Error::WriterFailed { .. })));
}
