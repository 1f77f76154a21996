//! Filling the performance model over the sample kernels: the sizes to
//! measure each at, and automatic runs until the dispatcher explores no
//! more. `pel calibrate` runs [`calibrate`] over [`sweep`]; the tour and the
//! benchmark suites calibrate each point with [`calibrate_trial`] before
//! they time automatic placement.

use pel_kernels::samples::{Sample, Trial, samples};
use pel_runtime::{Result, Runtime, Target};

/// Sizes that span the crossovers of saxpy, sum, matmul and mandelbrot, from
/// sizes where a GPU's fixed cost dominates to large ones (`quick` stops
/// lower). The routing benchmark follows these points.
pub fn crossover_sweep(quick: bool) -> Vec<(Sample, Vec<usize>)> {
    let elements: Vec<usize> = if quick {
        vec![1 << 10, 1 << 14, 1 << 18, 1 << 20]
    } else {
        vec![1 << 10, 1 << 13, 1 << 16, 1 << 19, 1 << 22, 1 << 24]
    };
    let pixels: Vec<usize> = if quick {
        vec![1 << 10, 1 << 14, 1 << 18]
    } else {
        vec![1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20]
    };
    let square: Vec<usize> = if quick {
        vec![16, 64, 128]
    } else {
        vec![16, 32, 64, 128, 256, 512]
    };
    // mandelbrot renders the classic full view: every pixel inside the set
    // runs all its iterations, so the compute shows. The seeded random
    // windows are mostly cheap, and there the CPU wins at every size.
    samples()
        .into_iter()
        .filter(|s| matches!(s.name, "saxpy" | "sum" | "matmul" | "mandelbrot"))
        .map(|s| match s.name {
            "matmul" => (s, square.clone()),
            "mandelbrot" => (
                s.prepared_by(|rt, pixels, _seed| {
                    let (w, h) = pel_kernels::square(pixels);
                    let view = pel_kernels::mandelbrot::View::full(w, h);
                    Ok(Box::new(pel_kernels::samples::mandelbrot::trial_of(
                        rt,
                        (w, h),
                        view,
                        256,
                    )?))
                }),
                pixels.clone(),
            ),
            _ => (s, elements.clone()),
        })
        .collect()
}

/// Sizes to calibrate every sample kernel at: [`crossover_sweep`] for the
/// kernels it follows, and for the others their default size and smaller
/// ones by factors of 4 (`quick`: only the smaller ones).
pub fn sweep(quick: bool) -> Vec<(Sample, Vec<usize>)> {
    let mut sweep = crossover_sweep(quick);
    for s in samples() {
        if sweep.iter().any(|(t, _)| t.name == s.name) {
            continue;
        }
        let steps = if quick { 1..3 } else { 0..4 };
        let mut sizes: Vec<usize> = steps
            .rev()
            .map(|k| (s.default_size >> (2 * k)).max(1))
            .collect();
        sizes.dedup();
        sweep.push((s, sizes));
    }
    sweep
}

/// Runs `trial` with automatic placement until a whole run places nothing to
/// calibrate (at most `limit` runs). Returns the runs made.
pub fn calibrate_trial(rt: &Runtime, trial: &mut dyn Trial, limit: usize) -> Result<usize> {
    for run in 0..limit {
        let before = rt.stats().calibration_runs;
        trial.reset(rt)?;
        trial.run(rt, Target::Auto)?;
        if rt.stats().calibration_runs == before {
            return Ok(run + 1);
        }
    }
    Ok(limit)
}

/// Calibrates the model for every sample kernel over `sweep` and saves it,
/// calling `step(done, total, what)` after each point.
///
/// # Examples
///
/// ```no_run
/// let rt = pel::Runtime::new()?;
/// let sweep = pel::calibrate::sweep(true);
/// pel::calibrate::calibrate(&rt, &sweep, &mut |done, total, what| {
///     println!("{done}/{total} {what}");
/// })?;
/// # Ok::<(), pel::Error>(())
/// ```
pub fn calibrate(
    rt: &Runtime,
    sweep: &[(Sample, Vec<usize>)],
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<()> {
    let total: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let mut done = 0;
    for (sample, sizes) in sweep {
        for &size in sizes {
            let mut trial = sample.trial(rt, size, 11)?;
            calibrate_trial(rt, trial.as_mut(), 40)?;
            done += 1;
            step(done, total, &format!("{} {}", sample.name, trial.shape()));
        }
    }
    rt.save_model();
    Ok(())
}
