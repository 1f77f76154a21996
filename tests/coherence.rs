//! The buffer manager: data moves only when a kernel or a read needs it
//! somewhere its valid copy is not, and a write leaves only the writer's copy
//! valid. Checked through `rt.validity` and the byte counters.

mod common;

use pel::kernels::{Saxpy, Sum};
use pel::{Backend, Kernel, Read, ReadWrite, Target};

/// Serialises the tests that read the shared runtime's counters.
static COUNTERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The first GPU of the shared runtime (or a skip, as for `common::gpu`),
/// with the counters held for this test alone.
fn counting_on_a_gpu(test: &str) -> Option<(std::sync::MutexGuard<'static, ()>, Backend)> {
    let guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    Some((guard, common::gpu(common::rt(), test)?))
}

fn random(n: usize, seed: u32) -> Vec<f32> {
    // A small LCG: enough to make the values differ and not be zeros.
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn a_two_kernel_chain_on_the_gpu_moves_the_minimum() {
    let rt = common::rt();
    let Some((_guard, gpu)) = counting_on_a_gpu("a_two_kernel_chain_on_the_gpu_moves_the_minimum")
    else {
        return;
    };
    let (saxpy, sum) = (Saxpy::new().unwrap(), Sum::new().unwrap());
    let n = 1_000_003;
    let xs = random(n, 1);
    let ys = random(n, 2);
    let x = rt.buffer(&xs);
    let y = rt.buffer(&ys);
    let total = rt.zeros::<f32>(1);
    assert_eq!(rt.validity(&x).unwrap().describe(), "host");
    assert_eq!(rt.validity(&total).unwrap().describe(), "zero");

    rt.reset_stats();
    saxpy.run(rt, Target::On(gpu), 3.0, &x, &y).unwrap();
    sum.run(rt, Target::On(gpu), &y, &total).unwrap();
    let got = rt.read(&total).unwrap()[0];
    let s = rt.stats();
    eprintln!("saxpy → sum on {gpu}, n = {n}: {s}");

    // x and y up once each; the partial sums are born on the GPU; one f32 back.
    assert_eq!(s.upload_bytes, 2 * 4 * n as u64, "{s}");
    assert_eq!(s.uploads, 2, "{s}");
    assert_eq!(s.download_bytes, 4, "{s}");
    assert_eq!(s.downloads, 1, "{s}");
    // 1,000,003 → 245 partial sums → 1.
    assert_eq!(s.gpu_runs, 1 + 2, "saxpy, then two sum passes: {s}");

    // y was written on the GPU: only that copy is valid; x is shared.
    assert_eq!(rt.validity(&y).unwrap().describe(), format!("{gpu}"));
    assert_eq!(rt.validity(&x).unwrap().describe(), format!("host+{gpu}"));
    assert_eq!(
        rt.validity(&total).unwrap().describe(),
        format!("host+{gpu}")
    );

    let want: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| 3.0 * x as f64 + y as f64)
        .sum();
    let magnitude: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| (3.0 * x as f64 + y as f64).abs())
        .sum();
    assert!(
        (got as f64 - want).abs() <= 1e-5 * magnitude,
        "sum {got}, expected {want}"
    );

    // Reading y brings it home once; reading again moves nothing.
    rt.reset_stats();
    let host_y = rt.read(&y).unwrap();
    let _ = rt.read(&y).unwrap();
    let s = rt.stats();
    assert_eq!((s.downloads, s.download_bytes), (1, 4 * n as u64), "{s}");
    assert_eq!(rt.validity(&y).unwrap().describe(), format!("host+{gpu}"));
    assert!((host_y[7] - (3.0 * xs[7] + ys[7])).abs() < 1e-5);

    // A host write makes the GPU copy stale; the next GPU use uploads again.
    rt.write(&x, &ys).unwrap();
    assert_eq!(rt.validity(&x).unwrap().describe(), "host");
    rt.reset_stats();
    saxpy.run(rt, Target::On(gpu), 1.0, &x, &y).unwrap();
    let s = rt.stats();
    assert_eq!(
        (s.uploads, s.upload_bytes),
        (1, 4 * n as u64),
        "only x moves: {s}"
    );
}

#[test]
fn the_cpu_path_moves_nothing_and_the_pool_reuses_gpu_buffers() {
    let _guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = common::rt();
    let saxpy = Saxpy::new().unwrap();
    let x = rt.buffer(&random(1000, 3));
    let y = rt.buffer(&random(1000, 4));
    rt.reset_stats();
    saxpy
        .run(rt, Target::On(Backend::Cpu), 2.0, &x, &y)
        .unwrap();
    let _ = rt.read(&y).unwrap();
    let s = rt.stats();
    assert_eq!(
        (s.upload_bytes, s.download_bytes, s.cpu_runs),
        (0, 0, 1),
        "{s}"
    );

    let Some(gpu) = common::gpu(rt, "the_pool_reuses_gpu_buffers") else {
        return;
    };
    let sum = Sum::new().unwrap();
    let xs = random(70_000, 5);
    let run_chain = || {
        let x = rt.buffer(&xs);
        let out = rt.zeros::<f32>(1);
        sum.run(rt, Target::On(gpu), &x, &out).unwrap();
        rt.read(&out).unwrap()[0]
    };
    let first = run_chain();
    let misses = rt.stats().pool_misses;
    let hits = rt.stats().pool_hits;
    let second = run_chain();
    let s = rt.stats();
    // The same device, but maybe another of sum's shaders (placement
    // explores its variants), which adds in another order: the same sum
    // within 70,000·ε·Σ|x|.
    let mag: f64 = xs.iter().map(|&v| (v as f64).abs()).sum();
    let tol = xs.len() as f64 * f32::EPSILON as f64 * mag;
    assert!(
        ((first - second) as f64).abs() <= tol,
        "same input, same device: {first} and {second}"
    );
    assert_eq!(
        s.pool_misses, misses,
        "the second chain allocates nothing: {s}"
    );
    assert!(s.pool_hits > hits, "{s}");
}

#[test]
fn reset_stats_zeroes_every_counter_the_pools_too() {
    let rt = common::rt();
    let Some((_guard, gpu)) = counting_on_a_gpu("reset_stats_zeroes_every_counter_the_pools_too")
    else {
        return;
    };
    let sum = Sum::new().unwrap();
    // Twice, so the second chain takes the first one's buffers from the pool.
    for seed in 0..2 {
        let x = rt.buffer(&random(70_000, 7 + seed));
        let out = rt.zeros::<f32>(1);
        sum.run(rt, Target::On(gpu), &x, &out).unwrap();
        rt.read(&out).unwrap();
    }
    let before = rt.stats();
    assert!(before.pool_hits > 0 && before.pool_misses > 0, "{before}");
    rt.reset_stats();
    let s = rt.stats();
    assert_eq!((s.pool_hits, s.pool_misses), (0, 0), "{s}");
    assert_eq!(
        (s.uploads, s.downloads, s.gpu_runs, s.cpu_runs),
        (0, 0, 0, 0),
        "{s}"
    );
    // States, not counts: what the pools hold now stays.
    assert_eq!(s.pool_free_bytes, before.pool_free_bytes, "{s}");
    assert_eq!(s.live_buffers, before.live_buffers, "{s}");
    assert_eq!(s.calibration_runs, before.calibration_runs, "{s}");
}

#[test]
fn a_buffer_valid_on_one_gpu_reaches_another_through_the_host() {
    let _guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = common::rt();
    let gpus = common::gpus(
        rt,
        "a_buffer_valid_on_one_gpu_reaches_another_through_the_host",
    );
    if gpus.len() < 2 {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_buffer_valid_on_one_gpu_reaches_another_through_the_host: needs two GPU adapters, found {}",
            gpus.len()
        );
        return;
    }
    let saxpy = Saxpy::new().unwrap();
    let n = 4099;
    let xs = random(n, 6);
    let x = rt.buffer(&xs);
    let y = rt.zeros::<f32>(n);
    saxpy.run(rt, Target::On(gpus[0]), 2.0, &x, &y).unwrap(); // y = 2x on gpu0
    rt.reset_stats();
    saxpy.run(rt, Target::On(gpus[1]), 1.0, &x, &y).unwrap(); // y = 3x on gpu1
    let s = rt.stats();
    assert_eq!(
        (s.downloads, s.download_bytes),
        (1, 4 * n as u64),
        "y comes home: {s}"
    );
    assert_eq!(
        (s.uploads, s.upload_bytes),
        (2, 8 * n as u64),
        "x and y go out: {s}"
    );
    assert_eq!(rt.validity(&y).unwrap().describe(), format!("{}", gpus[1]));
    let got = rt.read(&y).unwrap();
    for (i, (&g, &x)) in got.iter().zip(&xs).enumerate() {
        assert!(
            (g - 3.0 * x).abs() <= 4.0 * f32::EPSILON * (3.0 * x).abs(),
            "[{i}] {g} vs {}",
            3.0 * x
        );
    }
}

#[test]
fn placement_counts_the_transfers_where_the_data_is_not() {
    let _guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = common::rt();
    let saxpy = Saxpy::new().unwrap();
    let n = 100_000;
    let x = rt.buffer(&random(n, 7));
    let y = rt.buffer(&random(n, 8));
    let params = pel::kernels::saxpy::SaxpyParams {
        a: 1.0,
        n: n as u32,
    };
    let transfer = |d: &pel::Decision, b: Backend| {
        d.estimates
            .iter()
            .find(|e| e.backend == b)
            .map(|e| e.transfer_s)
            .unwrap()
    };
    let before = rt.stats().calibration_runs;
    let d = rt.explain(saxpy.kernel(), &[&x, &y], &params).unwrap();
    assert_eq!(
        rt.stats().calibration_runs,
        before,
        "explaining runs nothing"
    );
    assert_eq!(transfer(&d, Backend::Cpu), 0.0, "{d}");
    let Some(gpu) = common::gpu(rt, "placement_counts_the_transfers_where_the_data_is_not") else {
        return;
    };
    let upload = transfer(&d, gpu);
    assert!(upload > 0.0, "host data costs the GPU an upload: {d}");

    // After a GPU run y lives only there and x on both: the GPU needs no
    // upload (only the expected read-back of y, weighted by how often it has
    // been needed: up to once, when every earlier output of saxpy on a GPU
    // was read, as this runtime's other tests do), while the CPU must fetch
    // y for certain.
    saxpy.run(rt, Target::On(gpu), 1.0, &x, &y).unwrap();
    let d = rt.explain(saxpy.kernel(), &[&x, &y], &params).unwrap();
    assert!(transfer(&d, Backend::Cpu) > 0.0, "{d}");
    assert!(transfer(&d, gpu) < upload, "the uploads are gone: {d}");
    assert!(
        transfer(&d, gpu) <= transfer(&d, Backend::Cpu),
        "{d} {:?}",
        d.estimates
    );
}

#[test]
fn kernels_without_params_and_with_vector_elements() {
    // Every test here that moves data holds this: others count bytes.
    let _guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = common::rt();
    let src = r#"
@group(0) @binding(0) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> len2: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&len2) {
        len2[id.x] = dot(v[id.x], v[id.x]);
    }
}
"#;
    let kernel = Kernel::builder("norm2", src)
        .cpu::<(Read<[f32; 4]>, ReadWrite<f32>)>(|args, _| {
            let (v, out) = args.split();
            for (o, v) in out.iter_mut().zip(v) {
                *o = v.iter().map(|c| c * c).sum();
            }
        })
        .build()
        .unwrap();
    let vs: Vec<[f32; 4]> = (0..300).map(|i| [i as f32, 1.0, -2.0, 0.5]).collect();
    let want: Vec<f32> = vs.iter().map(|v| v.iter().map(|c| c * c).sum()).collect();
    let mut backends = vec![Backend::Cpu];
    backends.extend(common::gpus(
        rt,
        "kernels_without_params_and_with_vector_elements",
    ));
    for b in backends {
        let v = rt.buffer(&vs);
        let out = rt.buffer(&vec![f32::NAN; vs.len()]);
        rt.run_on(b, &kernel, &[&v, &out], &()).unwrap();
        let got = rt.read(&out).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs(), "{b}: [{i}] {g} vs {w}");
        }
    }
}

#[test]
fn the_runtime_is_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<pel::Runtime>();
    assert_send_sync::<pel::Kernel>();
    assert_send_sync::<pel::Buffer<f32>>();
}

#[test]
fn read_into_reuses_the_callers_memory_and_checks_its_length() {
    let _guard = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = common::rt();
    let Some((gpu, saxpy)) = common::gpu_and_saxpy(
        rt,
        "read_into_reuses_the_callers_memory_and_checks_its_length",
    ) else {
        return;
    };
    let n = 4099;
    let (xs, ys) = (random(n, 7), random(n, 8));
    let (x, y) = (rt.buffer(&xs), rt.buffer(&ys));
    saxpy.run(rt, Target::On(gpu), 2.0, &x, &y).unwrap();
    // Valid only on the GPU: read_into brings it down like read does.
    assert_eq!(rt.validity(&y).unwrap().describe(), gpu.to_string());
    let mut out = vec![f32::NAN; n];
    rt.read_into(&y, &mut out).unwrap();
    for i in 0..n {
        let want = 2.0 * xs[i] + ys[i];
        assert!((out[i] - want).abs() <= 1e-6, "[{i}]: {} vs {want}", out[i]);
    }
    assert_eq!(rt.read(&y).unwrap(), out);
    // read_to_vec resizes, keeping the capacity it has.
    let mut v = Vec::with_capacity(2 * n);
    let ptr = v.as_ptr();
    rt.read_to_vec(&y, &mut v).unwrap();
    assert_eq!((v.as_slice(), v.as_ptr()), (out.as_slice(), ptr));
    // The wrong length is a typed error naming the argument and both sizes.
    let err = rt.read_into(&y, &mut out[1..]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("out") && msg.contains("4098") && msg.contains("4099"),
        "{msg}"
    );
}
