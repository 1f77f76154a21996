//! Where a buffer's valid copies live: uploads, writes, reads, zeros and
//! host writes, and the virtual times a simulated device reports.

use super::*;

const N: usize = 256;
const BYTES: u64 = (N * 4) as u64;

/// A runtime on two instant devices, with `x = 0..N` and `y = 1`s.
fn setup() -> (Runtime, SimDevice, SimDevice, Buffer<f32>, Buffer<f32>) {
    let (a, b) = (sim("a", US), sim("b", US));
    let rt = runtime(&[&a, &b]);
    let x = rt.buffer(&iota(N));
    let y = rt.buffer(&[1.0f32; N]);
    (rt, a, b, x, y)
}

#[test]
fn a_new_buffer_is_valid_on_the_host_alone() {
    let (rt, ..) = setup();
    let x = rt.buffer(&[1.0f32, 2.0]);
    let v = rt.validity(&x).unwrap();
    assert_eq!(
        v,
        Validity {
            host: true,
            gpu: vec![false, false],
            zero: false
        }
    );
    assert_eq!(v.describe(), "host");
    assert!(v.on(Backend::Cpu) && !v.on(Backend::Gpu(0)) && !v.on(Backend::Gpu(7)));
    assert_eq!(rt.stats().live_buffers, 1);
}

#[test]
fn a_device_call_uploads_its_inputs_and_its_write_leaves_only_that_copy_valid() {
    let (rt, a, _, x, y) = setup();
    let info = add_on(&rt, Backend::Gpu(0), &x, &y);
    assert_eq!(
        (info.backend, info.reason),
        (Backend::Gpu(0), Reason::Forced)
    );
    // x was only read: both copies hold it. y was written on gpu0.
    assert_eq!(describe(&rt, &x), "host+gpu0");
    assert_eq!(describe(&rt, &y), "gpu0");
    let s = rt.stats();
    assert_eq!((s.uploads, s.upload_bytes), (2, 2 * BYTES), "{s}");
    assert_eq!((s.downloads, s.gpu_runs, s.cpu_runs), (0, 1, 0), "{s}");
    assert_eq!(a.kernels_run(), 1);
    assert_eq!(a.memory_used(), 2 * BYTES);
}

#[test]
fn a_second_call_where_the_copies_are_valid_moves_nothing() {
    let (rt, _, _, x, y) = setup();
    add_on(&rt, Backend::Gpu(0), &x, &y);
    rt.reset_stats();
    add_on(&rt, Backend::Gpu(0), &x, &y);
    let s = rt.stats();
    assert_eq!((s.uploads, s.downloads, s.gpu_runs), (0, 0, 1), "{s}");
    let want: Vec<f32> = iota(N).iter().map(|v| 1.0 + 2.0 * v).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
}

#[test]
fn a_read_brings_the_copy_home_once_and_both_stay_valid() {
    let (rt, _, _, x, y) = setup();
    add_on(&rt, Backend::Gpu(0), &x, &y);
    rt.reset_stats();
    let want: Vec<f32> = iota(N).iter().map(|v| v + 1.0).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
    assert_eq!(describe(&rt, &y), "host+gpu0");
    assert_eq!(rt.read(&y).unwrap(), want);
    let mut out = vec![0.0; N];
    rt.read_into(&y, &mut out).unwrap();
    assert_eq!(out, want);
    let s = rt.stats();
    assert_eq!((s.downloads, s.download_bytes), (1, BYTES), "{s}");
}

#[test]
fn zeros_move_no_bytes_anywhere() {
    let (rt, a, _, x, _) = setup();
    let z = rt.zeros::<f32>(N);
    assert_eq!(describe(&rt, &z), "zero");
    // Read before any device has it: zeros, made on the host.
    assert_eq!(rt.read(&z).unwrap(), vec![0.0; N]);
    assert_eq!(rt.stats().downloads, 0);
    let out = rt.zeros::<f32>(N);
    rt.run_on(Backend::Gpu(0), &copy(), &[&x, &out], &())
        .unwrap();
    // Only x went over the bus: the output was zeroed there.
    let s = rt.stats();
    assert_eq!((s.uploads, s.upload_bytes), (1, BYTES), "{s}");
    assert_eq!(a.memory_used(), 2 * BYTES);
    assert_eq!(rt.read(&out).unwrap(), iota(N));
}

#[test]
fn a_host_write_stales_every_device_copy() {
    let (rt, _, _, x, y) = setup();
    add_on(&rt, Backend::Gpu(0), &x, &y);
    add_on(&rt, Backend::Gpu(1), &x, &y);
    assert_eq!(describe(&rt, &x), "host+gpu0+gpu1");
    rt.write(&x, &[2.0; N]).unwrap();
    assert_eq!(describe(&rt, &x), "host");
    rt.reset_stats();
    add_on(&rt, Backend::Gpu(0), &x, &y);
    // The new x goes up again; y, valid only on gpu1, comes through the host.
    let s = rt.stats();
    assert_eq!((s.uploads, s.downloads), (2, 1), "{s}");
    let want: Vec<f32> = iota(N).iter().map(|v| 1.0 + 2.0 * v + 2.0).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
    // A write of the wrong length changes nothing.
    assert!(matches!(
        rt.write(&x, &[0.0; 3]),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(rt.read(&x).unwrap(), vec![2.0; N]);
}

#[test]
fn data_moves_between_devices_through_the_host() {
    let (rt, a, b, x, y) = setup();
    add_on(&rt, Backend::Gpu(0), &x, &y);
    add_on(&rt, Backend::Gpu(1), &x, &y);
    assert_eq!(describe(&rt, &y), "gpu1");
    // y came down from gpu0 on the way: the host holds the older version.
    let s = rt.stats();
    assert_eq!((s.downloads, s.uploads), (1, 4), "{s}");
    add_on(&rt, Backend::Cpu, &x, &y);
    assert_eq!(describe(&rt, &y), "host");
    let want: Vec<f32> = iota(N).iter().map(|v| 1.0 + 3.0 * v).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
    assert_eq!((a.kernels_run(), b.kernels_run()), (1, 1));
    assert_eq!(rt.stats().cpu_runs, 1);
}

#[test]
fn describe_names_every_valid_copy() {
    let v = |host, gpu: &[bool], zero| Validity {
        host,
        gpu: gpu.to_vec(),
        zero,
    };
    assert_eq!(v(true, &[false, true], false).describe(), "host+gpu1");
    assert_eq!(
        v(false, &[true, true, true], false).describe(),
        "gpu0+gpu1+gpu2"
    );
    assert_eq!(v(false, &[false], true).describe(), "zero");
    assert_eq!(v(false, &[false, false], false).describe(), "nowhere");
    assert_eq!(v(false, &[], false).describe(), "nowhere");
    assert!(!v(false, &[true], false).on(Backend::Cpu));
}

#[test]
fn a_call_reports_its_virtual_time_and_the_device_its_clock() {
    let dev = SimDevice::new("clock").cost(|op| match op {
        SimOp::Kernel { size, .. } => Duration::from_millis(*size),
        SimOp::Upload { bytes } | SimOp::Download { bytes } => Duration::from_nanos(*bytes),
    });
    let rt = runtime(&[&dev]);
    let (x, y) = (rt.buffer(&[1.0f32; 4]), rt.buffer(&[2.0f32; 4]));
    let k = add();
    let info = rt.run_on(Backend::Gpu(0), &k, &[&x, &y], &()).unwrap();
    // The default size counts every element of every argument: 8 ms.
    assert_eq!(info.exec, Duration::from_millis(8));
    assert!(info.elapsed < info.exec, "virtual time is not waited for");
    assert_eq!(
        dev.busy(),
        Duration::from_millis(8) + Duration::from_nanos(32)
    );
    dev.set_slowdown(2.5);
    let info = rt.run_on(Backend::Gpu(0), &k, &[&x, &y], &()).unwrap();
    assert_eq!(info.exec, Duration::from_millis(20));
    assert_eq!(dev.kernels_run(), 2);
    assert_eq!(rt.read(&y).unwrap(), vec![4.0; 4]);
    assert_eq!(rt.devices()[1].kind, crate::device::DeviceKind::Simulated);
}

#[test]
fn dropping_every_handle_frees_the_device_copies_once_no_record_needs_them() {
    let (rt, a, _, x, y) = setup();
    let t = rt.zeros::<f32>(N);
    rt.run_on(Backend::Gpu(0), &copy(), &[&x, &t], &()).unwrap();
    rt.run_on(Backend::Gpu(0), &add(), &[&t, &y], &()).unwrap();
    assert_eq!(a.memory_used(), 3 * BYTES);
    // y's record reads t's version, held only on gpu0: t stays, a zombie.
    drop(t);
    assert_eq!(a.memory_used(), 3 * BYTES);
    // y's host copy catches up: its record goes, and t with it.
    rt.read(&y).unwrap();
    assert_eq!(a.memory_used(), 2 * BYTES);
    drop((x, y));
    assert_eq!((a.memory_used(), rt.stats().live_buffers), (0, 0));
}
