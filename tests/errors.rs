//! Bad input gets a typed error whose message a user can act on: never a
//! panic, never a silent wrong answer.

mod common;

use pel::kernels::{Matmul, Saxpy, Sum};
use pel::{Backend, Error, Kernel, Read, ReadWrite, Runtime, Signature, Target};

/// `err` says a kernel wanted 2 arguments and got 1.
fn assert_two_args_not_one(err: &Error) {
    assert!(
        matches!(
            err,
            Error::ArgCount {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

/// `dst = src` over f32 arrays.
fn copy_shader() -> String {
    common::map_shader(("src", "f32"), ("dst", "f32"), "src[i]")
}

fn copy_kernel() -> Kernel {
    Kernel::builder("copy", copy_shader())
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| {
            let (src, dst) = args.split();
            dst.copy_from_slice(src);
        })
        .build()
        .expect("the copy kernel builds")
}

/// Why the copy kernel does not build with a CPU side of signature `S`.
fn copy_with_cpu<S: Signature>() -> Error {
    Kernel::builder("copy", copy_shader())
        .cpu::<S>(|_, _| {})
        .build()
        .expect_err("the signature does not match the shader")
}

#[test]
fn invalid_wgsl_names_kernel_line_and_column() {
    let src = "@compute @workgroup_size(64)\nfn main() {\n    let x: f32 = 1u;\n}\n";
    let err = Kernel::builder("broken", src)
        .cpu::<()>(|_, _| {})
        .build()
        .unwrap_err();
    match &err {
        Error::InvalidShader {
            kernel,
            line,
            column,
            ..
        } => {
            assert_eq!(kernel, "broken");
            assert_eq!(*line, 3, "{err}");
            assert!(*column > 0, "{err}");
        }
        other => panic!("expected InvalidShader, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("broken") && msg.contains("line 3"), "{msg}");

    let err = Kernel::builder("syntax", "fn main( {")
        .cpu::<()>(|_, _| {})
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidShader { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn missing_entry_point_lists_the_ones_there() {
    let err = Kernel::builder("copy", copy_shader())
        .entry("nope")
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|_, _| {})
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::NoEntryPoint { .. }), "{err:?}");
    assert!(msg.contains("nope") && msg.contains("main"), "{msg}");
}

#[test]
fn cpu_signature_is_checked_when_the_kernel_is_built() {
    assert_two_args_not_one(&copy_with_cpu::<(Read<f32>,)>());

    let err = copy_with_cpu::<(Read<f32>, ReadWrite<u32>)>();
    assert!(
        matches!(&err, Error::ArgType { index: 1, name, .. } if name == "dst"),
        "{err:?}"
    );
    assert!(err.to_string().contains("array<f32>"), "{err}");

    let err = copy_with_cpu::<(ReadWrite<f32>, ReadWrite<f32>)>();
    assert!(
        matches!(&err, Error::ArgAccess { index: 0, name, .. } if name == "src"),
        "{err:?}"
    );
}

#[test]
fn a_kernel_without_cpu_runs_on_gpus_only() {
    let kernel = Kernel::builder("copy", copy_shader())
        .build()
        .expect("a kernel needs no CPU implementation");
    assert!(!kernel.has_cpu());
    let rt = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .unwrap();
    let (src, dst) = (rt.buffer(&[1.0f32; 3]), rt.zeros::<f32>(3));
    let err = rt
        .run_on(Backend::Cpu, &kernel, &[&src, &dst], &())
        .unwrap_err();
    assert!(
        matches!(&err, Error::NoCpuImplementation { kernel } if kernel == "copy"),
        "{err:?}"
    );
    assert!(err.to_string().contains(".cpu("), "{err}");

    let err = Kernel::builder("copy", copy_shader())
        .splittable(|_: &(), lens| lens[1] as u64, |_, _| ())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::SplittableWithoutCpu { kernel } if kernel == "copy"),
        "{err:?}"
    );
}

#[test]
fn builder_calls_come_in_any_order() {
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Scale {
        a: f32,
        n: u32,
    }
    // Saxpy's WGSL with a CPU closure that ignores the params (written for
    // `()`), given before `.params()`: kept, and run ignoring them.
    let kernel = Kernel::builder("saxpy", pel::kernels::saxpy::WGSL)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y += x;
            }
        })
        .params::<Scale>()
        .build()
        .expect("a () closure carries over to later params");
    let rt = Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .unwrap();
    let (x, y) = (rt.buffer(&[1.0f32, 2.0, 3.0]), rt.buffer(&[10.0f32; 3]));
    rt.run_on(Backend::Cpu, &kernel, &[&x, &y], &Scale { a: 1.0, n: 3 })
        .unwrap();
    assert_eq!(rt.read(&y).unwrap(), vec![11.0, 12.0, 13.0]);

    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Wrong {
        a: f32,
        n: u32,
    }
    let err = Kernel::builder("saxpy", pel::kernels::saxpy::WGSL)
        .params::<Wrong>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|_, _| {})
        .params::<Scale>()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Params { kernel, message }
            if kernel == "saxpy" && message.contains("Wrong") && message.contains("Scale") && message.contains("`.cpu(...)`")),
        "{err}"
    );
}

#[test]
fn params_size_is_checked_against_the_uniform() {
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct TooBig {
        a: f32,
        n: u32,
        extra: u32,
    }
    let err = Kernel::builder("saxpy", pel::kernels::saxpy::WGSL)
        .params::<TooBig>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|_, _| {})
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Params { .. }), "{err:?}");
    assert!(msg.contains("8 bytes") && msg.contains("12 bytes"), "{msg}");

    // A kernel without a uniform takes no params.
    let err = Kernel::builder("copy", copy_shader())
        .params::<TooBig>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|_, _| {})
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Params { .. }), "{err:?}");
}

#[test]
fn unsupported_bindings_are_refused_with_the_reason() {
    let src = r#"
@group(1) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(1) fn main() { x[0] = 1.0; }
"#;
    let err = Kernel::builder("g1", src)
        .cpu::<(ReadWrite<f32>,)>(|_, _| {})
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedBinding { group: 1, .. }),
        "{err:?}"
    );

    let src = r#"
@group(0) @binding(0) var<storage, read_write> x: array<f32, 4>;
@compute @workgroup_size(1) fn main() { x[0] = 1.0; }
"#;
    let err = Kernel::builder("fixed", src)
        .cpu::<(ReadWrite<f32>,)>(|_, _| {})
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("runtime-sized"), "{err}");
}

#[test]
fn calls_with_wrong_arguments_are_refused() {
    let rt = common::rt();
    let copy = copy_kernel();
    let a = rt.buffer(&[1.0f32, 2.0]);
    let b = rt.zeros::<f32>(2);
    let u = rt.zeros::<u32>(2);

    let err = rt.run_on(Backend::Cpu, &copy, &[&a], &()).unwrap_err();
    assert_two_args_not_one(&err);

    let err = rt.run_on(Backend::Cpu, &copy, &[&a, &u], &()).unwrap_err();
    assert!(matches!(&err, Error::ArgType { index: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("u32"), "{err}");

    let err = rt.run_on(Backend::Cpu, &copy, &[&b, &b], &()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::AliasedArguments {
                first: 0,
                second: 1,
                ..
            }
        ),
        "{err:?}"
    );

    let err = rt
        .run_on(Backend::Cpu, &copy, &[&a, &b], &7u32)
        .unwrap_err();
    assert!(matches!(err, Error::Params { .. }), "{err:?}");

    let err = rt
        .run_on(Backend::Gpu(99), &copy, &[&a, &b], &())
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchBackend { .. }), "{err:?}");
    assert!(err.to_string().contains("gpu99"), "{err}");

    // None of that touched the data.
    assert_eq!(rt.read(&b).unwrap(), vec![0.0, 0.0]);
}

#[test]
fn a_buffer_of_another_runtime_is_refused() {
    let rt = common::rt();
    let other = Runtime::builder().gpu(false).build().unwrap();
    let copy = copy_kernel();
    let mine = rt.zeros::<f32>(4);
    let theirs = other.buffer(&[1.0f32; 4]);
    let err = rt
        .run_on(Backend::Cpu, &copy, &[&theirs, &mine], &())
        .unwrap_err();
    assert!(
        matches!(err, Error::ForeignBuffer { index: 0, .. }),
        "{err:?}"
    );
    assert!(matches!(
        rt.read(&theirs).unwrap_err(),
        Error::ForeignBuffer { .. }
    ));
}

#[test]
fn sample_kernels_refuse_mismatched_sizes() {
    let rt = common::rt();
    let saxpy = Saxpy::new().unwrap();
    let x = rt.zeros::<f32>(10);
    let y = rt.zeros::<f32>(11);
    let err = saxpy.run(rt, Target::Auto, 1.0, &x, &y).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { arg, .. } if arg == "y"),
        "{err:?}"
    );

    let matmul = Matmul::new().unwrap();
    let a = rt.zeros::<f32>(6);
    let b = rt.zeros::<f32>(6);
    let c = rt.zeros::<f32>(5);
    let err = matmul
        .run(rt, Target::Auto, &a, &b, &c, 2, 2, 3)
        .unwrap_err();
    assert!(err.to_string().contains("2×2 = 4"), "{err}");
    // Dimensions whose product overflows are an error, not a wrap-around.
    let err = matmul
        .run(rt, Target::Auto, &a, &b, &c, usize::MAX, 2, 3)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");

    let sum = Sum::new().unwrap();
    let out = rt.zeros::<f32>(2);
    let err = sum.run(rt, Target::Auto, &x, &out).unwrap_err();
    assert!(err.to_string().contains("exactly 1"), "{err}");

    let err = rt.write(&x, &[1.0; 3]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
}

#[test]
fn a_panicking_cpu_kernel_is_an_error_and_the_runtime_goes_on() {
    let rt = common::rt();
    let bomb = Kernel::builder("bomb", copy_shader())
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| {
            let (src, _) = args.split();
            if src[0] < 0.0 {
                panic!("negative input {}", src[0]);
            }
        })
        .build()
        .unwrap();
    let a = rt.buffer(&[-1.0f32]);
    let b = rt.zeros::<f32>(1);
    let err = rt.run_on(Backend::Cpu, &bomb, &[&a, &b], &()).unwrap_err();
    match &err {
        Error::KernelPanicked { kernel, message } => {
            assert_eq!(kernel, "bomb");
            assert!(message.contains("negative input -1"), "{message}");
        }
        other => panic!("expected KernelPanicked, got {other:?}"),
    }
    // Still usable.
    let copy = copy_kernel();
    rt.run_on(Backend::Cpu, &copy, &[&a, &b], &()).unwrap();
    assert_eq!(rt.read(&b).unwrap(), vec![-1.0]);
}

#[test]
fn an_argument_over_the_storage_binding_limit_is_refused() {
    let rt = common::rt();
    for gpu in common::gpus(rt, "an_argument_over_the_storage_binding_limit_is_refused") {
        let limit = rt.device(gpu).unwrap().limits.unwrap().max_storage_binding;
        if limit >= 1 << 31 {
            eprintln!("{gpu}: binding limit {limit} too large to exceed in a test; skipped");
            continue;
        }
        let elems = (limit / 4 + 1) as usize;
        let copy = copy_kernel();
        // Zeros cost nothing until used: the refusal comes before any copy.
        let big = rt.zeros::<f32>(elems);
        let out = rt.zeros::<f32>(elems);
        let err = rt.run_on(gpu, &copy, &[&big, &out], &()).unwrap_err();
        match &err {
            Error::BindingTooLarge {
                index,
                size,
                limit: l,
                ..
            } => {
                assert_eq!(*index, 0);
                assert_eq!(*size, elems as u64 * 4);
                assert_eq!(*l, limit);
            }
            other => panic!("expected BindingTooLarge, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&limit.to_string()) && msg.contains("copy"),
            "{msg}"
        );
    }
}

/// Valid WGSL (naga accepts it) that no adapter here runs: 64 storage
/// buffers in one shader stage, more than either adapter binds (32 and 16),
/// which wgpu's validation refuses with a message of several lines. pel does
/// not check this limit before launch: the device's refusal is the test.
fn many_bindings() -> String {
    let mut wgsl = String::new();
    for b in 0..63 {
        wgsl += &format!("@group(0) @binding({b}) var<storage, read> in{b}: array<f32>;\n");
    }
    wgsl += "@group(0) @binding(63) var<storage, read_write> dst: array<f32>;\n";
    wgsl +=
        "@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n";
    wgsl += "    if id.x < arrayLength(&dst) {\n        var s = 0.0;\n";
    for b in 0..63 {
        wgsl += &format!("        s += in{b}[id.x];\n");
    }
    wgsl += "        dst[id.x] = s;\n    }\n}\n";
    wgsl
}

#[test]
fn a_shader_the_gpu_rejects_is_a_one_line_error() {
    let rt = common::rt();
    // GPU-only: its CPU signature could not have 64 arguments.
    let kernel = Kernel::builder("many_bindings", many_bindings())
        .build()
        .expect("naga accepts the shader");
    for gpu in common::gpus(rt, "a_shader_the_gpu_rejects_is_a_one_line_error") {
        let bufs: Vec<_> = (0..64).map(|_| rt.zeros::<f32>(64)).collect();
        let args: Vec<&dyn pel::BufferArg> =
            bufs.iter().map(|b| b as &dyn pel::BufferArg).collect();
        let err = match rt.run_on(gpu, &kernel, &args, &()) {
            Err(e) => e,
            Ok(info) => panic!("{gpu} bound 64 storage buffers: {info:?}"),
        };
        eprintln!("{gpu}: {err}");
        assert!(
            matches!(err, Error::Gpu { .. }),
            "{gpu}: expected a wgpu error, got {err:?}"
        );
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{gpu}: more than one line: {msg:?}");
        assert!(
            !msg.contains("  "),
            "{gpu}: whitespace not collapsed: {msg:?}"
        );
        assert!(msg.contains("many_bindings"), "{msg}");
    }
}
