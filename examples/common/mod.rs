//! What the examples share: the `--out FILE` argument, colour maps and PNG
//! output.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The value of `--out FILE`, or `default`.
pub fn out_path(default: &str) -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Writes an 8-bit RGB image, `rgb` holding width·height·3 bytes, row-major.
pub fn write_png(path: &Path, width: usize, height: usize, rgb: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(rgb.len() == width * height * 3, "image size mismatch");
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

/// A perceptual-ish colour map from dark blue through orange to white, for
/// `t` in [0, 1].
pub fn heat_colour(t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    // Piecewise-linear stops: black-blue, purple, red, orange, yellow, white.
    const STOPS: [(f64, [f64; 3]); 6] = [
        (0.0, [0.0, 0.0, 0.1]),
        (0.2, [0.3, 0.0, 0.5]),
        (0.45, [0.8, 0.1, 0.2]),
        (0.7, [1.0, 0.5, 0.0]),
        (0.9, [1.0, 0.9, 0.2]),
        (1.0, [1.0, 1.0, 1.0]),
    ];
    let i = STOPS.iter().rposition(|(s, _)| *s <= t).unwrap_or(0).min(4);
    let (t0, c0) = STOPS[i];
    let (t1, c1) = STOPS[i + 1];
    let f = (t - t0) / (t1 - t0);
    std::array::from_fn(|k| ((c0[k] + f * (c1[k] - c0[k])) * 255.0).round() as u8)
}

/// Distinct colours for categories (k-means clusters).
pub fn category_colour(i: usize) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 10] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ];
    PALETTE[i % PALETTE.len()]
}

/// `n` 2-D points (x, y interleaved) from six Gaussian blobs of different
/// spreads in the unit square, seeded: k-means' input.
pub fn blob_points(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let blobs = [
        (0.25, 0.25, 0.06),
        (0.75, 0.3, 0.08),
        (0.5, 0.55, 0.05),
        (0.2, 0.75, 0.07),
        (0.8, 0.78, 0.05),
        (0.5, 0.9, 0.03),
    ];
    let mut points = Vec::with_capacity(2 * n);
    for i in 0..n {
        let (cx, cy, s): (f32, f32, f32) = blobs[i % blobs.len()];
        // Box–Muller for a normal pair.
        let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
        let r = (-2.0 * u.ln()).sqrt() * s;
        let a = std::f32::consts::TAU * v;
        points.push(cx + r * a.cos());
        points.push(cy + r * a.sin());
    }
    points
}
