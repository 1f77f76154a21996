//! Variants: built and checked against the kernel, each with an identity of
//! its own, and run where the model finds them fastest.

use super::*;
use crate::{Backend, Runtime, Target};

/// `y = 2x` with the binding layout `x: read f32, y: read_write f32`, at
/// workgroup size `size` (a variant that differs only in it).
fn double_wgsl(size: u32) -> String {
    format!(
        r#"
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size({size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
    if id.x < arrayLength(&y) {{ y[id.x] = 2.0 * x[id.x]; }}
}}
"#
    )
}

fn double(args: CpuArgs<'_, (Read<f32>, ReadWrite<f32>)>) {
    let (x, y) = args.split();
    for (y, x) in y.iter_mut().zip(x) {
        *y = 2.0 * x;
    }
}

fn builder() -> KernelBuilder<()> {
    Kernel::builder("double", double_wgsl(64))
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| double(args))
}

#[test]
fn a_variant_binding_other_buffers_is_refused_naming_both_sides() {
    // `y` read-only where the kernel writes it.
    let wrong = double_wgsl(64).replace(
        "var<storage, read_write> y",
        "var<storage, read> z: array<f32>;\n@group(0) @binding(2) var<storage, read_write> y",
    );
    let err = builder()
        .variant(Variant::wgsl("wrong", wrong))
        .build()
        .unwrap_err();
    let Error::Variant {
        kernel,
        variant,
        message,
    } = &err
    else {
        panic!("expected Error::Variant, got {err:?}");
    };
    assert_eq!((kernel.as_str(), variant.as_str()), ("double", "wrong"));
    // The variant's side and the kernel's.
    assert!(message.contains("@binding(2) y"), "{err}");
    assert!(message.contains("@binding(1) y: read_write f32]"), "{err}");

    // Params: the kernel takes none, the variant a block of 4 bytes.
    let with_params = "struct P { n: u32 }\n@group(0) @binding(2) var<uniform> p: P;\n".to_owned()
        + &double_wgsl(64).replace("2.0 * x[id.x]", "2.0 * x[id.x] + f32(p.n) * 0.0");
    let err = builder()
        .variant(Variant::wgsl("params", with_params))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Variant { message, .. } if message.contains("params of 4 bytes") && message.contains("no params")),
        "{err}"
    );

    // A CPU variant's signature is checked as the kernel's own is.
    let err = builder()
        .variant(Variant::cpu::<(Read<f32>, Read<f32>)>(
            "cpu",
            |_, _: &()| {},
        ))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::ArgAccess { kernel, .. } if kernel == "double[cpu]"),
        "{err}"
    );
}

#[test]
fn labels_must_be_given_and_distinct() {
    for labels in [vec![""], vec!["a", "a"]] {
        let mut b = builder();
        for l in &labels {
            b = b.variant(Variant::wgsl(*l, double_wgsl(128)));
        }
        let err = b.build().unwrap_err();
        assert!(matches!(&err, Error::Variant { .. }), "{labels:?}: {err:?}");
    }
}

#[test]
fn each_variant_has_an_identity_a_change_renews_only_its_own() {
    let make = |wide: u32, cpu_version: &str| {
        builder()
            .variant(Variant::wgsl("wide", double_wgsl(wide)))
            .variant(
                Variant::cpu::<(Read<f32>, ReadWrite<f32>)>("scalar", |args, _: &()| double(args))
                    .version(cpu_version),
            )
            .build()
            .unwrap()
    };
    let ids = |k: &Kernel| -> Vec<u64> { (0..3).map(|i| k.implementation(i).id()).collect() };
    let a = ids(&make(256, "1"));
    assert_eq!(a.iter().collect::<std::collections::HashSet<_>>().len(), 3);
    assert_eq!(ids(&make(256, "1")), a, "the same code, the same ids");
    let b = ids(&make(128, "1"));
    assert_eq!((b[0], b[2]), (a[0], a[2]));
    assert_ne!(b[1], a[1], "the changed shader has a new identity");
    let c = ids(&make(256, "2"));
    assert_eq!((c[0], c[1]), (a[0], a[1]));
    assert_ne!(c[2], a[2], "the changed CPU code has a new identity");

    let k = make(256, "1");
    assert_eq!(k.variants(), vec!["wide", "scalar"]);
    assert_eq!(k.implementation(1).name(), "double[wide]");
    assert!(k.implementation(1).on_gpu() && !k.implementation(1).has_cpu());
    assert!(!k.implementation(2).on_gpu() && k.implementation(2).has_cpu());
}

#[test]
fn a_cpu_only_runtime_explores_its_cpu_variants_and_names_them() {
    let rt = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .unwrap();
    // A variant that only runs where the device says so: never here.
    let k = builder()
        .variant(Variant::cpu::<(Read<f32>, ReadWrite<f32>)>(
            "scalar",
            |args, _: &()| double(args),
        ))
        .variant(
            Variant::cpu::<(Read<f32>, ReadWrite<f32>)>("nowhere", |_, _: &()| {
                panic!("placed where its predicate said no")
            })
            .can_run(|info| info.name == "no such device"),
        )
        .build()
        .unwrap();
    let xs: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
    let want: Vec<f32> = xs.iter().map(|x| 2.0 * x).collect();
    let x = rt.buffer(&xs);
    for _ in 0..30 {
        let y = rt.buffer(&vec![f32::NAN; xs.len()]);
        let info = rt.execute(Target::Auto, &k, &[&x, &y], &()).unwrap();
        assert_eq!(info.backend, Backend::Cpu);
        assert_eq!(rt.read(&y).unwrap(), want);
    }
    let ran: std::collections::HashSet<Option<String>> =
        rt.decisions().into_iter().map(|d| d.variant).collect();
    assert!(
        ran.contains(&None) && ran.contains(&Some("scalar".to_owned())),
        "{ran:?}"
    );
    assert!(!ran.contains(&Some("nowhere".to_owned())));
    let names: Vec<String> = rt.model_rows().into_iter().map(|r| r.kernel).collect();
    assert!(names.iter().any(|n| n == "double[scalar]"), "{names:?}");
    let explained = rt.explain(&k, &[&x, &x], &()).map(|d| d.to_string());
    // The same buffer twice, one written: refused before placement.
    assert!(explained.is_err());
    let y = rt.zeros::<f32>(xs.len());
    let shown = rt.explain(&k, &[&x, &y], &()).unwrap().to_string();
    assert!(shown.contains("cpu[scalar]"), "{shown}");
}

#[test]
fn a_kernel_alone_never_runs_a_variant_remembered_for_its_kernel() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static OWN_RUNS: AtomicUsize = AtomicUsize::new(0);
    let rt = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .unwrap();
    // The own implementation is far slower: once calibrated, every call
    // of the kernel runs the variant, and its decision is remembered.
    let k = Kernel::builder("double", double_wgsl(64))
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| {
            OWN_RUNS.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(2));
            double(args)
        })
        .variant(Variant::cpu::<(Read<f32>, ReadWrite<f32>)>(
            "fast",
            |args, _: &()| double(args),
        ))
        .build()
        .unwrap();
    let xs: Vec<f32> = (0..37).map(|i| i as f32).collect();
    let want: Vec<f32> = xs.iter().map(|x| 2.0 * x).collect();
    let (x, y) = (rt.buffer(&xs), rt.zeros::<f32>(xs.len()));
    for _ in 0..40 {
        rt.execute(Target::Auto, &k, &[&x, &y], &()).unwrap();
    }
    let last = rt.decisions().pop().unwrap();
    assert_eq!(last.variant.as_deref(), Some("fast"), "{last}");
    // The kernel alone has the kernel's id but no variant: it runs its
    // own code, at the same call the kernel's decision was made for.
    let alone = k.alone();
    for target in [Target::Auto, Target::On(Backend::Cpu)] {
        let before = OWN_RUNS.load(Ordering::Relaxed);
        let y = rt.buffer(&vec![f32::NAN; xs.len()]);
        rt.execute(target, &alone, &[&x, &y], &()).unwrap();
        assert_eq!(rt.read(&y).unwrap(), want);
        assert_eq!(OWN_RUNS.load(Ordering::Relaxed), before + 1, "{target:?}");
    }
}
