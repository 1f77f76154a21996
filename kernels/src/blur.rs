//! blur: a 2-D convolution of a width×height f32 image with a
//! (2r+1)×(2r+1) kernel, clamp-to-edge borders; the sample blurs with a
//! Gaussian ([`gaussian_kernel`]).
//!
//! The kernel is applied whole, not as a separable pair, so any weights
//! work; like image libraries, it is applied as a cross-correlation:
//! `out[y][x] = Σ w[dy+r][dx+r] · in[clamp(y+dy)][clamp(x+dx)]` over
//! `dy, dx ∈ [-r, r]`, rows clamped to `[0, height)` and columns to
//! `[0, width)` (the same as a convolution for symmetric weights such as a
//! Gaussian's). The radius is at most [`MAX_RADIUS`].
//!
//! Per pixel: 2(2r+1)² floating-point operations, 8 bytes moved at the
//! least (read the pixel, write its result; neighbours come from cache or
//! workgroup memory). Compute-bound for any but the smallest kernels.
//!
//! The GPU stages each 16×16 tile of the image plus its r-pixel halo in
//! workgroup memory; the CPU works on rows, one kernel row at a time over a
//! clamped copy of the source row, in loops that vectorise. Both sum each
//! kernel row, then the rows.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{builder, one_kernel};
use crate::uniform::wgsl_struct;
use crate::{expect_2d, invalid, tile_grid};

/// Edge of the square tile of the output one GPU workgroup computes.
pub const TILE: usize = 16;

/// The largest kernel radius (a 17×17 kernel): the GPU stages a tile plus
/// its halo of at most this many pixels in workgroup memory.
pub const MAX_RADIUS: usize = 8;

/// Pixels one CPU task blurs at the least: enough to amortise rayon's task
/// cost and the per-task scratch rows.
const CPU_GRAIN: usize = 1 << 14;

wgsl_struct! {
    blur_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct BlurParams {
        /// Pixels per row.
        pub width: u32,
        /// Rows.
        pub height: u32,
        /// Kernel radius r: the kernel is (2r+1)×(2r+1).
        pub radius: u32,
        /// Tiles across a row: `ceil(width / 16)`.
        pub tiles_x: u32,
        /// Tiles in all: `ceil(width / 16) · ceil(height / 16)`.
        pub tiles: u32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(include_str!("../../shaders/blur.wgsl"), blur_params!());

/// Adds `Σ_kx wrow[kx]·padded[x + kx]` (one kernel row's sum, summed from
/// kx = 0 up) to each `out[x]`, eight pixels at a time with their sums in
/// registers.
#[inline]
fn add_row(out: &mut [f32], padded: &[f32], wrow: &[f32]) {
    const LANES: usize = 8;
    let mut chunks = out.chunks_exact_mut(LANES);
    for (c, o) in (&mut chunks).enumerate() {
        let x = c * LANES;
        let mut sum = [0.0f32; LANES];
        for (kx, &wt) in wrow.iter().enumerate() {
            let Ok(src) = <&[f32; LANES]>::try_from(&padded[x + kx..x + kx + LANES]) else {
                continue;
            };
            for (s, &v) in sum.iter_mut().zip(src) {
                *s += wt * v;
            }
        }
        for (o, s) in o.iter_mut().zip(sum) {
            *o += s;
        }
    }
    let x0 = out.len() / LANES * LANES;
    for (x, o) in out.iter_mut().enumerate().skip(x0) {
        let sum = wrow
            .iter()
            .zip(&padded[x..])
            .fold(0.0f32, |s, (&wt, &v)| s + wt * v);
        *o += sum;
    }
}

/// Blurs rows of `src` into `dst` (both width×height) on rayon's pool.
fn blur_rows(src: &[f32], weights: &[f32], dst: &mut [f32], p: &BlurParams) {
    let (w, h, r) = (p.width as usize, p.height as usize, p.radius as usize);
    let side = 2 * r + 1;
    if w == 0 || h == 0 || src.len() < w * h || dst.len() < w * h || weights.len() < side * side {
        return;
    }
    dst[..w * h]
        .par_chunks_mut(w)
        .enumerate()
        .with_min_len((CPU_GRAIN / w).max(1))
        .for_each_init(
            // Per task, not per pixel: the source row, clamped at both ends.
            || vec![0.0f32; w + 2 * r],
            |padded, (y, out)| {
                out.fill(0.0);
                for (ky, wrow) in weights.chunks_exact(side).take(side).enumerate() {
                    let sy = (y + ky).saturating_sub(r).min(h - 1);
                    let line = &src[sy * w..(sy + 1) * w];
                    padded[..r].fill(line[0]);
                    padded[r..r + w].copy_from_slice(line);
                    padded[r + w..].fill(line[w - 1]);
                    add_row(out, padded, wrow);
                }
            },
        );
}

one_kernel! {
    /// The blur kernel.
    Blur = build();
    /// Blurs `src` (width×height, row-major) into `dst` (the same size)
    /// with `weights`, a (2r+1)×(2r+1) kernel, row-major, r ≤ [`MAX_RADIUS`].
    run,
    /// Submits the blur of [`run`](Self::run) and returns its task at once.
    submit(src: &Buffer<f32>, weights: &Buffer<f32>, dst: &Buffer<f32>, width: usize, height: usize)
        => [src, weights, dst], Self::params(src, weights, dst, width, height);
}

fn build() -> Result<Kernel> {
    type Args = (Read<f32>, Read<f32>, ReadWrite<f32>);
    builder::<BlurParams, Args>("blur", WGSL, |(src, weights, dst), p| {
        blur_rows(src, weights, dst, p);
    })
    .workgroups(|p, _| p.tiles as u64)
    .cost(|p, _| {
        let side = 2 * p.radius as u64 + 1;
        p.width as u64 * p.height as u64 * side * side
    })
    .build()
}

impl Blur {
    /// The params of a blur, checked: the image sizes and the kernel's shape.
    pub fn params(
        src: &Buffer<f32>,
        weights: &Buffer<f32>,
        dst: &Buffer<f32>,
        width: usize,
        height: usize,
    ) -> Result<BlurParams> {
        let radius = radius_of(weights.len())?;
        for (arg, buf) in [("src", src), ("dst", dst)] {
            expect_2d("blur", arg, buf.len(), (width, height), "image")?;
        }
        let [width, height, tiles_x, tiles] =
            tile_grid(("blur", "src"), src.len(), (width, height), (TILE, TILE))?;
        Ok(BlurParams {
            width,
            height,
            radius: radius as u32,
            tiles_x,
            tiles,
        })
    }
}

/// The radius r of a (2r+1)×(2r+1) kernel of `len` weights, or why `len`
/// is not the size of one.
fn radius_of(len: usize) -> Result<usize> {
    let side = len.isqrt();
    let bad = |message: String| Err(invalid("blur", "weights", message));
    if len == 0 {
        return bad(
            "weights is empty; a blur kernel needs (2r+1)×(2r+1) weights, at least 1".into(),
        );
    }
    if side * side != len {
        return bad(format!(
            "weights has {len} elements, which is not a square; a blur kernel needs (2r+1)×(2r+1) weights"
        ));
    }
    if side.is_multiple_of(2) {
        return bad(format!(
            "weights is {side}×{side}, an even side; a blur kernel needs an odd side 2r+1 so that it centres on the pixel"
        ));
    }
    let radius = side / 2;
    if radius > MAX_RADIUS {
        return bad(format!(
            "weights is {side}×{side} (radius {radius}); the most the GPU's tile holds is radius {MAX_RADIUS} ({0}×{0})",
            2 * MAX_RADIUS + 1
        ));
    }
    Ok(radius)
}

/// A normalised (2r+1)×(2r+1) Gaussian kernel, row-major: weights
/// proportional to `exp(-(dx² + dy²) / (2σ²))`, summing to 1.
///
/// # Examples
///
/// ```
/// let w = pel_kernels::blur::gaussian_kernel(1.0, 2)?;
/// assert_eq!(w.len(), 25);
/// assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
/// # Ok::<(), pel_runtime::Error>(())
/// ```
pub fn gaussian_kernel(sigma: f32, radius: usize) -> Result<Vec<f32>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(invalid(
            "blur",
            "sigma",
            format!("sigma is {sigma}; a Gaussian needs a finite sigma greater than 0"),
        ));
    }
    if radius > MAX_RADIUS {
        return Err(invalid(
            "blur",
            "radius",
            format!("radius {radius} is more than the {MAX_RADIUS} the GPU's tile holds"),
        ));
    }
    let r = radius as i64;
    let s2 = 2.0 * sigma as f64 * sigma as f64;
    let raw: Vec<f64> = (-r..=r)
        .flat_map(|dy| (-r..=r).map(move |dx| (-((dx * dx + dy * dy) as f64) / s2).exp()))
        .collect();
    let total: f64 = raw.iter().sum();
    Ok(raw.iter().map(|&v| (v / total) as f32).collect())
}

/// The serial reference in f64: each pixel's blurred value and its
/// `Σ|w·x|` (for the tolerance). `src` must be width×height and `weights`
/// (2r+1)×(2r+1).
pub fn reference(
    src: &[f32],
    width: usize,
    height: usize,
    weights: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let side = weights.len().isqrt();
    let r = side / 2;
    let mut out = vec![0.0f64; width * height];
    let mut mag = vec![0.0f64; width * height];
    for y in 0..height {
        for x in 0..width {
            let (mut s, mut m) = (0.0f64, 0.0f64);
            for ky in 0..side {
                let sy = (y + ky).saturating_sub(r).min(height - 1);
                for kx in 0..side {
                    let sx = (x + kx).saturating_sub(r).min(width - 1);
                    let t = weights[ky * side + kx] as f64 * src[sy * width + sx] as f64;
                    s += t;
                    m += t.abs();
                }
            }
            out[y * width + x] = s;
            mag[y * width + x] = m;
        }
    }
    (out, mag)
}
