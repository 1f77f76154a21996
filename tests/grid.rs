//! Launches past 65,535 workgroups, which pel folds into a 2-D grid: a
//! shader that indexes with `pel_index` is right on every backend; one that
//! cannot unfold the grid, or would read a wrong `arrayLength`, or asks for
//! a workgroup no GPU runs, gets a typed error on a GPU and runs on the CPU
//! when pel places it. Outputs are poisoned before every run and checked
//! against a serial reference.

mod common;

use pel::{Backend, Error, Kernel, Read, ReadWrite, Target};
use rand::{Rng, SeedableRng};

/// The most workgroups a GPU dispatches in one dimension (WebGPU's default
/// `max_compute_workgroups_per_dimension`, which every adapter here has).
const PER_DIM: usize = 65_535;

/// Elements that need more than [`PER_DIM`] workgroups of `invocations`,
/// with a ragged last workgroup.
fn folded_len(invocations: usize) -> usize {
    (PER_DIM + 1) * invocations + 7
}

/// Every backend: the CPU and each GPU (a loud skip of the GPUs if none).
fn backends(test: &str) -> Vec<Backend> {
    let rt = common::rt();
    std::iter::once(Backend::Cpu)
        .chain(common::gpus(rt, test))
        .collect()
}

/// The README's kernel, from the file the README mirrors and the example reads.
const README_WGSL: &str = include_str!("../examples/custom_kernel.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ClampParams {
    limit: f32,
    n: u32,
}

fn clamped_square(x: f32, limit: f32) -> f32 {
    (x * x - 1.0).clamp(-limit, limit)
}

#[test]
fn the_readme_kernel_is_right_past_65535_workgroups_on_every_backend() {
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("r#\"\n{README_WGSL}\"#")),
        "the README's WGSL differs from examples/custom_kernel.wgsl"
    );
    let rt = common::rt();
    let kernel = Kernel::builder("clamped_square", README_WGSL)
        .params::<ClampParams>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
            let (x, y) = args.split();
            for (y, &x) in y.iter_mut().zip(x) {
                *y = clamped_square(x, p.limit);
            }
        })
        .build()
        .expect("the README's kernel builds");
    assert_eq!(kernel.reflection().workgroup_size, [256, 1, 1]);
    let n = folded_len(256);
    let mut rng = rand::rngs::StdRng::seed_from_u64(65_536);
    let input: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let params = ClampParams {
        limit: 0.75,
        n: n as u32,
    };
    let want: Vec<f32> = input.iter().map(|&x| clamped_square(x, 0.75)).collect();
    let x = rt.buffer(&input);
    for backend in backends("the_readme_kernel_is_right_past_65535_workgroups") {
        let y = rt.buffer(&vec![f32::NAN; n]);
        let info = rt
            .run_on(backend, &kernel, &[&x, &y], &params)
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert_eq!(info.backend, backend);
        let got = rt.read(&y).unwrap();
        let wrong = got
            .iter()
            .zip(&want)
            // A NaN (never written) is as wrong as a wrong number.
            .position(|(g, w)| g.is_nan() || (g - w).abs() > 1e-6);
        assert_eq!(
            wrong, None,
            "{backend}: first wrong element of {n} (poisoned NaN: never written)"
        );
    }
}

/// A `pel_index` kernel with this `@workgroup_size`: `y[i] = x[i] ^ hash(i)`.
fn indexed(workgroup_size: &str) -> Kernel {
    let wgsl = format!(
        "
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;

@compute @workgroup_size({workgroup_size})
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {{
    let i = pel_index(id, groups);
    if i < arrayLength(&y) {{ y[i] = x[i] ^ (i * 2654435761u); }}
}}
"
    );
    Kernel::builder(format!("indexed_{workgroup_size}"), wgsl)
        .cpu::<(Read<u32>, ReadWrite<u32>)>(|args, _: &()| {
            let (x, y) = args.split();
            for (i, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                *y = x ^ (i as u32).wrapping_mul(2_654_435_761);
            }
        })
        .build()
        .expect("the pel_index kernel builds")
}

#[test]
fn pel_index_is_right_past_65535_workgroups_for_every_workgroup_shape() {
    let rt = common::rt();
    let backends = backends("pel_index_is_right_past_65535_workgroups");
    for shape in ["64", "256", "8, 8", "4, 2, 8"] {
        let kernel = indexed(shape);
        assert!(kernel.reflection().prelude && kernel.reflection().unfolds_grid);
        let n = folded_len(kernel.reflection().workgroup_invocations() as usize);
        let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
        let input: Vec<u32> = (0..n).map(|_| rng.random()).collect();
        let want: Vec<u32> = input
            .iter()
            .enumerate()
            .map(|(i, &x)| x ^ (i as u32).wrapping_mul(2_654_435_761))
            .collect();
        let x = rt.buffer(&input);
        for &backend in &backends {
            // Poison: no element of the answer is ever this for long.
            let y = rt.buffer(&vec![0xdead_beefu32; n]);
            rt.run_on(backend, &kernel, &[&x, &y], &())
                .unwrap_or_else(|e| panic!("@workgroup_size({shape}) on {backend}: {e}"));
            let got = rt.read(&y).unwrap();
            let wrong = got.iter().zip(&want).filter(|(g, w)| g != w).count();
            assert_eq!(
                wrong, 0,
                "@workgroup_size({shape}) on {backend}: {wrong} of {n} elements wrong"
            );
        }
    }
}

/// `y[i] = x[i] + 1` indexed by `id.x` alone: right only while the launch
/// is not folded.
const PLAIN: &str = "
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if i < arrayLength(&y) { y[i] = x[i] + 1.0; }
}
";

fn plain() -> Kernel {
    Kernel::builder("plain_index", PLAIN)
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, _: &()| {
            let (x, y) = args.split();
            for (y, x) in y.iter_mut().zip(x) {
                *y = x + 1.0;
            }
        })
        .build()
        .expect("the plain kernel builds")
}

#[test]
fn a_shader_that_cannot_unfold_is_refused_on_a_gpu_and_placed_on_the_cpu() {
    let rt = common::rt();
    let kernel = plain();
    assert!(!kernel.reflection().unfolds_grid);
    let n = folded_len(64);
    let input: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let x = rt.buffer(&input);
    for gpu in common::gpus(rt, "a_shader_that_cannot_unfold_is_refused") {
        let y = rt.buffer(&vec![f32::NAN; n]);
        let err = rt.run_on(gpu, &kernel, &[&x, &y], &()).unwrap_err();
        assert!(
            matches!(&err, Error::GridNotUnfolded { kernel, workgroups, per_dim, .. }
                if kernel == "plain_index" && *workgroups == n.div_ceil(64) as u64 && *per_dim as usize == PER_DIM),
            "{gpu}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("num_workgroups") && msg.contains("pel_index(id, groups)"),
            "{msg}"
        );
        // Not folded, the same shader is right on the GPU.
        let small = rt.buffer(&input[..1000]);
        let out = rt.buffer(&[f32::NAN; 1000]);
        rt.run_on(gpu, &kernel, &[&small, &out], &()).unwrap();
        assert!(
            rt.read(&out)
                .unwrap()
                .iter()
                .zip(&input)
                .all(|(y, x)| *y == x + 1.0)
        );
    }
    let y = rt.buffer(&vec![f32::NAN; n]);
    let info = rt.run(&kernel, &[&x, &y], &()).unwrap();
    assert_eq!(info.backend, Backend::Cpu, "only the CPU can run it right");
    let got = rt.read(&y).unwrap();
    assert!(got.iter().zip(&input).all(|(y, x)| *y == x + 1.0));
}

/// `y[i] = arrayLength(&x)`: 0 for an empty `x`, which no GPU can bind.
fn length_shader() -> String {
    common::map_shader(("x", "f32"), ("y", "u32"), "arrayLength(&x)")
}

#[test]
fn an_empty_buffer_measured_by_array_length_is_refused_on_a_gpu_and_placed_on_the_cpu() {
    let rt = common::rt();
    let kernel = Kernel::builder("length", length_shader())
        .cpu::<(Read<f32>, ReadWrite<u32>)>(|args, _: &()| {
            let (x, y) = args.split();
            y.fill(x.len() as u32);
        })
        .build()
        .unwrap();
    assert!(kernel.reflection().storage.iter().all(|s| s.array_length));
    let empty = rt.buffer::<f32>(&[]);
    let five = rt.buffer(&[1.0f32; 5]);
    for gpu in common::gpus(rt, "an_empty_buffer_measured_by_array_length") {
        let y = rt.buffer(&[u32::MAX; 100]);
        let err = rt.run_on(gpu, &kernel, &[&empty, &y], &()).unwrap_err();
        assert!(
            matches!(&err, Error::EmptyArrayLength { index: 0, name, .. } if name == "x"),
            "{gpu}: {err:?}"
        );
        assert!(err.to_string().contains("arrayLength"), "{err}");
        rt.run_on(gpu, &kernel, &[&five, &y], &()).unwrap();
        assert_eq!(rt.read(&y).unwrap(), vec![5; 100], "{gpu}");
        // No output: no workgroups, nothing runs, nothing to refuse.
        let none = rt.buffer::<u32>(&[]);
        rt.run_on(gpu, &kernel, &[&empty, &none], &()).unwrap();
    }
    let y = rt.buffer(&[u32::MAX; 100]);
    let info = rt.run(&kernel, &[&empty, &y], &()).unwrap();
    assert_eq!(info.backend, Backend::Cpu);
    assert_eq!(rt.read(&y).unwrap(), vec![0; 100]);
}

#[test]
fn a_workgroup_larger_than_any_gpu_runs_is_refused_there_and_placed_on_the_cpu() {
    let rt = common::rt();
    let kernel = Kernel::builder(
        "huge_workgroup",
        "
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1024, 1024)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < arrayLength(&y) { y[i] = 2.0; }
}
",
    )
    .cpu::<(ReadWrite<f32>,)>(|args, _: &()| {
        let (y,) = args.split();
        y.fill(2.0);
    })
    .build()
    .unwrap();
    for gpu in common::gpus(rt, "a_workgroup_larger_than_any_gpu_runs") {
        let y = rt.zeros::<f32>(4096);
        let err = rt.run_on(gpu, &kernel, &[&y], &()).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::WorkgroupTooLarge {
                    size: [1024, 1024, 1],
                    invocations: 1_048_576,
                    ..
                }
            ),
            "{gpu}: {err:?}"
        );
        assert!(
            err.to_string().contains("@workgroup_size(1024, 1024, 1)"),
            "{err}"
        );
        let err = rt
            .submit_to(Target::On(gpu), &kernel, &[&y], &())
            .and_then(|t| t.wait())
            .unwrap_err();
        assert!(
            matches!(err, Error::WorkgroupTooLarge { .. }),
            "{gpu}: {err:?}"
        );
    }
    for call in 0..40 {
        let y = rt.buffer(&[f32::NAN; 4096]);
        let info = rt
            .run(&kernel, &[&y], &())
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(info.backend, Backend::Cpu, "call {call}");
        assert!(
            rt.read(&y).unwrap().iter().all(|&v| v == 2.0),
            "call {call}"
        );
    }
}

#[test]
fn workgroup_memory_over_the_limit_is_refused_there_and_placed_on_the_cpu() {
    let rt = common::rt();
    // 4 MiB of workgroup memory: naga accepts it, and some drivers run it
    // without a word, but no device offers that much per workgroup.
    let kernel = Kernel::builder(
        "greedy_workgroup",
        "
var<workgroup> scratch: array<f32, 1048576>;
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(local_invocation_index) li: u32,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    scratch[li] = 3.0;
    workgroupBarrier();
    if i < arrayLength(&y) { y[i] = scratch[li]; }
}
",
    )
    .cpu::<(ReadWrite<f32>,)>(|args, _: &()| {
        let (y,) = args.split();
        y.fill(3.0);
    })
    .build()
    .unwrap();
    assert_eq!(kernel.reflection().workgroup_memory, 4 << 20);
    for gpu in common::gpus(rt, "workgroup_memory_over_the_limit") {
        let y = rt.zeros::<f32>(256);
        let err = rt.run_on(gpu, &kernel, &[&y], &()).unwrap_err();
        assert!(
            matches!(&err, Error::WorkgroupMemoryTooLarge { bytes: 4194304, .. }),
            "{gpu}: {err:?}"
        );
    }
    for call in 0..10 {
        let y = rt.buffer(&[f32::NAN; 256]);
        let info = rt.run(&kernel, &[&y], &()).unwrap();
        assert_eq!(info.backend, Backend::Cpu, "call {call}");
        assert_eq!(rt.read(&y).unwrap(), vec![3.0; 256]);
    }
}

/// Params one past the usual 64 KiB uniform-binding limit.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BigParams {
    table: [[u32; 4]; 4096],
    scale: [u32; 4],
}

#[test]
fn params_past_the_uniform_limit_are_refused_on_a_gpu_and_placed_on_the_cpu() {
    let rt = common::rt();
    let kernel = Kernel::builder(
        "big_params",
        "
struct BigParams { table: array<vec4<u32>, 4096>, scale: vec4<u32> }
@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@group(0) @binding(1) var<uniform> p: BigParams;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = pel_index(id, groups);
    if i < arrayLength(&y) { y[i] = p.table[i % 4096u].x * p.scale.x; }
}
",
    )
    .params::<BigParams>()
    .cpu::<(ReadWrite<u32>,)>(|args, p| {
        let (y,) = args.split();
        for (i, y) in y.iter_mut().enumerate() {
            *y = p.table[i % 4096][0] * p.scale[0];
        }
    })
    .build()
    .unwrap();
    let mut params = BigParams {
        table: [[0; 4]; 4096],
        scale: [3, 0, 0, 0],
    };
    for (i, row) in params.table.iter_mut().enumerate() {
        row[0] = i as u32;
    }
    let size = std::mem::size_of::<BigParams>() as u64;
    for gpu in common::gpus(rt, "params_past_the_uniform_limit") {
        let limit = rt.device(gpu).unwrap().limits.unwrap().max_uniform_binding;
        if size <= limit {
            eprintln!("SKIPPED params check on {gpu}: it binds {limit} bytes of uniform");
            continue;
        }
        let y = rt.zeros::<u32>(100);
        let err = rt.run_on(gpu, &kernel, &[&y], &params).unwrap_err();
        assert!(
            matches!(&err, Error::ParamsTooLarge { size: s, limit: l, .. } if *s == size && *l == limit),
            "{gpu}: {err:?}"
        );
    }
    let y = rt.buffer(&[u32::MAX; 100]);
    rt.run(&kernel, &[&y], &params).unwrap();
    let want: Vec<u32> = (0..100).map(|i| i * 3).collect();
    assert_eq!(rt.read(&y).unwrap(), want);
}
