//! `pel bench`: runs the suites of pel-bench and prints each one's table;
//! writes the JSON, CSV and plots asked for.

use std::process::ExitCode;

use anyhow::{Context, Result};
use pel::Runtime;
use pel::csv::Row;
use pel::kernels::samples::Sample;

use crate::Suite;

/// The options every benchmark suite takes.
#[derive(clap::Args)]
pub(crate) struct BenchOptions {
    /// Write the report as JSON here (one suite: its report; `all`: one report per suite).
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
    /// Write every measured median as CSV here: suite, kernel, size, shape, mode, seconds.
    #[arg(long)]
    pub(crate) csv: Option<std::path::PathBuf>,
    /// Write one SVG plot per kernel (time against size, a line per backend) into this directory (kernels suite).
    #[arg(long)]
    pub(crate) plot: Option<std::path::PathBuf>,
    /// Fewer, smaller sizes and fewer repetitions.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Timed repetitions per mode per point.
    #[arg(long)]
    pub(crate) reps: Option<usize>,
    /// Only these kernels (repeatable; kernels and routing suites).
    #[arg(long = "kernel")]
    pub(crate) kernels: Vec<String>,
}

impl BenchOptions {
    /// `sweep` limited to the kernels asked for; `None`, with a message,
    /// when none is left.
    fn only(&self, sweep: Vec<(Sample, Vec<usize>)>) -> Option<Vec<(Sample, Vec<usize>)>> {
        crate::only(sweep, |(s, _)| s.name, &self.kernels)
    }

    /// Timed repetitions: `--reps`, else `quick`'s or `full`'s.
    pub(crate) fn reps_or(&self, quick: usize, full: usize) -> usize {
        self.reps.unwrap_or(if self.quick { quick } else { full })
    }
}

/// What a suite hands back: its report as JSON and its medians as CSV rows;
/// `None` when it was asked for no kernel it has.
pub(crate) type Outcome = Option<(serde_json::Value, Vec<Row>)>;

/// Runs `suite` (every suite for `all`), prints each one's table, and
/// writes the JSON, CSV and plots asked for.
pub(crate) fn bench(suite: Suite, opts: &BenchOptions) -> Result<ExitCode> {
    let suites: &[Suite] = match suite {
        Suite::All => &[
            Suite::Kernels,
            Suite::Peers,
            Suite::Routing,
            Suite::Graph,
            Suite::Taskbench,
        ],
        // Its own jobs, each rank with its own runtime.
        Suite::Cluster => {
            return write_json(crate::cluster::cluster(opts)?, opts);
        }
        _ => std::slice::from_ref(&suite),
    };
    let rt = Runtime::new()?;
    let mut reports = serde_json::Map::new();
    let mut rows = Vec::new();
    for &s in suites {
        let (name, outcome) = match s {
            Suite::Kernels => ("kernels", kernels(&rt, opts)?),
            Suite::Peers => ("peers", peers(&rt, opts)?),
            Suite::Routing => ("routing", routing(&rt, opts)?),
            Suite::Graph => ("graph", graph(&rt, opts)?),
            Suite::Taskbench => ("taskbench", taskbench(&rt, opts)?),
            Suite::All | Suite::Cluster => continue,
        };
        let Some((report, medians)) = outcome else {
            return Ok(ExitCode::from(2));
        };
        reports.insert(name.to_owned(), report);
        rows.extend(medians);
        say!("");
    }
    if let Some(path) = &opts.json {
        let value = if suites.len() == 1 {
            reports
                .into_iter()
                .next()
                .map(|(_, v)| v)
                .unwrap_or_default()
        } else {
            serde_json::Value::Object(reports)
        };
        std::fs::write(path, serde_json::to_string_pretty(&value)?)
            .with_context(|| format!("writing {}", path.display()))?;
        say!("wrote {}", path.display());
    }
    if let Some(path) = &opts.csv {
        crate::commands::write_file(path, |out| pel::csv::write(out, &rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn kernels(rt: &Runtime, opts: &BenchOptions) -> Result<Outcome> {
    let Some(sweep) = opts.only(pel_bench::kernels::kernels_sweep(opts.quick)) else {
        return Ok(None);
    };
    let reps = opts.reps_or(3, 7);
    let points: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let bar = crate::progress(points + 1);
    bar.set_message("roofline: triad and GEMM");
    let roofline = pel_bench::kernels::roofline(rt, opts.quick, reps)?;
    bar.set_position(1);
    let min_secs = if opts.quick { 0.02 } else { 0.3 };
    let report = pel_bench::kernels::kernels(
        rt,
        &sweep,
        roofline,
        reps,
        min_secs,
        &mut |done, _, what| {
            bar.set_position(done as u64 + 1);
            bar.set_message(what.to_owned());
        },
    )?;
    bar.set_message("variants: each implementation alone");
    let mut report = report;
    let keep = |k: &str| opts.kernels.is_empty() || opts.kernels.iter().any(|o| o == k);
    report.variants = pel_bench::variants::variants(rt, reps, min_secs, &keep)?;
    bar.finish_and_clear();

    say!("## kernels\n");
    say!("| backend | triad GB/s | GEMM GFLOP/s |");
    say!("|---|---:|---:|");
    for (b, p) in &report.roofline {
        say!(
            "| {b} | {:.1} (n={}) | {:.1} (n={}) |",
            p.bandwidth_gbs,
            p.triad_elements,
            p.gflops,
            p.gemm_n
        );
    }
    say!("");
    say!(
        "| kernel | size | cpu | gpu | auto | choice | GFLOP/s | GB/s | of roofline | peer | auto/peer |"
    );
    say!("|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|");
    for p in &report.points {
        say!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} |",
            p.kernel,
            p.shape,
            pel::secs(p.medians.cpu_s),
            p.medians.gpu_s.map(pel::secs).unwrap_or_else(|| "-".into()),
            pel::secs(p.medians.auto_s),
            p.medians.choice,
            p.gflops,
            p.gbs,
            p.roofline_fraction
                .map(|f| format!("{:.0}%", f * 100.0))
                .unwrap_or_else(|| "-".into()),
            p.peer.as_deref().unwrap_or("-"),
            p.auto_vs_peer
                .map(|r| format!("{r:.3}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    say!(
        "\nTimes are medians from host-resident inputs to the result on the host; GFLOP/s, GB/s and the roofline fraction are automatic placement's, against the peaks of the backend it chose."
    );
    if !report.variants.is_empty() {
        say!("\n### variants, each alone (the model's choice marked)\n");
        say!("| kernel | device | size | variant | time | chosen |");
        say!("|---|---|---|---|---:|---|");
        for v in &report.variants {
            say!(
                "| {} | {} | {} | {} | {} | {} |",
                v.kernel,
                v.device,
                v.size,
                v.variant,
                pel::secs(v.time_s),
                if v.chosen { "✓" } else { "" }
            );
        }
    }
    if let Some(dir) = &opts.plot {
        let files = pel_bench::plot::kernel_plots(&report.points, dir)
            .with_context(|| format!("plotting into {}", dir.display()))?;
        say!("wrote {} plots into {}", files.len(), dir.display());
    }
    Ok(Some((serde_json::to_value(&report)?, report.csv_rows())))
}

fn peers(rt: &Runtime, opts: &BenchOptions) -> Result<Outcome> {
    let reps = opts.reps_or(3, 9);
    let report = crate::with_progress(6, |step| {
        pel_bench::peers::peers(rt, opts.quick, reps, step)
    })?;
    let ratio = |v: Option<f64>| v.map_or("no GPU".to_owned(), |v| format!("{v:.3}"));
    say!("## peers\n");
    say!("| key | value | target |");
    say!("|---|---|---|");
    say!("| gemm_vs_faer | {:.3} | ≤ 1.10 |", report.gemm_vs_faer);
    say!("| saxpy_vs_rayon | {:.3} | ≤ 1.10 |", report.saxpy_vs_rayon);
    say!(
        "| sort_speedup_vs_par_sort | {:.3} | ≥ 1.5 |",
        report.sort_speedup_vs_par_sort
    );
    say!(
        "| gpu_vs_raw_wgpu_saxpy | {} | ≤ 1.05 |",
        ratio(report.gpu_vs_raw_wgpu_saxpy)
    );
    say!(
        "| gpu_vs_raw_wgpu_matmul | {} | ≤ 1.05 |",
        ratio(report.gpu_vs_raw_wgpu_matmul)
    );
    say!(
        "| chain_vs_raw_wgpu | {} | ≤ 1.10 |",
        ratio(report.chain_vs_raw_wgpu)
    );
    say!(
        "| sort_gpu_waits | {} | 1 |",
        report
            .sort_gpu_waits
            .map_or("no GPU".to_owned(), |w| w.to_string())
    );
    say!(
        "| dispatch_overhead_us | {:.3} | ≤ 0.6 |",
        report.dispatch_overhead_us
    );
    say!("\nmedians:");
    for (k, v) in &report.medians_s {
        say!("  {k:<24} {}", pel::secs(*v));
    }
    Ok(Some((serde_json::to_value(&report)?, report.csv_rows())))
}

fn graph(rt: &Runtime, opts: &BenchOptions) -> Result<Outcome> {
    let reps = opts.reps_or(5, 15);
    let report = crate::with_progress(4, |step| pel_bench::graph(rt, reps, step))?;
    say!("## graph\n");
    say!("| {:<38} | {:>10} |", "placement", "median");
    say!("|{:-<40}|{:->12}|", "", "");
    for (k, v) in &report.makespan_s {
        let what = format!("demo graph ({} tasks), {k}", report.tasks);
        say!("| {what:<38} | {:>10} |", pel::secs(*v));
    }
    for (k, v) in &report.coexec_s {
        let what = format!("mandelbrot 1024×1024, {k}");
        say!("| {what:<38} | {:>10} |", pel::secs(*v));
    }
    let share = report
        .coexec_gpu_share
        .map(|s| format!("{:.0}%", s * 100.0))
        .unwrap_or_else(|| "unknown".to_owned());
    say!(
        "\nmakespan_ratio {:.3} (target ≤ 1.02), coexec_ratio {:.3} (target ≤ 1.02; GPU share {share})",
        report.makespan_ratio,
        report.coexec_ratio
    );
    Ok(Some((serde_json::to_value(&report)?, report.csv_rows())))
}

fn taskbench(rt: &Runtime, opts: &BenchOptions) -> Result<Outcome> {
    let reps = opts.reps_or(3, 7);
    let steps = pel_bench::taskbench::PATTERNS.len() * if opts.quick { 7 } else { 10 };
    let report = crate::with_progress(steps, |step| {
        pel_bench::taskbench(rt, opts.quick, reps, step)
    })?;
    say!(
        "## taskbench ({} points × {} steps, {} values a task; pel's tasks on the CPU)\n",
        report.width,
        report.steps,
        report.elems
    );
    say!(
        "| {:<10} | {:>10} | {:>12} | {:>12} | {:>8} | {:>8} |",
        "pattern",
        "iterations",
        "pel µs/task",
        "rayon µs/task",
        "pel eff",
        "rayon eff"
    );
    say!(
        "|{:-<12}|{:->12}|{:->14}|{:->14}|{:->10}|{:->10}|",
        "",
        "",
        "",
        "",
        "",
        ""
    );
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |v| format!("{v:.p$}"));
    for p in &report.points {
        say!(
            "| {:<10} | {:>10} | {:>12} | {:>12} | {:>8} | {:>8} |",
            p.pattern,
            p.iterations,
            f(p.granularity_us.pel, 2),
            f(p.granularity_us.rayon, 2),
            f(p.efficiency.pel, 3),
            f(p.efficiency.rayon, 3)
        );
    }
    say!("");
    for (pattern, m) in &report.metg_us {
        say!(
            "METG(50%) {pattern}: pel {} µs, rayon {} µs",
            f(m.pel, 2),
            f(m.rayon, 2)
        );
    }
    say!(
        "simulator: {:.0} simulated stencil_1d tasks a second of host time ({} tasks on {})",
        report.simulated_tasks_per_s,
        report.simulated_tasks,
        report.simulated_machine
    );
    Ok(Some((serde_json::to_value(&report)?, report.csv_rows())))
}

fn routing(rt: &Runtime, opts: &BenchOptions) -> Result<Outcome> {
    let Some(sweep) = opts.only(pel::calibrate::crossover_sweep(opts.quick)) else {
        return Ok(None);
    };
    let reps = opts.reps_or(3, 7);
    let report = crate::with_progress(sweep.iter().map(|(_, s)| s.len()).sum(), |step| {
        pel_bench::routing(rt, &sweep, reps, step)
    })?;

    say!("## routing\n");
    let backends = rt.backends();
    let mut header = format!("| {:<10} | {:>9} |", "kernel", "size");
    let mut rule = format!("|{:-<12}|{:->11}|", "", "");
    for b in &backends {
        header += &format!(" {:>10} |", b.to_string());
        rule += &format!("{:->12}|", "");
    }
    header += &format!(" {:>10} | {:<6} | {:>6} |", "auto", "choice", "regret");
    rule += &format!("{:->12}|{:-<8}|{:->8}|", "", "", "");
    say!("{header}\n{rule}");
    for p in &report.points {
        let mut row = format!("| {:<10} | {:>9} |", p.kernel, p.size);
        for b in &backends {
            row += &format!(
                " {:>10} |",
                p.medians
                    .backends
                    .get(&b.to_string())
                    .map(|s| pel::secs(*s))
                    .unwrap_or_default()
            );
        }
        row += &format!(
            " {:>10} | {:<6} | {:>6.3} |",
            pel::secs(p.medians.auto_s),
            p.medians.choice,
            p.medians.auto_s / p.medians.best_single_s()
        );
        say!("{row}");
    }
    say!(
        "\nregret_total {:.3} (target ≤ 1.05), regret_max {:.3} (target ≤ 1.25), calibration_runs {} ({} calibrating)",
        report.regret_total,
        report.regret_max,
        report.calibration_runs,
        pel::secs(report.calibration_s)
    );
    Ok(Some((serde_json::to_value(&report)?, report.csv_rows())))
}

/// Writes a lone suite's JSON where asked (a rank of a cluster job, which
/// has none, writes nothing).
fn write_json(outcome: Outcome, opts: &BenchOptions) -> Result<ExitCode> {
    let (Some((report, _)), Some(path)) = (outcome, &opts.json) else {
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::write(path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    say!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
