//! Define your own kernel: a WGSL compute shader plus the same computation in
//! Rust for the CPU, then run it on every backend this machine has.
//!
//! ```text
//! cargo run --release --example custom_kernel
//! ```

use pel::{Kernel, Read, ReadWrite, Runtime};

/// The shader's uniform block, mirrored in Rust. `#[repr(C)]` and `Pod` let
/// pel copy it to the GPU byte for byte; pel checks its size against the WGSL.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Clamp values to [-limit, limit].
    limit: f32,
    /// Elements.
    n: u32,
}

/// The GPU side, in `custom_kernel.wgsl` beside this file. pel reads the
/// bindings from it: `x` is read, `y` is written, both arrays of f32, and `p`
/// is the uniform params block. Its index, `pel_index(id, groups)`, is a
/// function pel supplies: it stays right when a launch of more than 65,535
/// workgroups is folded into a 2-D grid.
const WGSL: &str = include_str!("custom_kernel.wgsl");

fn main() -> anyhow::Result<()> {
    // 1. Start the runtime: a rayon pool plus every usable GPU adapter.
    let rt = Runtime::new()?;

    // 2. Build the kernel once. naga validates the WGSL now, and the CPU
    //    signature (read f32, read-write f32) is checked against it now:
    //    a mismatch is an error here, not at run time.
    let kernel = Kernel::builder("clamped_square", WGSL)
        .params::<Params>()
        .cpu::<(Read<f32>, ReadWrite<f32>)>(|args, p| {
            let (x, y) = args.split();
            for (y, &x) in y.iter_mut().zip(x) {
                *y = (x * x - 1.0).clamp(-p.limit, p.limit);
            }
        })
        .build()?;

    // 3. Buffers start on the host; nothing moves until a kernel needs it.
    let input: Vec<f32> = (0..1_000_000).map(|i| (i as f32).sin() * 2.0).collect();
    let x = rt.buffer(&input);
    let params = Params {
        limit: 0.5,
        n: input.len() as u32,
    };

    // 4. Run it on every backend and check the backends agree.
    let mut results = Vec::new();
    for backend in rt.backends() {
        let y = rt.zeros::<f32>(input.len());
        let info = rt.run_on(backend, &kernel, &[&x, &y], &params)?;
        let out = rt.read(&y)?; // brings the result home if it is on a GPU
        println!(
            "{:<40} {:>9.2} ms   y[12345] = {:.6}",
            rt.device(backend)?.label(),
            info.elapsed.as_secs_f64() * 1e3,
            out[12345]
        );
        results.push(out);
    }
    for r in &results[1..] {
        let worst = r
            .iter()
            .zip(&results[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        anyhow::ensure!(worst <= 1e-5, "backends disagree by {worst}");
    }

    // 5. What moved: x went to each GPU once, and each y came back once.
    println!("{}", rt.stats());
    Ok(())
}
