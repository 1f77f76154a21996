//! Leases: calls and host reads of one buffer take turns, from any thread;
//! a kernel that uses its own arguments through the runtime is refused
//! rather than left waiting for itself, on a simulated device as on the CPU.

use super::*;

const N: usize = 64;

/// What a kernel's call into the runtime returned.
type Seen = Arc<Mutex<Option<Result<()>>>>;

/// A kernel over one buffer of counters that, the first time it runs, makes
/// `call` with the runtime and `buf` (any buffer of it, the kernel's own
/// argument or not) and keeps the outcome in the returned slot. It holds
/// them only until then, so no runtime is kept alive by its own kernel.
fn reentrant(
    rt: &Runtime,
    buf: &Buffer<u32>,
    call: impl Fn(&Runtime, &Buffer<u32>) -> Result<()> + Send + Sync + 'static,
) -> (Kernel, Seen) {
    let slot = Mutex::new(Some((rt.clone(), buf.clone())));
    let seen: Seen = Arc::default();
    let out = Arc::clone(&seen);
    let k = unary("reentrant", move |_| {
        let taken = slot.lock().unwrap().take();
        if let Some((rt, buf)) = taken {
            *out.lock().unwrap() = Some(call(&rt, &buf));
        }
    });
    (k, seen)
}

/// Runs a [`reentrant`] kernel on `backend` over `c` (failing the test if
/// that hangs) and returns what its call into the runtime returned.
fn run_reentrant(
    backend: Backend,
    call: impl Fn(&Runtime, &Buffer<u32>) -> Result<()> + Send + Sync + 'static,
    own: bool,
) -> Result<()> {
    let dev = sim("a", US);
    within(10, move || {
        let rt = runtime(&[&dev]);
        let (c, other) = (rt.zeros::<u32>(N), rt.buffer(&[7u32; N]));
        let (k, seen) = reentrant(&rt, if own { &c } else { &other }, call);
        rt.run_on(backend, &k, &[&c], &()).unwrap();
        seen.lock().unwrap().take().expect("the kernel ran")
    })
}

fn would_deadlock(r: Result<()>) {
    match r {
        Err(Error::WouldDeadlock { what, message }) => {
            assert!(message.contains("reentrant"), "{what}: {message}")
        }
        other => panic!("expected WouldDeadlock, got {other:?}"),
    }
}

#[test]
fn a_writer_and_a_reader_on_two_threads_take_turns() {
    let dev = sim("a", US);
    let rt = runtime(&[&dev]);
    let c = rt.zeros::<u32>(N);
    // Slow enough per element that a read in the middle would see it torn.
    let slow = unary("slow-inc", |c| {
        for v in c {
            *v += 1;
            std::thread::yield_now();
        }
    });
    let (rw, cw) = (rt.clone(), c.clone());
    let writer = std::thread::spawn(move || {
        for _ in 0..40 {
            rw.run_on(Backend::Gpu(0), &slow, &[&cw], &()).unwrap();
        }
    });
    let (rr, cr) = (rt.clone(), c.clone());
    let reader = std::thread::spawn(move || {
        let mut last = 0;
        for _ in 0..40 {
            let v = rr.read(&cr).unwrap();
            assert!(v.iter().all(|&e| e == v[0]), "a torn read: {v:?}");
            assert!(v[0] >= last, "went back from {last} to {}", v[0]);
            last = v[0];
        }
    });
    within(20, move || {
        writer.join().unwrap();
        reader.join().unwrap();
    });
    assert_eq!(rt.read(&c).unwrap(), vec![40; N]);
    assert_eq!(dev.kernels_run(), 40);
}

#[test]
fn a_read_waits_for_the_write_running_on_the_device() {
    let dev = sim("a", US);
    let rt = runtime(&[&dev]);
    let c = rt.zeros::<u32>(N);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let slow = unary("slow-set", move |c| {
        tx.lock().unwrap().send(()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        c.fill(5);
    });
    let (rw, cw) = (rt.clone(), c.clone());
    let writer =
        std::thread::spawn(move || rw.run_on(Backend::Gpu(0), &slow, &[&cw], &()).unwrap());
    rx.recv().unwrap(); // the kernel is running and holds the buffer
    assert_eq!(rt.read(&c).unwrap(), vec![5; N]);
    assert_eq!(writer.join().unwrap().backend, Backend::Gpu(0));
}

#[test]
fn a_simulated_kernel_reading_its_own_argument_would_deadlock() {
    would_deadlock(run_reentrant(
        Backend::Gpu(0),
        |rt, c| rt.read(c).map(drop),
        true,
    ));
}

#[test]
fn a_simulated_kernel_writing_its_own_argument_would_deadlock() {
    would_deadlock(run_reentrant(
        Backend::Gpu(0),
        |rt, c| rt.write(c, &[1; N]),
        true,
    ));
}

#[test]
fn a_cpu_kernel_reading_its_own_argument_would_deadlock() {
    would_deadlock(run_reentrant(
        Backend::Cpu,
        |rt, c| rt.read(c).map(drop),
        true,
    ));
}

#[test]
fn a_simulated_kernel_may_read_a_buffer_it_was_not_given() {
    run_reentrant(
        Backend::Gpu(0),
        |rt, other| {
            assert_eq!(rt.read(other)?, vec![7; N]);
            Ok(())
        },
        false,
    )
    .unwrap();
}

#[test]
fn wait_all_from_inside_a_simulated_kernel_would_deadlock() {
    match run_reentrant(Backend::Gpu(0), |rt, _| rt.wait_all(), true) {
        Err(Error::WouldDeadlock { .. }) => {}
        other => panic!("expected WouldDeadlock, got {other:?}"),
    }
}
