//! The builder's order-freedom, kernels without a CPU implementation, and
//! params too large for a thread's stack.

use super::*;
use crate::{Backend, Runtime, Target};

/// `y[i] = 2 * x[i]` for `i < p.n`: the uniform is read by the shader only
/// through `n`, so a CPU closure written for `()` computes the same thing.
const DOUBLE: &str = r#"
struct Len { n: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Len;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < p.n { y[id.x] = 2.0 * x[id.x]; }
}
"#;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Len {
    n: u32,
}

/// Another 4-byte params type, to mismatch [`Len`].
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Other {
    m: u32,
}

fn cpu_runtime() -> Runtime {
    Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .expect("a CPU-only runtime starts")
}

fn double(args: CpuArgs<'_, (Read<f32>, ReadWrite<f32>)>) {
    let (x, y) = args.split();
    for (y, x) in y.iter_mut().zip(x) {
        *y = 2.0 * x;
    }
}

#[test]
fn closures_given_before_params_are_kept_and_run() {
    let kernel = Kernel::builder("double", DOUBLE)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| double(args))
        .invocations(|_: &(), lens| lens[1] as u64)
        .cost(|_: &(), _| 42)
        .params::<Len>()
        .build()
        .expect("closures written for () carry over to Len");
    assert!(kernel.has_cpu());
    assert_eq!(kernel.cost(bytemuck::bytes_of(&Len { n: 5 }), &[5, 5]), 42);
    assert_eq!(
        kernel.workgroups(bytemuck::bytes_of(&Len { n: 130 }), &[130, 130]),
        3
    );

    let rt = cpu_runtime();
    let xs: Vec<f32> = (0..67).map(|i| i as f32 - 3.5).collect();
    let x = rt.buffer(&xs);
    let y = rt.buffer(&vec![f32::NAN; xs.len()]);
    rt.run_on(Backend::Cpu, &kernel, &[&x, &y], &Len { n: 67 })
        .expect("the kept closure runs");
    let want: Vec<f32> = xs.iter().map(|x| 2.0 * x).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
}

#[test]
fn the_same_params_given_twice_keeps_typed_closures() {
    let kernel = Kernel::builder("double", DOUBLE)
        .params::<Len>()
        .cost(|p, _| p.n as u64 * 3)
        .params::<Len>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| double(args))
        .build()
        .expect("a closure written for Len fits Len");
    assert_eq!(kernel.cost(bytemuck::bytes_of(&Len { n: 5 }), &[5, 5]), 15);
}

#[test]
fn a_closure_written_for_other_params_is_a_typed_error() {
    type Step = fn(KernelBuilder<Other>) -> KernelBuilder<Other>;
    let steps: [(&str, Step); 5] = [
        ("cpu", |b| {
            b.cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| double(args))
        }),
        ("invocations", |b| b.invocations(|p, _| p.m as u64)),
        ("workgroups", |b| b.workgroups(|p, _| p.m as u64)),
        ("cost", |b| b.cost(|p, _| p.m as u64)),
        ("splittable", |b| b.splittable(|p, _| p.m as u64, |p, _| *p)),
    ];
    for (call, step) in steps {
        let stale = step(Kernel::builder("double", DOUBLE).params::<Other>()).params::<Len>();
        // A `.cpu()` given after `.params::<Len>()` would replace a stale
        // one, so only the other calls get a fresh one.
        let builder = if call == "cpu" {
            stale
        } else {
            stale.cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| double(args))
        };
        let err = builder.build().unwrap_err();
        let Error::Params { kernel, message } = &err else {
            panic!("{call}: expected Error::Params, got {err:?}");
        };
        assert_eq!(kernel, "double");
        for part in [&format!("`.{call}(...)`"), "Other", "Len"] {
            assert!(message.contains(part), "{call}: {err}");
        }
    }
}

#[test]
fn a_split_written_for_unit_cannot_serve_later_params() {
    let err = Kernel::builder("double", DOUBLE)
        .splittable(|_: &(), lens| lens[1] as u64, |_: &(), _| ())
        .params::<Len>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _| double(args))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Params { message, .. } if message.contains("`.splittable(...)`") && message.contains("`part`")),
        "{err}"
    );
}

#[test]
fn a_kernel_without_cpu_builds_and_refuses_the_cpu() {
    let kernel = Kernel::builder("double", DOUBLE)
        .params::<Len>()
        .build()
        .expect("a GPU-only kernel builds");
    assert!(!kernel.has_cpu());
    let err = kernel
        .run_cpu(&[], bytemuck::bytes_of(&Len { n: 0 }))
        .unwrap_err();
    assert_eq!(
        err,
        Error::NoCpuImplementation {
            kernel: "double".to_owned()
        }
    );
    assert!(err.to_string().contains("GPUs only"), "{err}");

    let rt = cpu_runtime();
    let (x, y) = (rt.buffer(&[1.0f32; 4]), rt.zeros::<f32>(4));
    let err = rt
        .run_on(Backend::Cpu, &kernel, &[&x, &y], &Len { n: 4 })
        .unwrap_err();
    assert!(matches!(err, Error::NoCpuImplementation { .. }), "{err:?}");
}

#[test]
fn a_splittable_kernel_needs_a_cpu_implementation() {
    let err = Kernel::builder("double", DOUBLE)
        .params::<Len>()
        .splittable(
            |p, _| p.n as u64,
            |p, r| Len {
                n: p.n.min(r.end as u32),
            },
        )
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        Error::SplittableWithoutCpu {
            kernel: "double".to_owned()
        }
    );
}

#[test]
fn params_decode_from_misaligned_and_empty_bytes() {
    let mut bytes = vec![0u8; 9];
    bytes[1..5].copy_from_slice(&7u32.to_ne_bytes());
    bytes[5..9].copy_from_slice(&9u32.to_ne_bytes());
    // `bytes[1..]` is misaligned for `[u32; 2]` whatever the allocator does.
    assert_eq!(with_params(&bytes[1..], |p: &[u32; 2]| *p), [7, 9]);
    // A closure written for `()` ignores whatever params the kernel has.
    assert_eq!(with_params(&bytes, |_: &()| 1), 1);
}

/// 4 MiB of params: larger than a thread's default stack.
const BIG_WORDS: usize = 4096 * 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Big {
    v: [[u32; 4096]; 256],
}

fn big_params() -> Box<Big> {
    let mut big: Box<Big> = bytemuck::allocation::zeroed_box();
    for (i, w) in bytemuck::cast_slice_mut::<_, u32>(&mut big.v)
        .iter_mut()
        .enumerate()
    {
        *w = (i as u32).wrapping_mul(2_654_435_761);
    }
    big
}

/// Runs `f` on a thread with a 1 MiB stack, where decoding the params on
/// the stack would overflow it.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(f)
        .expect("a thread starts")
        .join()
        .expect("the test body does not panic");
}

#[test]
fn large_params_are_decoded_off_the_stack() {
    on_small_stack(|| {
        let big = big_params();
        let mut bytes = vec![0u8; std::mem::size_of::<Big>() + 1];
        bytes[1..].copy_from_slice(bytemuck::bytes_of(&*big));
        let last = with_params(&bytes[1..], |p: &Big| p.v[255][4095]);
        assert_eq!(last, big.v[255][4095]);
    });
}

#[test]
fn a_kernel_with_megabytes_of_params_runs_on_the_cpu() {
    let wgsl = format!(
        r#"
        struct Big {{ v: array<vec4<u32>, {}> }}
        @group(0) @binding(0) var<storage, read_write> y: array<u32>;
        @group(0) @binding(1) var<uniform> p: Big;
        @compute @workgroup_size(64)
        fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
            let i = id.x;
            if i < arrayLength(&y) {{ y[i] = p.v[i / 4u][i % 4u] + 1u; }}
        }}"#,
        BIG_WORDS / 4
    );
    let kernel = Kernel::builder("big", wgsl)
        .params::<Big>()
        .cpu::<(ReadWrite<u32>,)>(|args, p| {
            let (y,) = args.split();
            let words: &[u32] = bytemuck::cast_slice(&p.v);
            for (y, w) in y.iter_mut().zip(words) {
                *y = w.wrapping_add(1);
            }
        })
        .build()
        .expect("a 4 MiB uniform builds");
    assert_eq!(
        kernel
            .reflection()
            .uniform
            .as_ref()
            .map(|u| u.size as usize),
        Some(std::mem::size_of::<Big>())
    );

    on_small_stack(move || {
        let rt = cpu_runtime();
        let big = big_params();
        let words: &[u32] = bytemuck::cast_slice(&big.v);
        let want: Vec<u32> = words[..1000].iter().map(|w| w.wrapping_add(1)).collect();

        // On this thread (`run_on` runs CPU kernels on the caller).
        let y = rt.zeros::<u32>(1000);
        rt.run_on(Backend::Cpu, &kernel, &[&y], &*big)
            .expect("runs on the caller's small stack");
        assert_eq!(rt.read(&y).unwrap(), want);

        // On a worker thread, with its default stack.
        let y = rt.zeros::<u32>(1000);
        rt.submit_to(Target::On(Backend::Cpu), &kernel, &[&y], &*big)
            .expect("submitted")
            .wait()
            .expect("runs on a worker's stack");
        assert_eq!(rt.read(&y).unwrap(), want);
    });
}
