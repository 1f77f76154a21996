//! mandelbrot: escape-time iteration counts over a grid of the complex plane.
//!
//! Per pixel: up to 7 floating-point operations per iteration (at most
//! `max_iter` iterations), 4 bytes written. Compute-bound, with divergence
//! between neighbouring pixels near the set's boundary.

use pel_runtime::{Buffer, Kernel, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{builder, one_kernel};
use crate::uniform::wgsl_struct;
use crate::{expect_2d, u32_len};

wgsl_struct! {
    mandelbrot_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct MandelbrotParams {
        /// Pixels per row.
        pub width: u32,
        /// The first pixel this launch computes (0 for the whole image).
        pub first: u32,
        /// Iteration cap; points still bounded then count as inside the set.
        pub max_iter: u32,
        /// Pixels this launch computes (`width · height` for the whole image).
        pub n: u32,
        /// Real part at the left edge.
        pub x0: f32,
        /// Imaginary part at the top edge.
        pub y0: f32,
        /// Real step per pixel.
        pub dx: f32,
        /// Imaginary step per row.
        pub dy: f32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(
    include_str!("../../shaders/mandelbrot.wgsl"),
    mandelbrot_params!(),
);

/// The window of the complex plane to render.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Real part at the left edge.
    pub x0: f32,
    /// Imaginary part at the top edge.
    pub y0: f32,
    /// Real step per pixel.
    pub dx: f32,
    /// Imaginary step per row.
    pub dy: f32,
}

impl View {
    /// The classic full view, [-2.5, 1] × [-1.25, 1.25], at this resolution.
    pub fn full(width: usize, height: usize) -> View {
        View {
            x0: -2.5,
            y0: -1.25,
            dx: 3.5 / width.max(1) as f32,
            dy: 2.5 / height.max(1) as f32,
        }
    }
}

/// Iterations before `z² + c` leaves the radius-2 disc, capped at `max_iter`.
/// The same arithmetic, in the same order, as the shader.
#[inline]
pub fn escape(cx: f32, cy: f32, max_iter: u32) -> u32 {
    let (mut zx, mut zy) = (0.0f32, 0.0f32);
    let mut it = 0;
    while it < max_iter {
        let zx2 = zx * zx;
        let zy2 = zy * zy;
        if zx2 + zy2 > 4.0 {
            break;
        }
        zy = 2.0 * zx * zy + cy;
        zx = zx2 - zy2 + cx;
        it += 1;
    }
    it
}

/// The escape count as a GPU compiler may legally compute it: the pixel's
/// coordinate as one fused multiply-add (`fused_coords`), and/or the
/// iteration's multiply-adds fused (`fused_iter`).
fn pixel_variant(p: &MandelbrotParams, i: usize, fused_coords: bool, fused_iter: bool) -> u32 {
    let w = p.width as usize;
    let (fx, fy) = ((i % w) as f32, (i / w) as f32);
    let (cx, cy) = if fused_coords {
        (fx.mul_add(p.dx, p.x0), fy.mul_add(p.dy, p.y0))
    } else {
        (p.x0 + fx * p.dx, p.y0 + fy * p.dy)
    };
    if !fused_iter {
        return escape(cx, cy, p.max_iter);
    }
    let (mut zx, mut zy) = (0.0f32, 0.0f32);
    let mut it = 0;
    while it < p.max_iter {
        let zx2 = zx * zx;
        let zy2 = zy * zy;
        if zx2 + zy2 > 4.0 {
            break;
        }
        zy = (2.0 * zx).mul_add(zy, cy);
        zx = zx.mul_add(zx, -zy2) + cx;
        it += 1;
    }
    it
}

/// Whether pixel `i`'s count is sensitive to rounding: it changes when the
/// multiply-adds are fused, or when c moves by one or two ulps along an axis.
pub(crate) fn ill_conditioned(p: &MandelbrotParams, i: usize, count: u32) -> bool {
    let fused = [(true, false), (true, true), (false, true)];
    if fused
        .iter()
        .any(|&(c, it)| pixel_variant(p, i, c, it) != count)
    {
        return true;
    }
    let w = p.width as usize;
    let cx = p.x0 + (i % w) as f32 * p.dx;
    let cy = p.y0 + (i / w) as f32 * p.dy;
    let nudge = |v: f32, ulps: i32| f32::from_bits((v.to_bits() as i32).wrapping_add(ulps) as u32);
    [-2, -1, 1, 2].iter().any(|&u| {
        escape(nudge(cx, u), cy, p.max_iter) != count
            || escape(cx, nudge(cy, u), p.max_iter) != count
    })
}

fn pixel(p: &MandelbrotParams, i: usize) -> u32 {
    let w = p.width as usize;
    let cx = p.x0 + (i % w) as f32 * p.dx;
    let cy = p.y0 + (i / w) as f32 * p.dy;
    escape(cx, cy, p.max_iter)
}

one_kernel! {
    /// The mandelbrot kernel.
    Mandelbrot = build();
    /// Fills `counts` (width·height, row-major) with iteration counts.
    run,
    /// Submits the render of [`run`](Self::run) and returns its task at once.
    submit(counts: &Buffer<u32>, width: usize, height: usize, view: View, max_iter: u32)
        => [counts], Self::params(counts, width, height, view, max_iter);
}

fn build() -> Result<Kernel> {
    builder::<MandelbrotParams, (ReadWrite<u32>,)>("mandelbrot", WGSL, |(counts,), p| {
        // Rows as tasks: neighbouring pixels cost alike, rows do not.
        let w = (p.width as usize).max(1);
        let first = (p.first as usize).min(counts.len());
        let last = (first + p.n as usize).min(counts.len());
        counts[first..last]
            .par_chunks_mut(w)
            .enumerate()
            .for_each(|(row, out)| {
                for (j, c) in out.iter_mut().enumerate() {
                    *c = pixel(p, first + row * w + j);
                }
            });
    })
    .invocations(|p, _| p.n as u64)
    // A roofline's bound: every pixel to the cap, 7 flops an iteration,
    // and its count written.
    .work(|p, _| (7.0 * p.n as f64 * p.max_iter as f64, 4.0 * p.n as f64))
    // Rows can be split between a GPU and the CPU.
    .splittable(
        |p, lens| {
            let whole = p.first == 0 && p.n as usize == lens[0] && p.width > 0;
            if whole { (p.n / p.width) as u64 } else { 1 }
        },
        |p, rows| MandelbrotParams {
            first: (rows.start * p.width as u64) as u32,
            n: ((rows.end - rows.start) * p.width as u64) as u32,
            ..*p
        },
    )
    .build()
}

impl Mandelbrot {
    /// The params of a whole-image render, checked.
    pub fn params(
        counts: &Buffer<u32>,
        width: usize,
        height: usize,
        view: View,
        max_iter: u32,
    ) -> Result<MandelbrotParams> {
        expect_2d(
            "mandelbrot",
            "counts",
            counts.len(),
            (width, height),
            "image",
        )?;
        u32_len("mandelbrot", "height", height)?;
        Ok(MandelbrotParams {
            width: u32_len("mandelbrot", "width", width)?,
            first: 0,
            max_iter,
            n: u32_len("mandelbrot", "counts", counts.len())?,
            x0: view.x0,
            y0: view.y0,
            dx: view.dx,
            dy: view.dy,
        })
    }
}

/// The serial reference.
pub fn reference(width: usize, height: usize, view: View, max_iter: u32) -> Vec<u32> {
    let p = MandelbrotParams {
        width: width as u32,
        first: 0,
        max_iter,
        n: (width * height) as u32,
        x0: view.x0,
        y0: view.y0,
        dx: view.dx,
        dy: view.dy,
    };
    (0..width * height).map(|i| pixel(&p, i)).collect()
}

/// Moved to [`samples::mandelbrot::trial_of`](crate::samples::mandelbrot::trial_of).
#[deprecated(note = "moved to pel_kernels::samples::mandelbrot::trial_of")]
pub fn trial_of(
    rt: &pel_runtime::Runtime,
    dims: (usize, usize),
    view: View,
    max_iter: u32,
) -> Result<crate::samples::mandelbrot::MandelbrotTrial> {
    crate::samples::mandelbrot::trial_of(rt, dims, view, max_iter)
}
