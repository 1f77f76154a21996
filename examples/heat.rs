//! Heat spreading from hot spots over a cold plate, written as a PNG.
//!
//! ```text
//! cargo run --release --example heat [-- --out heat.png]
//! ```
//!
//! A 5-point Jacobi stencil, thousands of steps double-buffered on one
//! device: the grid never leaves it between steps. The edges are held at 0.

mod common;

use pel::kernels::heat::Heat;
use pel::{Runtime, Target};

fn main() -> anyhow::Result<()> {
    let out = common::out_path("heat.png");
    let (width, height) = (512usize, 384usize);
    let (alpha, steps) = (0.24f32, 4000usize);

    // Three hot discs and a hot bar on a cold plate.
    let mut grid = vec![0.0f32; width * height];
    let spots = [
        (120.0, 110.0, 28.0),
        (380.0, 90.0, 18.0),
        (300.0, 280.0, 36.0),
    ];
    for y in 0..height {
        for x in 0..width {
            let hot = spots
                .iter()
                .any(|&(cx, cy, r): &(f64, f64, f64)| (x as f64 - cx).hypot(y as f64 - cy) < r)
                || ((60..200).contains(&x) && (300..312).contains(&y));
            if hot {
                grid[y * width + x] = 100.0;
            }
        }
    }
    let heat_before: f64 = grid.iter().map(|&v| v as f64).sum();

    let rt = Runtime::new()?;
    let buffer = rt.buffer(&grid);
    let info = Heat::new()?.run(&rt, Target::Auto, &buffer, width, height, alpha, steps)?;
    let result = rt.read(&buffer)?;

    let max = result.iter().copied().fold(0.0f32, f32::max).max(1e-6);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for &v in &result {
        rgb.extend_from_slice(&common::heat_colour((v / max) as f64));
    }
    common::write_png(&out, width, height, &rgb)?;
    let heat_after: f64 = result.iter().map(|&v| v as f64).sum();
    println!(
        "{steps} steps of {width}×{height} (α = {alpha}) on {} in {:.1} ms; hottest cell {max:.2} (started at 100); {:.1}% of the heat left through the cold edges",
        info.backend,
        info.elapsed.as_secs_f64() * 1e3,
        100.0 * (1.0 - heat_after / heat_before)
    );
    println!("wrote {}", out.display());
    Ok(())
}
