//! nbody: one step of all-pairs gravity between n bodies, G = 1, with
//! Plummer softening ε, by semi-implicit (symplectic) Euler:
//!
//! ```text
//! a_i  = Σ_j m_j (x_j − x_i) / (|x_j − x_i|² + ε²)^(3/2)
//! v_i' = v_i + a_i·dt
//! x_i' = x_i + v_i'·dt
//! ```
//!
//! Positions are `[x, y, z, m]` (WGSL `vec4<f32>`, the mass in the fourth
//! lane), velocities `[vx, vy, vz, w]` with `w` kept as it is. A body's pull
//! on itself is zero, and ε > 0 keeps every other pull finite.
//!
//! Per body: 20·n floating-point operations (the customary count for one
//! interaction, as in GPU Gems 3), 48 bytes moved (read a position and a
//! velocity, write both). Compute-bound: O(n²) work over O(n) data.
//!
//! The GPU runs the classic tiled scheme of GPU Gems 3 (ch. 31): each
//! invocation owns a body, and the workgroup stages the bodies 256 at a
//! time in workgroup memory. The CPU gives each rayon task a block of
//! bodies and walks the others in blocks that stay in L1, laid out as
//! separate x, y, z, m arrays so the inner loop vectorises. Both sum each
//! acceleration in parts of at most 256 terms (a tile; a lane of a block),
//! then the parts, which keeps rounding error growing with `256 + n/256`
//! terms rather than n.
//!
//! [`energy`] gives the system's total energy, to follow its drift over
//! many steps.

use pel_runtime::{Buffer, Kernel, Read, ReadWrite, Result};
use rayon::prelude::*;

use crate::launch::{builder, one_kernel};
use crate::uniform::wgsl_struct;
use crate::{ensure, lengths_match, u32_len};

/// Bodies one CPU task moves.
const CPU_BODIES: usize = 32;

/// Other bodies the CPU walks at a time: 4 arrays of 2,048 f32 = 32 KiB,
/// and 256 terms in each of the 8 lanes.
const CPU_BLOCK: usize = 2048;

/// Lanes of the CPU's inner loop.
const LANES: usize = 8;

wgsl_struct! {
    nbody_params => Params;
    /// The shader's uniform block.
    #[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct NbodyParams {
        /// Bodies.
        pub n: u32,
        /// Time step.
        pub dt: f32,
        /// Softening squared, ε² (> 0).
        pub eps2: f32,
    }
}

/// The WGSL source.
pub const WGSL: &str = concat!(include_str!("../../shaders/nbody.wgsl"), nbody_params!());

/// The pull of the bodies at `xs, ys, zs` with masses `ms` on a body at
/// `me`, summed in 8 lanes (vectorisable) and then across them.
#[inline]
fn pull(me: [f32; 4], xs: &[f32], ys: &[f32], zs: &[f32], ms: &[f32], eps2: f32) -> [f32; 3] {
    let (mut ax, mut ay, mut az) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
    let mut one = |x: f32, y: f32, z: f32, m: f32, l: usize| {
        let (dx, dy, dz) = (x - me[0], y - me[1], z - me[2]);
        let r2 = dx * dx + dy * dy + dz * dz + eps2;
        let s = m / (r2 * r2.sqrt());
        ax[l] += dx * s;
        ay[l] += dy * s;
        az[l] += dz * s;
    };
    let (mut cx, mut cy, mut cz, mut cm) = (
        xs.chunks_exact(LANES),
        ys.chunks_exact(LANES),
        zs.chunks_exact(LANES),
        ms.chunks_exact(LANES),
    );
    for (((x, y), z), m) in (&mut cx).zip(&mut cy).zip(&mut cz).zip(&mut cm) {
        let (Ok(x), Ok(y), Ok(z), Ok(m)) = (
            <&[f32; LANES]>::try_from(x),
            <&[f32; LANES]>::try_from(y),
            <&[f32; LANES]>::try_from(z),
            <&[f32; LANES]>::try_from(m),
        ) else {
            continue;
        };
        for l in 0..LANES {
            one(x[l], y[l], z[l], m[l], l);
        }
    }
    let tail = cx
        .remainder()
        .iter()
        .zip(cy.remainder())
        .zip(cz.remainder())
        .zip(cm.remainder());
    for (l, (((&x, &y), &z), &m)) in tail.enumerate() {
        one(x, y, z, m, l);
    }
    let lanes = |a: [f32; LANES]| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    [lanes(ax), lanes(ay), lanes(az)]
}

/// One step of every body on rayon's pool.
fn step_bodies(pos: &[[f32; 4]], vel: &mut [[f32; 4]], out: &mut [[f32; 4]], p: &NbodyParams) {
    let n = (p.n as usize).min(pos.len()).min(vel.len()).min(out.len());
    if n == 0 {
        return;
    }
    // Structure of arrays: the inner loop reads each lane contiguously.
    let mut soa = vec![0.0f32; 4 * n];
    let (xs, rest) = soa.split_at_mut(n);
    let (ys, rest) = rest.split_at_mut(n);
    let (zs, ms) = rest.split_at_mut(n);
    for (i, b) in pos[..n].iter().enumerate() {
        (xs[i], ys[i], zs[i], ms[i]) = (b[0], b[1], b[2], b[3]);
    }
    let (xs, ys, zs, ms) = (&*xs, &*ys, &*zs, &*ms);
    let (dt, eps2) = (p.dt, p.eps2);
    vel[..n]
        .par_chunks_mut(CPU_BODIES)
        .zip(out[..n].par_chunks_mut(CPU_BODIES))
        .enumerate()
        .for_each(|(c, (vel, out))| {
            let mine = &pos[c * CPU_BODIES..c * CPU_BODIES + vel.len()];
            let mut acc = [[0.0f32; 3]; CPU_BODIES];
            for lo in (0..n).step_by(CPU_BLOCK) {
                let hi = (lo + CPU_BLOCK).min(n);
                for (a, &me) in acc.iter_mut().zip(mine) {
                    let d = pull(me, &xs[lo..hi], &ys[lo..hi], &zs[lo..hi], &ms[lo..hi], eps2);
                    a[0] += d[0];
                    a[1] += d[1];
                    a[2] += d[2];
                }
            }
            for (((v, o), &me), a) in vel.iter_mut().zip(out.iter_mut()).zip(mine).zip(&acc) {
                let nv = [v[0] + a[0] * dt, v[1] + a[1] * dt, v[2] + a[2] * dt];
                *v = [nv[0], nv[1], nv[2], v[3]];
                *o = [
                    me[0] + nv[0] * dt,
                    me[1] + nv[1] * dt,
                    me[2] + nv[2] * dt,
                    me[3],
                ];
            }
        });
}

one_kernel! {
    /// The n-body kernel.
    Nbody = build();
    /// One step: reads `positions`, updates `velocities` in place and
    /// writes the new positions to `new_positions` (all n long; swap
    /// `positions` and `new_positions` for the next step). `softening` is ε,
    /// in units of length.
    run,
    /// Submits the step of [`run`](Self::run) and returns its task at once.
    submit(positions: &Buffer<[f32; 4]>, velocities: &Buffer<[f32; 4]>, new_positions: &Buffer<[f32; 4]>, dt: f32, softening: f32)
        => [positions, velocities, new_positions], Self::params(positions, velocities, new_positions, dt, softening);
}

fn build() -> Result<Kernel> {
    type Args = (Read<[f32; 4]>, ReadWrite<[f32; 4]>, ReadWrite<[f32; 4]>);
    builder::<NbodyParams, Args>("nbody", WGSL, |(pos, vel, out), p| {
        step_bodies(pos, vel, out, p);
    })
    .invocations(|p, _| p.n as u64)
    .cost(|p, _| p.n as u64 * p.n as u64)
    .build()
}

impl Nbody {
    /// The params of a step, checked: the buffers' lengths agree, `dt` is
    /// finite, and ε² is finite and greater than 0.
    pub fn params(
        positions: &Buffer<[f32; 4]>,
        velocities: &Buffer<[f32; 4]>,
        new_positions: &Buffer<[f32; 4]>,
        dt: f32,
        softening: f32,
    ) -> Result<NbodyParams> {
        let n = positions.len();
        lengths_match(
            "nbody",
            n,
            || format!("positions has {n} bodies"),
            "",
            &[
                ("velocities", velocities.len()),
                ("new_positions", new_positions.len()),
            ],
        )?;
        ensure(dt.is_finite(), "nbody", "dt", || {
            format!("dt is {dt}; the time step must be finite")
        })?;
        let eps2 = softening * softening;
        ensure(eps2.is_finite() && eps2 > 0.0, "nbody", "softening", || {
            format!(
                "softening is {softening}, so ε² is {eps2}; ε² must be finite and greater than 0 (it keeps the pull between close bodies finite)"
            )
        })?;
        Ok(NbodyParams {
            n: u32_len("nbody", "positions", n)?,
            dt,
            eps2,
        })
    }
}

/// The total energy of the system in f64: kinetic `Σ ½·m·|v|²` plus
/// potential `−Σ_{i<j} m_i·m_j / sqrt(|x_i − x_j|² + ε²)` (G = 1, the same
/// softening as the step). Serial, O(n²).
pub fn energy(positions: &[[f32; 4]], velocities: &[[f32; 4]], softening: f32) -> f64 {
    let eps2 = softening as f64 * softening as f64;
    let f = |b: &[f32; 4]| b.map(|v| v as f64);
    let mut kinetic = 0.0;
    for (b, v) in positions.iter().zip(velocities) {
        let (b, v) = (f(b), f(v));
        kinetic += 0.5 * b[3] * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    }
    let mut potential = 0.0;
    for (i, bi) in positions.iter().enumerate() {
        let bi = f(bi);
        for bj in &positions[i + 1..] {
            let bj = f(bj);
            let (dx, dy, dz) = (bj[0] - bi[0], bj[1] - bi[1], bj[2] - bi[2]);
            potential -= bi[3] * bj[3] / (dx * dx + dy * dy + dz * dz + eps2).sqrt();
        }
    }
    kinetic + potential
}

/// One step as the f64 reference computes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceStep {
    /// New positions `[x, y, z, m]`.
    pub positions: Vec<[f64; 4]>,
    /// New velocities `[vx, vy, vz, w]`.
    pub velocities: Vec<[f64; 4]>,
    /// Per body and axis, `Σ_j |m_j·Δ_ij / (r² + ε²)^(3/2)|`: the sum of the
    /// magnitudes of the terms of the acceleration (for the tolerance).
    pub pull: Vec<[f64; 3]>,
}

/// The serial reference in f64: one step of [`Nbody::run`].
pub fn reference(
    positions: &[[f32; 4]],
    velocities: &[[f32; 4]],
    dt: f32,
    softening: f32,
) -> ReferenceStep {
    let eps2 = (softening * softening) as f64;
    let dt = dt as f64;
    let mut step = ReferenceStep {
        positions: Vec::with_capacity(positions.len()),
        velocities: Vec::with_capacity(positions.len()),
        pull: Vec::with_capacity(positions.len()),
    };
    for (bi, vi) in positions.iter().zip(velocities) {
        let (mut a, mut mag) = ([0.0f64; 3], [0.0f64; 3]);
        for bj in positions {
            let d = [0, 1, 2].map(|k| bj[k] as f64 - bi[k] as f64);
            let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + eps2;
            let s = bj[3] as f64 / (r2 * r2.sqrt());
            for k in 0..3 {
                a[k] += d[k] * s;
                mag[k] += (d[k] * s).abs();
            }
        }
        let v = [0, 1, 2].map(|k| vi[k] as f64 + a[k] * dt);
        let x = [0, 1, 2].map(|k| bi[k] as f64 + v[k] * dt);
        step.velocities.push([v[0], v[1], v[2], vi[3] as f64]);
        step.positions.push([x[0], x[1], x[2], bi[3] as f64]);
        step.pull.push(mag);
    }
    step
}
