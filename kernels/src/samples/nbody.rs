//! The nbody sample: seeded inputs, the run, and the check against
//! the serial reference in [`crate::nbody`].

use pel_runtime::{Backend, Buffer, Result, RunInfo, Runtime, Target};
use rand::Rng;

use super::verify::{self, Check, Trial, Work};
use crate::nbody::*;

/// One step of n seeded random bodies: positions in [-1, 1)³, masses in
/// [0.5, 1.5)/n, velocities in [-0.5, 0.5)³, dt = 0.01, softening 0.05;
/// the new positions start poisoned (NaN).
///
/// Tolerance, per body and axis, against the f64 reference, with `u = ε/2`
/// (ε the f32 epsilon) and `P = Σ_j |m_j·Δ_ij / (r² + ε²)^(3/2)|` the sum of
/// the magnitudes of the acceleration's terms:
/// - the acceleration is within `A = (288 + ⌈n/256⌉)·u·P`: at most 32
///   roundings in a term (the GPU's `inverseSqrt` is within 2 ulp), and
///   the worst case of summing the terms in parts of at most 256, then the
///   parts, as both implementations do;
/// - the velocity within `ε·|v| + dt·(A + ε·P)`;
/// - the position within `ε·(|x| + dt·|v'|)` plus dt times the velocity's.
///
/// Masses and the velocities' fourth lanes are exact.
pub struct NbodyTrial {
    nbody: Nbody,
    dt: f32,
    softening: f32,
    pos0: Vec<[f32; 4]>,
    vel0: Vec<[f32; 4]>,
    positions: Buffer<[f32; 4]>,
    velocities: Buffer<[f32; 4]>,
    new_positions: Buffer<[f32; 4]>,
    got_pos: Vec<[f32; 4]>,
    got_vel: Vec<[f32; 4]>,
}

/// Prepares one step of `n` bodies.
pub fn trial(rt: &Runtime, n: usize, seed: u64) -> Result<NbodyTrial> {
    let mut rng = verify::rng(seed);
    let mass = 1.0 / n.max(1) as f32;
    let mut u = |lo: f32, hi: f32| rng.random_range(lo..hi);
    let pos0: Vec<[f32; 4]> = (0..n)
        .map(|_| [u(-1.0, 1.0), u(-1.0, 1.0), u(-1.0, 1.0), mass * u(0.5, 1.5)])
        .collect();
    let vel0: Vec<[f32; 4]> = (0..n)
        .map(|_| [u(-0.5, 0.5), u(-0.5, 0.5), u(-0.5, 0.5), u(-1.0, 1.0)])
        .collect();
    Ok(NbodyTrial {
        nbody: Nbody::new()?,
        dt: 0.01,
        softening: 0.05,
        positions: rt.buffer(&pos0),
        velocities: rt.buffer(&vel0),
        new_positions: rt.zeros(n),
        pos0,
        vel0,
        got_pos: Vec::new(),
        got_vel: Vec::new(),
    })
}

impl Trial for NbodyTrial {
    fn shape(&self) -> String {
        format!("{} bodies", self.pos0.len())
    }
    fn work(&self) -> Work {
        let n = self.pos0.len();
        Work::per(n, 20.0 * n as f64, 48.0)
    }
    fn reset(&mut self, rt: &Runtime) -> Result<()> {
        rt.write(&self.positions, &self.pos0)?;
        rt.write(&self.velocities, &self.vel0)?;
        rt.write(&self.new_positions, &vec![[f32::NAN; 4]; self.pos0.len()])
    }
    fn run(&mut self, rt: &Runtime, target: Target) -> Result<RunInfo> {
        let info = self.nbody.run(
            rt,
            target,
            &self.positions,
            &self.velocities,
            &self.new_positions,
            self.dt,
            self.softening,
        )?;
        rt.read_to_vec(&self.new_positions, &mut self.got_pos)?;
        rt.read_to_vec(&self.velocities, &mut self.got_vel)?;
        Ok(info)
    }
    fn verify(&mut self, backend: Backend) -> Check {
        let want = reference(&self.pos0, &self.vel0, self.dt, self.softening);
        let n = self.pos0.len();
        let (eps, dt) = (f32::EPSILON as f64, self.dt as f64);
        let terms = 288.0 + n.div_ceil(256) as f64;
        let tol_v = |v0: f64, p: f64| eps * v0.abs() + dt * (terms * eps / 2.0 + eps) * p;
        // Positions then velocities, four lanes per body.
        let mut tol = Vec::with_capacity(8 * n);
        let bodies = self.pos0.iter().zip(&self.vel0).zip(&want.pull);
        for (((x, v0), p), v1) in bodies.clone().zip(&want.velocities) {
            tol.extend((0..3).map(|k| {
                eps * ((x[k] as f64).abs() + dt * v1[k].abs()) + dt * tol_v(v0[k] as f64, p[k])
            }));
            tol.push(0.0);
        }
        for ((_, v0), p) in bodies {
            tol.extend((0..3).map(|k| tol_v(v0[k] as f64, p[k])));
            tol.push(0.0);
        }
        let got = self.got_pos.iter().chain(&self.got_vel).flatten();
        let expected = want.positions.iter().chain(&want.velocities).flatten();
        let cmp = verify::compare(got.map(|&v| v as f64), expected.copied(), |i| {
            tol[i] + f32::MIN_POSITIVE as f64
        });
        cmp.into_check(
            self.shape(),
            backend,
            (4 * n).abs_diff(4 * self.got_pos.len()) + (4 * n).abs_diff(4 * self.got_vel.len()),
            "acceleration within (288 + ⌈n/256⌉)·(ε/2)·Σ|terms|, and the velocity and position that follow",
        )
    }
}
