//! The kernels suite's variants: each implementation of a kernel with
//! variants timed alone on each device it runs on, in the same shuffled
//! rounds, beside the one placement chose there.
//!
//! The cases: matmul at 256³ on every GPU (the tiled shader against the
//! register-blocked one) and on the CPU at a small and a large size
//! (faer on the pool against faer on one thread); one pass of sum, max
//! and argmax over 4 Mi elements on every GPU (a tree of barriers against
//! one barrier). min's pass is max's with the comparison turned round.
//! radix_sort's GPU plans (passes of 4-bit or of 8-bit digits) are timed
//! the same way, each whole sort of 64 Ki keys alone.

use pel::kernels::Matmul;
use pel::kernels::matmul::MatmulParams;
use pel::kernels::reduce::{self, Argmax, Reduce, ReduceOp, ReduceParams};
use pel::kernels::sort::{Digits, Sort};
use pel::kernels::sum::{self, Sum, SumParams};
use pel::{Backend, Buffer, BufferArg, Kernel, Result, Runtime, Target};
use serde::Serialize;

use crate::interleaved_for;
use crate::peers::random_f32;

/// The label of a kernel's own implementation (its variants have theirs).
pub const OWN: &str = "own";

/// Elements of the reductions' pass.
const REDUCE_N: usize = 1 << 22;

/// Forced calls that calibrate a device's variants before they are timed
/// (more than the model needs to settle them).
const CALIBRATION: usize = 40;

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

/// One kernel call whose implementations are timed.
struct Case<'a, P> {
    kernel: &'a Kernel,
    size: String,
    args: &'a [&'a dyn BufferArg],
    /// The result the timing reads back (to the host) after each run.
    out: &'a Buffer<f32>,
    params: P,
    devices: Vec<Backend>,
}

/// Every case on this runtime whose kernel `keep` names (as `pel list`
/// does: `matmul`, `sum`, `max`, `argmax`, `radix_sort`).
pub fn variants(
    rt: &Runtime,
    reps: usize,
    min_secs: f64,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<VariantPoint>> {
    let gpus = rt.gpu_backends();
    let mut points = Vec::new();
    if keep("matmul") {
        let mm = Matmul::new()?;
        for (n, devices) in [
            (256, gpus.clone()),
            (32, vec![Backend::Cpu]),
            (512, vec![Backend::Cpu]),
        ] {
            let a = rt.buffer(&random_f32(11, n * n));
            let b = rt.buffer(&random_f32(12, n * n));
            let c = rt.zeros::<f32>(n * n);
            let case = Case {
                kernel: mm.kernel(),
                size: format!("{n}×{n}×{n}"),
                args: &[&a, &b, &c],
                out: &c,
                params: MatmulParams::new(n, n, n)?,
                devices,
            };
            points.extend(time(rt, &case, reps, min_secs)?);
        }
    }
    let x = rt.buffer(&random_f32(13, REDUCE_N));
    let size = format!("{REDUCE_N} (one pass)");
    if keep("sum") {
        let groups = REDUCE_N.div_ceil(sum::CHUNK);
        let partial = rt.zeros::<f32>(groups);
        let s = Sum::new()?;
        let case = Case {
            kernel: s.kernel(),
            size: size.clone(),
            args: &[&x, &partial],
            out: &partial,
            params: SumParams {
                n: REDUCE_N as u32,
                groups: groups as u32,
            },
            devices: gpus.clone(),
        };
        points.extend(time(rt, &case, reps, min_secs)?);
    }
    let groups = REDUCE_N.div_ceil(reduce::CHUNK);
    let params = ReduceParams {
        n: REDUCE_N as u32,
        groups: groups as u32,
    };
    let partial = rt.zeros::<f32>(groups);
    if keep("max") {
        let max = Reduce::new(ReduceOp::Max)?;
        let case = Case {
            kernel: max.kernel(),
            size: size.clone(),
            args: &[&x, &partial],
            out: &partial,
            params,
            devices: gpus.clone(),
        };
        points.extend(time(rt, &case, reps, min_secs)?);
    }
    if keep("argmax") {
        let index = rt.zeros::<u32>(groups);
        let argmax = Argmax::new()?;
        let case = Case {
            kernel: argmax.kernel(),
            size,
            args: &[&x, &partial, &index],
            out: &partial,
            params,
            devices: gpus,
        };
        points.extend(time(rt, &case, reps, min_secs)?);
    }
    if keep("radix_sort") {
        points.extend(sort_plans(rt, reps, min_secs)?);
    }
    Ok(points)
}

/// Keys of the sort plans' case.
const SORT_N: usize = 1 << 16;

/// radix_sort's plans on every GPU: sorts forced there first let the model
/// measure them and choose; then each plan's whole sort is timed alone,
/// interleaved in shuffled rounds (keys written afresh, sorted, read).
fn sort_plans(rt: &Runtime, reps: usize, min_secs: f64) -> Result<Vec<VariantPoint>> {
    let sort = Sort::new()?;
    let input: Vec<u32> = (0..SORT_N as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) ^ 0x9e37)
        .collect();
    let keys = rt.buffer(&input);
    let mut points = Vec::new();
    for gpu in rt.gpu_backends() {
        for _ in 0..CALIBRATION / 4 {
            rt.write(&keys, &input)?;
            sort.radix_sort(rt, Target::On(gpu), &keys)?;
        }
        let chosen = last_variant(rt, gpu, "radix_sort");
        let modes: Vec<usize> = (0..Digits::ALL.len()).collect();
        let times = interleaved_for(
            &modes,
            reps,
            min_secs,
            SORT_N as u64,
            |_| Ok::<(), pel::Error>(()),
            |i, _| {
                rt.write(&keys, &input)?;
                let on = Target::On(gpu);
                sort.radix_sort_passes_with(rt, on, &keys, None, Digits::ALL[i])?;
                rt.read(&keys).map(drop)
            },
            |_| true,
        )?;
        let device = device_label(rt, gpu);
        for (i, digits) in Digits::ALL.into_iter().enumerate() {
            points.push(VariantPoint {
                kernel: "radix_sort".to_owned(),
                device: device.clone(),
                size: format!("{SORT_N} keys"),
                variant: digits.label().to_owned(),
                time_s: times[&i],
                chosen: chosen.as_deref() == Some(digits.label()),
            });
        }
    }
    Ok(points)
}

/// Each implementation of `case`'s kernel that runs on each of its devices,
/// timed alone. Forced calls to the device first calibrate its variants (a
/// forced call still chooses among them); then every implementation is
/// timed alone, interleaved in shuffled rounds, each run followed by a
/// read of the result.
fn time<P: bytemuck::Pod>(
    rt: &Runtime,
    case: &Case<'_, P>,
    reps: usize,
    min_secs: f64,
) -> Result<Vec<VariantPoint>> {
    let kernel = case.kernel;
    let name = kernel.name();
    let mut points = Vec::new();
    for &device in &case.devices {
        // The kernel's own code, and the variants written for this kind of
        // device (a GPU variant has no CPU code, a CPU variant has).
        let on_cpu = device == Backend::Cpu;
        let mut implementations: Vec<(String, Kernel)> = vec![(OWN.to_owned(), kernel.alone())];
        for label in kernel.variants() {
            if let Some(k) = kernel.variant_kernel(label)
                && k.has_cpu() == on_cpu
            {
                implementations.push((label.to_owned(), k.clone()));
            }
        }
        for _ in 0..CALIBRATION {
            rt.execute(Target::On(device), kernel, case.args, &case.params)?;
            rt.read(case.out)?;
        }
        // The last of them, calibrated by now: what the model runs there.
        let chosen = last_variant(rt, device, name).unwrap_or_else(|| OWN.to_owned());
        let modes: Vec<usize> = (0..implementations.len()).collect();
        let times = interleaved_for(
            &modes,
            reps,
            min_secs,
            kernel.id(),
            |_| Ok::<(), pel::Error>(()),
            |i, _| {
                rt.run_on(device, &implementations[i].1, case.args, &case.params)?;
                rt.read(case.out).map(drop)
            },
            |_| true,
        )?;
        let label = device_label(rt, device);
        for (i, (variant, _)) in implementations.iter().enumerate() {
            points.push(VariantPoint {
                kernel: name.to_owned(),
                device: label.clone(),
                size: case.size.clone(),
                variant: variant.clone(),
                time_s: times[&i],
                chosen: *variant == chosen,
            });
        }
    }
    Ok(points)
}

/// The variant (or plan) named by the latest decision for `kernel` on
/// `device`: what the model runs there once calibrated (`None`: the
/// kernel's own implementation, or no decision).
fn last_variant(rt: &Runtime, device: Backend, kernel: &str) -> Option<String> {
    rt.decisions()
        .into_iter()
        .rev()
        .find(|d| d.chosen == device && d.kernel == kernel)
        .and_then(|d| d.variant)
}

/// The device as `pel devices` names it.
fn device_label(rt: &Runtime, device: Backend) -> String {
    rt.device(device)
        .map_or_else(|_| device.to_string(), |d| d.label())
}
