//! The performance model on disk: a round trip, damaged and hostile files,
//! an unwritable directory, and kernel identities. Policy decisions
//! themselves are tested on synthetic measurements in the runtime's unit
//! tests (`dispatch`), where no timing is involved.

use std::path::PathBuf;

use pel::kernels::Saxpy;
use pel::{Backend, Kernel, Read, ReadWrite, Runtime, Target};

fn temp_model(name: &str) -> PathBuf {
    // One directory per test, so the leftover check sees only its own files.
    let dir = std::env::temp_dir().join(format!("pel-model-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.json"));
    let _ = std::fs::remove_file(&path);
    path
}

fn cpu_runtime(path: &PathBuf) -> Runtime {
    Runtime::builder()
        .gpu(false)
        .model_file(path)
        .build()
        .unwrap()
}

fn run_saxpy(rt: &Runtime, n: usize, times: usize) {
    let saxpy = Saxpy::new().unwrap();
    let x = rt.buffer(&vec![1.0f32; n]);
    let y = rt.buffer(&vec![2.0f32; n]);
    for _ in 0..times {
        saxpy
            .run(rt, Target::On(Backend::Cpu), 0.5, &x, &y)
            .unwrap();
    }
}

#[test]
fn the_model_survives_a_round_trip() {
    let path = temp_model("round-trip");
    {
        let rt = cpu_runtime(&path);
        run_saxpy(&rt, 5000, 8);
        let rows = rt.model_rows();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].kernel, "saxpy");
        assert_eq!(rows[0].summary.samples, 7, "the first sample is dropped");
    } // dropped: saved
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"version\": 1"), "{text}");
    let rt = cpu_runtime(&path);
    let rows = rt.model_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kernel, "saxpy");
    assert_eq!(rows[0].summary.samples, 7);
    // No temp file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_corrupt_or_foreign_file_gives_a_fresh_model() {
    for (name, content) in [
        ("garbage", "this is not json {".to_owned()),
        ("version", r#"{"version": 99, "devices": [], "entries": []}"#.to_owned()),
        ("deep", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
        (
            "hostile",
            // Huge, negative and zero times, a nonsense kernel id, and a
            // device this machine does not have: all ignored. (Hostile
            // numbers on this machine's devices: `persist`'s unit tests.)
            r#"{"version": 1, "devices": ["x"], "bus": {},
                "entries": [
                  {"kernel": "zz", "name": "bad", "device": "nope", "calls": 1, "samples": [[1, 1.0]]},
                  {"kernel": "0000000000000001", "name": "huge", "device": "nope", "calls": 18446744073709551615,
                   "samples": [[1, 1e308], [2, -1.0], [3, 0.0]]}
                ]}"#
            .to_owned(),
        ),
    ] {
        let path = temp_model(name);
        std::fs::write(&path, &content).unwrap();
        let rt = cpu_runtime(&path);
        assert!(rt.model_rows().is_empty(), "{name}: {:?}", rt.model_rows());
        // It still works, and the file is written afresh.
        run_saxpy(&rt, 1000, 7);
        rt.save_model();
        let again = cpu_runtime(&path);
        assert_eq!(again.model_rows().len(), 1, "{name}");
    }
}

#[test]
fn an_entry_with_an_impossible_time_is_not_loaded() {
    // A model this machine wrote, then one sample's time made subnormal:
    // 5e-324 s would make the CPU look infinitely fast.
    let path = temp_model("subnormal");
    {
        let rt = cpu_runtime(&path);
        run_saxpy(&rt, 5000, 8);
        run_saxpy(&rt, 50_000, 8);
        assert_eq!(rt.model_rows().len(), 2);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = file["entries"].as_array_mut().unwrap();
    assert_eq!(entries.len(), 2, "{text}");
    let spoilt = entries[0]["samples"][0][0].as_u64().unwrap();
    entries[0]["samples"][0][1] = serde_json::json!(5e-324);
    std::fs::write(&path, file.to_string()).unwrap();
    let rt = cpu_runtime(&path);
    let rows = rt.model_rows();
    // The spoilt entry is gone whole (not trimmed to its other samples);
    // the other size, measured apart, is kept.
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        !(rows[0].bucket_from..=rows[0].bucket_to).contains(&spoilt),
        "{rows:?}"
    );
}

#[test]
fn an_unwritable_model_directory_is_only_a_warning() {
    let blocker = temp_model("not-a-directory");
    std::fs::write(&blocker, "a file where a directory should be").unwrap();
    let path = blocker.join("model.json");
    let rt = cpu_runtime(&path);
    run_saxpy(&rt, 1000, 7);
    rt.save_model(); // warns, does not panic
    assert_eq!(rt.model_rows().len(), 1);
}

#[test]
fn a_changed_kernel_gets_a_new_identity() {
    let build = |wgsl: &str, version: &str| {
        Kernel::builder("k", wgsl)
            .version(version)
            .cpu::<(Read<f32>, ReadWrite<f32>)>(|_, _| {})
            .build()
            .unwrap()
    };
    let src = r#"
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3<u32>) {
    if i.x < arrayLength(&b) { b[i.x] = a[i.x]; }
}
"#;
    let base = build(src, "1");
    assert_eq!(base.id(), build(src, "1").id(), "identity is stable");
    assert_ne!(base.id(), build(src, "2").id(), "a new CPU version");
    let edited = src.replace("b[i.x] = a[i.x];", "b[i.x] = 2.0 * a[i.x];");
    assert_ne!(base.id(), build(&edited, "1").id(), "new WGSL");
    // Its measurements start fresh.
    let path = temp_model("identity");
    let rt = cpu_runtime(&path);
    let a = rt.buffer(&[1.0f32; 100]);
    let b = rt.zeros::<f32>(100);
    for _ in 0..3 {
        rt.run_on(Backend::Cpu, &base, &[&a, &b], &()).unwrap();
    }
    let other = build(&edited, "1");
    let d = rt.explain(&other, &[&a, &b], &()).unwrap();
    assert_eq!(d.estimates[0].samples, 0, "{d}");
    assert!(d.estimates[0].exec_s.is_none(), "{d}");
}

#[test]
fn pel_backend_forces_automatic_calls() {
    let rt = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .force_backend(Some(Backend::Cpu))
        .build()
        .unwrap();
    let saxpy = Saxpy::new().unwrap();
    let x = rt.buffer(&[1.0f32; 10]);
    let y = rt.buffer(&[1.0f32; 10]);
    let info = saxpy.run(&rt, Target::Auto, 1.0, &x, &y).unwrap();
    assert_eq!(
        (info.backend, info.reason),
        (Backend::Cpu, pel::Reason::Forced)
    );

    let rt = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .force_backend(Some(Backend::Gpu(0)))
        .build()
        .unwrap();
    let x = rt.buffer(&[1.0f32; 10]);
    let y = rt.buffer(&[1.0f32; 10]);
    let err = saxpy.run(&rt, Target::Auto, 1.0, &x, &y).unwrap_err();
    assert!(matches!(err, pel::Error::NoSuchBackend { .. }), "{err:?}");
}
