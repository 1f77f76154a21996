//! Render the Mandelbrot set with pel and write it as a PNG.
//!
//! ```text
//! cargo run --release --example mandelbrot [-- --out mandelbrot.png]
//! ```
//!
//! The kernel runs where pel expects it to finish first (a GPU if this
//! machine has a fast one); the image is coloured on the host.

mod common;

use pel::kernels::Mandelbrot;
use pel::kernels::mandelbrot::View;
use pel::{Runtime, Target};

fn main() -> anyhow::Result<()> {
    let out = common::out_path("mandelbrot.png");
    let (width, height, max_iter) = (1200, 800, 512);

    let rt = Runtime::new()?;
    let mandelbrot = Mandelbrot::new()?;
    let counts = rt.zeros::<u32>(width * height);
    // The classic view, square pixels: 3.5 units wide, centred vertically.
    let dx = 3.0 / width as f32;
    let view = View {
        x0: -2.2,
        y0: -(height as f32) * dx / 2.0,
        dx,
        dy: dx,
    };
    let info = mandelbrot.run(&rt, Target::Auto, &counts, width, height, view, max_iter)?;
    let counts = rt.read(&counts)?;

    // Points inside the set are black; outside, the colour follows the
    // escape time on a log scale.
    let mut rgb = Vec::with_capacity(width * height * 3);
    let scale = (max_iter as f64).ln();
    for &c in &counts {
        let colour = if c >= max_iter {
            [0, 0, 0]
        } else {
            common::heat_colour((1.0 + c as f64).ln() / scale)
        };
        rgb.extend_from_slice(&colour);
    }
    common::write_png(&out, width, height, &rgb)?;
    let inside = counts.iter().filter(|&&c| c >= max_iter).count();
    println!(
        "rendered {width}×{height} (max {max_iter} iterations) on {} ({}) in {:.1} ms; {:.1}% of the pixels are in the set",
        info.backend,
        info.reason,
        info.elapsed.as_secs_f64() * 1e3,
        100.0 * inside as f64 / counts.len() as f64
    );
    println!("wrote {}", out.display());
    Ok(())
}
