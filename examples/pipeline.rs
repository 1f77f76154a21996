//! Chain kernels on data that stays where it is computed, and count the
//! bytes that cross the bus.
//!
//! ```text
//! cargo run --release --example pipeline
//! cargo run --release --example pipeline -- --elements 8388608 --chunks 8
//! PEL_GPU_MEMORY_BUDGET=16MiB cargo run --release --example pipeline -- --elements 8388608 --chunks 8
//! ```
//!
//! y = 2x + y, then z = −0.5y + z, then the sum of z: three kernels (the sum
//! takes several passes), all on one device. On a GPU only the inputs go up
//! and four bytes come back; the intermediate vectors never leave it.
//!
//! With `--chunks K` the vectors are cut into K blocks, each its own chain:
//! the working set stays 12 bytes per element while each kernel touches only
//! one block. Under a GPU memory budget smaller than the working set, pel
//! evicts the blocks used least recently (writing back those only the GPU
//! holds) to make room, and the results are the same.

use pel::kernels::{Saxpy, Sum};
use pel::{Backend, Runtime, Target};

fn main() -> anyhow::Result<()> {
    let mut elements: usize = 1 << 22;
    let mut chunks: usize = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            let v = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{name} needs a number"))?;
            Ok(v.parse()?)
        };
        match a.as_str() {
            "--elements" => elements = value("--elements")?,
            "--chunks" => chunks = value("--chunks")?,
            other => anyhow::bail!("unknown argument {other}; try --elements N --chunks K"),
        }
    }
    anyhow::ensure!(
        chunks >= 1 && elements >= chunks,
        "need at least one element per chunk"
    );
    let n = elements / chunks;

    let rt = Runtime::new()?;
    let (saxpy, sum) = (Saxpy::new()?, Sum::new()?);
    // On the first GPU if there is one (to show what stays there), else the CPU.
    let device = rt.gpu_backends().first().copied().unwrap_or(Backend::Cpu);
    let target = Target::On(device);

    // Each chunk's inputs, its buffers, and the expected z and sum.
    struct Chunk {
        want_z: Vec<f32>,
        expected: f64,
        bufs: [pel::Buffer<f32>; 3],
        total: pel::Buffer<f32>,
    }
    let mut blocks = Vec::with_capacity(chunks);
    for c in 0..chunks {
        let x: Vec<f32> = (0..n).map(|i| ((i + c) % 1000) as f32 * 1e-3).collect();
        let y: Vec<f32> = (0..n).map(|i| ((i * 7 + c) % 13) as f32).collect();
        let z: Vec<f32> = vec![1.0; n];
        let want_z: Vec<f32> = (0..n)
            .map(|i| (-0.5f32).mul_add(2.0f32.mul_add(x[i], y[i]), z[i]))
            .collect();
        let expected = want_z.iter().map(|&v| v as f64).sum();
        blocks.push(Chunk {
            want_z,
            expected,
            bufs: [rt.buffer(&x), rt.buffer(&y), rt.buffer(&z)],
            total: rt.zeros::<f32>(1),
        });
    }
    rt.reset_stats();
    // Submitted without waiting: pel orders each chain by what each kernel
    // reads and writes (the second reads y, which the first writes; the sum
    // reads z, which the second writes).
    for b in &blocks {
        let [xb, yb, zb] = &b.bufs;
        saxpy.submit(&rt, target, 2.0, xb, yb)?;
        saxpy.submit(&rt, target, -0.5, yb, zb)?;
        sum.submit(&rt, target, zb, &b.total)?;
    }
    let mut got = 0.0f64;
    let mut expected = 0.0f64;
    for b in &blocks {
        got += rt.read(&b.total)?[0] as f64;
        expected += b.expected;
    }

    let stats = rt.stats();
    println!(
        "on {device}: sum = {got} (expected {expected:.1}), {chunks} chunk(s) of {n} elements"
    );
    println!(
        "bytes moved: {} up in {} transfer(s), {} down in {} transfer(s); the working set is {}",
        pel::human_bytes(stats.upload_bytes),
        stats.uploads,
        pel::human_bytes(stats.download_bytes),
        stats.downloads,
        pel::human_bytes(3 * 4 * (n * chunks) as u64)
    );
    if stats.evictions > 0 {
        println!(
            "evictions: {} GPU copies freed to stay within the memory budget",
            stats.evictions
        );
    }
    println!("where the first chunk's buffers' valid copies are now:");
    let b = &blocks[0];
    for (name, v) in [
        ("x", rt.validity(&b.bufs[0])?),
        ("y", rt.validity(&b.bufs[1])?),
        ("z", rt.validity(&b.bufs[2])?),
        ("sum", rt.validity(&b.total)?),
    ] {
        println!("  {name:<4} {}", v.describe());
    }
    // Every element of every z, not only the sums.
    for (c, b) in blocks.iter().enumerate() {
        let z = rt.read(&b.bufs[2])?;
        for (i, (g, w)) in z.iter().zip(&b.want_z).enumerate() {
            anyhow::ensure!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "chunk {c}: z[{i}] = {g}, expected {w}"
            );
        }
    }
    let rel = ((got - expected) / expected).abs();
    anyhow::ensure!(rel < 1e-4, "the sum is off by {rel:e}");
    println!("verified: every z and every sum");
    Ok(())
}
