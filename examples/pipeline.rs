//! Chain kernels on data that stays where it is computed, and count the
//! bytes that cross the bus.
//!
//! ```text
//! cargo run --release --example pipeline
//! ```
//!
//! y = 2x + y, then z = −0.5y + z, then the sum of z: three kernels (the sum
//! takes several passes), all on one device. On a GPU only the inputs go up
//! and four bytes come back; the intermediate vectors never leave it.

use pel::kernels::{Saxpy, Sum};
use pel::{Backend, Runtime, Target};

fn main() -> anyhow::Result<()> {
    let rt = Runtime::new()?;
    let n = 1 << 22;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 1e-3).collect();
    let y: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32).collect();
    let z: Vec<f32> = vec![1.0; n];
    let expected: f64 = (0..n)
        .map(|i| {
            let yi = 2.0 * x[i] as f64 + y[i] as f64;
            -0.5 * yi + z[i] as f64
        })
        .sum();

    let (saxpy, sum) = (Saxpy::new()?, Sum::new()?);
    // On the first GPU if there is one (to show what stays there), else the CPU.
    let device = rt
        .backends()
        .into_iter()
        .find(|b| *b != Backend::Cpu)
        .unwrap_or(Backend::Cpu);
    let target = Target::On(device);

    let (xb, yb, zb) = (rt.buffer(&x), rt.buffer(&y), rt.buffer(&z));
    let total = rt.zeros::<f32>(1);
    rt.reset_stats();
    // Submitted without waiting: pel orders the three by what each reads
    // and writes (the second reads y, which the first writes; the sum reads
    // z, which the second writes).
    saxpy.submit(&rt, target, 2.0, &xb, &yb)?;
    saxpy.submit(&rt, target, -0.5, &yb, &zb)?;
    sum.submit(&rt, target, &zb, &total)?;
    let got = rt.read(&total)?[0];

    let stats = rt.stats();
    println!("on {device}: sum = {got} (expected {expected:.1})");
    println!(
        "bytes moved: {} up in {} transfer(s), {} down in {} transfer(s); the three {}-element vectors are {} in all",
        pel::human_bytes(stats.upload_bytes),
        stats.uploads,
        pel::human_bytes(stats.download_bytes),
        stats.downloads,
        n,
        pel::human_bytes(3 * 4 * n as u64)
    );
    println!("where each buffer's valid copy is now:");
    for (name, v) in [
        ("x", rt.validity(&xb)?),
        ("y", rt.validity(&yb)?),
        ("z", rt.validity(&zb)?),
        ("sum", rt.validity(&total)?),
    ] {
        println!("  {name:<4} {}", v.describe());
    }
    let rel = ((got as f64 - expected) / expected).abs();
    anyhow::ensure!(rel < 1e-4, "the sum is off by {rel:e}");
    Ok(())
}
