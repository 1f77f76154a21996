//! An n-body gravity simulation, printing how well the total energy is
//! conserved over the steps.
//!
//! ```text
//! cargo run --release --example nbody
//! ```
//!
//! A cold, slowly rotating disc of bodies with a heavy centre. Every step is
//! all-pairs (O(n²)) on one device; positions swap between two buffers and
//! stay there between steps, except when the energy is measured.

use pel::kernels::nbody::{Nbody, energy};
use pel::{Runtime, Target};
use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let (n, steps, dt, softening) = (2048usize, 200usize, 1e-3f32, 0.05f32);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut pos = Vec::with_capacity(n);
    let mut vel = Vec::with_capacity(n);
    // A central mass, then bodies on near-circular orbits around it.
    let central = 100.0f32;
    pos.push([0.0, 0.0, 0.0, central]);
    vel.push([0.0, 0.0, 0.0, 0.0]);
    for _ in 1..n {
        let r: f32 = rng.random_range(0.5..4.0);
        let a: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        let z: f32 = rng.random_range(-0.05..0.05);
        let speed = (central / r).sqrt();
        pos.push([r * a.cos(), r * a.sin(), z, 0.01]);
        vel.push([-speed * a.sin(), speed * a.cos(), 0.0, 0.0]);
    }

    let rt = Runtime::new()?;
    let nbody = Nbody::new()?;
    let (mut p, mut q) = (rt.buffer(&pos), rt.zeros::<[f32; 4]>(n));
    let v = rt.buffer(&vel);
    let e0 = energy(&pos, &vel, softening);
    println!("{n} bodies, dt = {dt}, softening = {softening}: E0 = {e0:.6}");
    println!("{:>6} {:>14} {:>12}", "step", "energy", "drift");
    let start = std::time::Instant::now();
    let mut device = None;
    for step in 1..=steps {
        let info = nbody.run(&rt, Target::Auto, &p, &v, &q, dt, softening)?;
        device = Some(info.backend);
        std::mem::swap(&mut p, &mut q);
        if step % 40 == 0 {
            let e = energy(&rt.read(&p)?, &rt.read(&v)?, softening);
            println!("{step:>6} {e:>14.6} {:>+12.3e}", (e - e0) / e0.abs());
        }
    }
    println!(
        "{steps} steps in {:.2} s (last on {}), energy measured on the host in f64",
        start.elapsed().as_secs_f64(),
        device.map(|d| d.to_string()).unwrap_or_default()
    );
    Ok(())
}
