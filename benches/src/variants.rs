//! The kernels suite's variants: each implementation of a kernel with
//! variants timed alone on each GPU, in the same shuffled rounds, beside
//! the one placement chose there.

use pel::kernels::Matmul;
use pel::kernels::matmul::MatmulParams;
use pel::{Kernel, Result, Runtime, Target};
use serde::Serialize;

use crate::interleaved_for;
use crate::peers::random_f32;

/// The label of a kernel's own implementation (its variants have theirs).
pub const OWN: &str = "own";

/// One implementation's time on one device.
#[derive(Debug, Clone, Serialize)]
pub struct VariantPoint {
    /// The kernel.
    pub kernel: String,
    /// The device, as `pel devices` names it.
    pub device: String,
    /// The problem's shape.
    pub size: String,
    /// The implementation: a variant's label, or [`OWN`].
    pub variant: String,
    /// Median seconds of a run, inputs and result on the device's side
    /// of a host read (as the suite times kernels).
    pub time_s: f64,
    /// Whether placement, calibrated, runs this one on the device.
    pub chosen: bool,
}

/// Matmul at `n`³ on every GPU: each shader alone and the model's choice.
/// Forced calls to the device first calibrate its variants (a forced call
/// still chooses among them); then every implementation is timed alone,
/// interleaved in shuffled rounds.
pub fn variants(rt: &Runtime, n: usize, reps: usize, min_secs: f64) -> Result<Vec<VariantPoint>> {
    let mm = Matmul::new()?;
    let kernel = mm.kernel();
    let a = rt.buffer(&random_f32(11, n * n));
    let b = rt.buffer(&random_f32(12, n * n));
    let c = rt.zeros::<f32>(n * n);
    let p = MatmulParams::new(n, n, n)?;
    let mut implementations: Vec<(String, Kernel)> = vec![(OWN.to_owned(), kernel.alone())];
    for label in kernel.variants() {
        if let Some(k) = kernel.variant_kernel(label) {
            implementations.push((label.to_owned(), k.clone()));
        }
    }
    let mut points = Vec::new();
    for gpu in rt.gpu_backends() {
        // Calibrated: forced calls until the device's decisions are made
        // by the model (or a variant is set aside), as a program's would be.
        for _ in 0..40 {
            rt.execute(Target::On(gpu), kernel, &[&a, &b, &c], &p)?;
            rt.read(&c)?;
        }
        // The last of them, calibrated by now: what the model runs there.
        let chosen = rt
            .decisions()
            .into_iter()
            .rev()
            .find(|d| d.chosen == gpu && d.kernel == "matmul")
            .and_then(|d| d.variant)
            .unwrap_or_else(|| OWN.to_owned());
        let modes: Vec<usize> = (0..implementations.len()).collect();
        let times = interleaved_for(
            &modes,
            reps,
            min_secs,
            n as u64,
            |_| Ok::<(), pel::Error>(()),
            |i, _| {
                rt.run_on(gpu, &implementations[i].1, &[&a, &b, &c], &p)?;
                rt.read(&c).map(drop)
            },
            |_| true,
        )?;
        let device = rt
            .device(gpu)
            .map_or_else(|_| gpu.to_string(), |d| d.label());
        for (i, (label, _)) in implementations.iter().enumerate() {
            points.push(VariantPoint {
                kernel: "matmul".to_owned(),
                device: device.clone(),
                size: format!("{n}×{n}×{n}"),
                variant: label.clone(),
                time_s: times[&i],
                chosen: *label == chosen,
            });
        }
    }
    Ok(points)
}
