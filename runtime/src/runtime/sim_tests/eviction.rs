//! Eviction: a device whose memory holds two buffers frees the copies a
//! call does not use, least recently used first, writing back those that
//! were the only valid one; results stay right.

use super::*;

const N: usize = 256;
const BYTES: u64 = (N * 4) as u64;

/// A device with room for `buffers` buffers of `N` floats, and a runtime
/// on it alone.
fn small(buffers: u64) -> (Runtime, SimDevice) {
    let dev = sim("small", US).memory(buffers * BYTES);
    (runtime(&[&dev]), dev)
}

/// `(x, y)` with `x = k`s and `y = 0..N`.
fn pair(rt: &Runtime, k: f32) -> (Buffer<f32>, Buffer<f32>) {
    (rt.buffer(&[k; N]), rt.buffer(&iota(N)))
}

/// `0..N` plus `k`.
fn plus(k: f32) -> Vec<f32> {
    iota(N).iter().map(|v| v + k).collect()
}

fn on0(rt: &Runtime, x: &Buffer<f32>, y: &Buffer<f32>) {
    add_on(rt, Backend::Gpu(0), x, y);
}

#[test]
fn a_second_call_evicts_the_first_and_writes_back_its_only_copy() {
    let (rt, dev) = small(2);
    let ((x1, y1), (x2, y2)) = (pair(&rt, 1.0), pair(&rt, 2.0));
    on0(&rt, &x1, &y1);
    assert_eq!(describe(&rt, &y1), "gpu0");
    on0(&rt, &x2, &y2);
    let s = rt.stats();
    // Both of the first call's copies were freed; only y1 had to come home.
    assert_eq!((s.evictions, s.downloads, s.download_bytes), (2, 1, BYTES));
    assert_eq!(describe(&rt, &x1), "host");
    assert_eq!(describe(&rt, &y1), "host");
    assert_eq!(describe(&rt, &y2), "gpu0");
    assert_eq!(dev.memory_used(), 2 * BYTES);
    assert_eq!(rt.read(&y1).unwrap(), plus(1.0));
    assert_eq!(rt.read(&y2).unwrap(), plus(2.0));
}

#[test]
fn evicted_buffers_come_back_when_used_again() {
    let (rt, dev) = small(2);
    let ((x1, y1), (x2, y2)) = (pair(&rt, 1.0), pair(&rt, 2.0));
    for _ in 0..3 {
        on0(&rt, &x1, &y1);
        on0(&rt, &x2, &y2);
    }
    let s = rt.stats();
    assert_eq!(s.evictions, 10, "every call but the first evicts two: {s}");
    assert_eq!(s.uploads, 12, "{s}");
    assert!(dev.memory_used() <= 2 * BYTES);
    assert_eq!(rt.read(&y1).unwrap(), plus(3.0));
    assert_eq!(rt.read(&y2).unwrap(), plus(6.0));
}

#[test]
fn a_calls_own_arguments_are_never_evicted_for_it() {
    let (rt, _) = small(2);
    let ((x1, y1), (x2, _)) = (pair(&rt, 1.0), pair(&rt, 2.0));
    on0(&rt, &x1, &y1);
    // y1 is there already; x2 needs room, which x1 gives up (no write-back:
    // the host holds x1 too).
    on0(&rt, &x2, &y1);
    assert_eq!(describe(&rt, &y1), "gpu0");
    assert_eq!(describe(&rt, &x1), "host");
    let s = rt.stats();
    assert_eq!((s.evictions, s.downloads), (1, 0), "{s}");
    assert_eq!(rt.read(&y1).unwrap(), plus(3.0));
}

#[test]
fn a_call_that_cannot_fit_is_refused_there_and_placed_elsewhere() {
    let (rt, dev) = small(1);
    let (x, y) = pair(&rt, 1.0);
    match rt.run_on(Backend::Gpu(0), &add(), &[&x, &y], &()) {
        Err(Error::OutOfMemory { device, .. }) => assert!(device.contains("gpu0"), "{device}"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    let d = rt.explain(&add(), &[&x, &y], &()).unwrap();
    assert_eq!(d.estimates.len(), 1, "{d}");
    let info = rt.run(&add(), &[&x, &y], &()).unwrap();
    assert_eq!(
        (info.backend, info.reason),
        (Backend::Cpu, Reason::OnlyBackend)
    );
    assert_eq!(rt.read(&y).unwrap(), plus(1.0));
    assert_eq!((dev.kernels_run(), dev.memory_used()), (0, 0));
}

#[test]
fn a_smaller_memory_applies_to_the_next_allocation() {
    let dev = sim("shrinking", US);
    let rt = runtime(&[&dev]);
    let ((x1, y1), (x2, y2), (x3, y3)) = (pair(&rt, 1.0), pair(&rt, 2.0), pair(&rt, 3.0));
    on0(&rt, &x1, &y1);
    on0(&rt, &x2, &y2);
    assert_eq!(dev.memory_used(), 4 * BYTES);
    dev.set_memory(Some(2 * BYTES));
    // Copies held stay held, and a call that allocates nothing frees nothing.
    on0(&rt, &x1, &y1);
    assert_eq!(rt.stats().evictions, 0);
    on0(&rt, &x3, &y3);
    let s = rt.stats();
    assert_eq!((s.evictions, s.downloads), (4, 2), "{s}");
    assert_eq!(dev.memory_used(), 2 * BYTES);
    for (y, k) in [(&y1, 2.0), (&y2, 2.0), (&y3, 3.0)] {
        assert_eq!(rt.read(y).unwrap(), plus(k));
    }
}

#[test]
fn submitted_tasks_share_a_small_device_and_all_finish_right() {
    let (rt, dev) = small(2);
    let pairs: Vec<_> = (1..=4).map(|k| pair(&rt, k as f32)).collect();
    let add = add();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        for (x, y) in &pairs {
            let t = rt.submit_to(Target::On(Backend::Gpu(0)), &add, &[x, y], &());
            tasks.push(t.unwrap());
        }
    }
    rt.wait_all().unwrap();
    assert!(tasks.iter().all(|t| t.is_finished()));
    assert!(rt.stats().evictions >= 6, "{}", rt.stats());
    assert!(dev.memory_used() <= 2 * BYTES);
    assert_eq!(dev.kernels_run(), 12);
    for (k, (_, y)) in pairs.iter().enumerate() {
        assert_eq!(rt.read(y).unwrap(), plus(3.0 * (k + 1) as f32));
    }
}
