//! The commands that look at the machine, the sample kernels and the
//! performance model, and the tour: each calls the library and prints.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use pel::kernels;
use pel::tour::{TourOptions, TourReport};
use pel::{Runtime, Target};

use crate::{ModelAction, SimulateAction, SimulateRun};

pub(crate) fn devices() -> Result<ExitCode> {
    let rt = Runtime::new()?;
    for d in rt.devices() {
        say!("{d}");
    }
    if rt.gpu_count() == 0 {
        say!(
            "no GPU adapter: everything runs on the CPU (PEL_GPU={}; install mesa-vulkan-drivers for a software Vulkan adapter)",
            std::env::var("PEL_GPU").unwrap_or_else(|_| "unset".into())
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list() -> Result<ExitCode> {
    for s in kernels::samples() {
        say!(
            "{:<12} {}  [size: {}, default {}]",
            s.name,
            s.about,
            s.size_meaning,
            s.default_size
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(name: &str, size: Option<usize>, target: Target, seed: u64) -> Result<ExitCode> {
    let Some(sample) = kernels::sample(name) else {
        let names: Vec<_> = kernels::samples().iter().map(|s| s.name).collect();
        eprintln!(
            "pel: no kernel `{name}`; the kernels are: {}",
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let rt = Runtime::new()?;
    if let Target::On(b) = target {
        if let Err(e) = rt.device(b) {
            eprintln!("pel: {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let size = size.unwrap_or(sample.default_size);
    // An untimed first run compiles the pipeline, so the time shown is the
    // kernel's rather than start-up's.
    sample.check(&rt, target, size.min(64), seed)?;
    let check = sample
        .check(&rt, target, size, seed)
        .with_context(|| format!("running {name}"))?;
    let device = rt.device(check.backend)?;
    let reason = pel::tour::placement(&check);
    say!(
        "{name} {} on {} ({reason}): {} — {}",
        check.shape,
        device.label(),
        pel::secs(check.elapsed.as_secs_f64()),
        check
    );
    if let Some(d) = rt.decisions().last() {
        say!("decision: {d}");
    }
    say!("transfers: {}", rt.stats());
    Ok(if check.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The tour, each row printed as it is measured.
pub(crate) fn tour(csv: Option<&Path>, reps: usize, kernels: &[String]) -> Result<ExitCode> {
    let Some(samples) = crate::only(kernels::samples(), |s| s.name, kernels) else {
        return Ok(ExitCode::from(2));
    };
    let rt = Runtime::new()?;
    say!("pel tour: every sample kernel on every backend and with automatic placement,");
    say!("each run checked against its serial reference.\n");
    for d in rt.devices() {
        say!("  {}", d.label());
    }
    if rt.gpu_count() == 0 {
        say!("  (no GPU adapter: CPU only)");
    }
    say!("\n{}", TourReport::header(&rt.backends()));
    let options = TourOptions {
        samples,
        reps,
        ..TourOptions::default()
    };
    let report = pel::tour::run(&rt, &options, &mut |row| say!("{row}"))?;
    say!("\n{}", report.notes());
    if let Some(p) = rt.model_path() {
        say!("performance model: {}", p.display());
    }
    if let Some(path) = csv {
        write_file(path, |out| report.write_csv(out))?;
    }
    Ok(if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes `path` with `write`, and says so.
pub(crate) fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
    );
    write(&mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .with_context(|| format!("writing {}", path.display()))?;
    say!("wrote {}", path.display());
    Ok(())
}

pub(crate) fn trace(out: &Path) -> Result<ExitCode> {
    let rt = Runtime::new()?;
    pel::demo::record_trace(&rt)?;
    rt.write_trace(out)
        .with_context(|| format!("writing {}", out.display()))?;
    let events = rt.trace_events();
    let lanes: std::collections::BTreeSet<u32> = events.iter().map(|e| e.tid).collect();
    say!(
        "wrote {} ({} events on {} lanes; open it in ui.perfetto.dev)",
        out.display(),
        events.len(),
        lanes.len()
    );
    if pel::demo::overlapping(&events, rt.gpu_count()).is_some() {
        say!("a CPU-lane and a GPU-lane event overlap in time");
    }
    Ok(ExitCode::SUCCESS)
}

/// `pel simulate --machine FILE WORKLOAD`.
pub(crate) fn simulate_run(run: SimulateRun) -> Result<ExitCode> {
    use pel_bench::simulate::{Size, Workload, simulate};
    let (Some(file), Some(workload)) = (&run.machine, &run.workload) else {
        anyhow::bail!(
            "give a machine and a workload: pel simulate --machine machines/h200x4-nvlink.json demo (or a subcommand: see pel simulate --help)"
        );
    };
    let machine = pel::Machine::load(file)?;
    let workload: Workload = workload.parse().map_err(anyhow::Error::msg)?;
    let size = Size {
        width: run.width,
        steps: run.steps,
        iterations: run.iterations,
        elems: run.elems,
    };
    let report = simulate(&machine, workload, size, run.trace.as_deref())?;
    say!(
        "{} on {}: {} tasks",
        report.workload,
        report.machine,
        report.tasks
    );
    say!(
        "predicted makespan {} (simulated in {} of host time)",
        pel::secs(report.makespan_s),
        pel::secs(report.host_s)
    );
    say!("\n| device | tasks | busy | busy fraction |\n|---|---|---|---|");
    for d in &report.devices {
        say!(
            "| {} | {} | {} | {:.1}% |",
            d.device,
            d.kernels,
            pel::secs(d.busy_s),
            100.0 * d.busy_fraction
        );
    }
    say!("\n| link | bytes |\n|---|---|");
    for l in &report.links {
        say!("| {} | {} |", l.link, pel::human_bytes(l.bytes));
    }
    if let Some(path) = &run.trace {
        say!("\ntrace (virtual time): {}", path.display());
    }
    if let Some(path) = &run.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        say!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn simulate(action: SimulateAction) -> Result<ExitCode> {
    match action {
        SimulateAction::Validate { json, reps } => {
            let dir = std::env::temp_dir().join(format!("pel-validate-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let total = 5 * 4;
            let report = crate::with_progress(total, |step| {
                pel_bench::simulate::validate(&dir, reps, step)
            });
            let _ = std::fs::remove_dir_all(&dir);
            let report = report?;
            say!("| workload | devices | real | simulated | error |\n|---|---|---|---|---|");
            for p in &report.pairs {
                say!(
                    "| {} | {} | {} | {} | {:.1}% |",
                    p.workload,
                    p.config,
                    pel::secs(p.real_s),
                    pel::secs(p.simulated_s),
                    100.0 * p.error
                );
            }
            say!(
                "\n{} pairs: median error {:.1}%, worst {:.1}%",
                report.pairs.len(),
                100.0 * report.median_error,
                100.0 * report.worst_error
            );
            if let Some(path) = &json {
                std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                say!("wrote {}", path.display());
            }
        }
        SimulateAction::Scale { machine, out, json } => {
            let m = pel::Machine::load(&machine)?;
            let points = pel_bench::simulate::scale(&m)?;
            say!("| workload | GPUs | makespan | speed-up |\n|---|---|---|---|");
            for p in &points {
                say!(
                    "| {} | {} | {} | {:.2} |",
                    p.workload,
                    p.gpus,
                    pel::secs(p.makespan_s),
                    p.speedup
                );
            }
            pel_bench::simulate::plot_scale(
                &points,
                &format!("{}: predicted speed-up", m.name),
                &out,
            )
            .with_context(|| format!("writing {}", out.display()))?;
            say!("wrote {}", out.display());
            if let Some(path) = &json {
                std::fs::write(path, serde_json::to_string_pretty(&points)? + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                say!("wrote {}", path.display());
            }
        }
        SimulateAction::Describe { out } => {
            let json = Runtime::new()?.describe().to_json();
            match out {
                Some(path) => {
                    std::fs::write(&path, json + "\n")
                        .with_context(|| format!("writing {}", path.display()))?;
                    say!("wrote {}", path.display());
                }
                None => say!("{json}"),
            }
        }
        SimulateAction::Check { file } => {
            let m = pel::Machine::load(&file)?;
            say!(
                "{}: {} ({} CPU cores, {} GPUs)",
                file.display(),
                m.name,
                m.cpu.cores,
                m.gpus.len()
            );
            for (g, gpu) in m.gpus.iter().enumerate() {
                let link = m.link_of(g).map_or(String::new(), |l| {
                    format!(
                        "{}: {:.1} GB/s, {}",
                        l.name,
                        l.bandwidth / 1e9,
                        pel::secs(l.latency_s)
                    )
                });
                say!(
                    "  {}: {:.0} GB, link {link}",
                    gpu.name,
                    gpu.memory_bytes as f64 / 1e9
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn model(action: ModelAction) -> Result<ExitCode> {
    let rt = Runtime::new()?;
    match action {
        ModelAction::Path => match rt.model_path() {
            Some(p) => say!("{}", p.display()),
            None => say!("(no model file)"),
        },
        ModelAction::Reset => {
            rt.reset_model();
            say!(
                "performance model reset{}",
                rt.model_path()
                    .map(|p| format!(": {}", p.display()))
                    .unwrap_or_default()
            );
        }
        ModelAction::Show => {
            let rows = rt.model_rows();
            if let Some(p) = rt.model_path() {
                say!("performance model: {}\n", p.display());
            }
            if rows.is_empty() {
                say!("(empty: run `pel calibrate`, or use pel, to fill it)");
                return Ok(ExitCode::SUCCESS);
            }
            say!(
                "| {:<10} | {:<44} | {:>21} | {:>7} | {:>10} | {:>10} | {:>10} | {:<32} |",
                "kernel",
                "device",
                "size bucket",
                "samples",
                "mean",
                "median",
                "spread",
                "fitted curve"
            );
            say!(
                "|{:-<12}|{:-<46}|{:->23}|{:->9}|{:->12}|{:->12}|{:->12}|{:-<34}|",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                ""
            );
            for r in rows {
                say!(
                    "| {:<10} | {:<44} | {:>21} | {:>7} | {:>10} | {:>10} | {:>10} | {:<32} |",
                    r.kernel,
                    truncate(&r.device, 44),
                    format!("{}–{}", r.bucket_from, r.bucket_to),
                    if r.summary.outliers > 0 {
                        format!("{} ({}✗)", r.summary.samples, r.summary.outliers)
                    } else {
                        r.summary.samples.to_string()
                    },
                    pel::secs(r.summary.mean),
                    pel::secs(r.summary.median),
                    pel::secs(r.summary.spread),
                    r.curve.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pel shader [NAME]`: a sample shader's whole source, or their names.
pub(crate) fn shader(name: Option<&str>) -> Result<ExitCode> {
    match name {
        None => {
            for (name, _) in kernels::SHADERS {
                say!("{name}");
            }
        }
        Some(name) => match kernels::shader(name) {
            Some(source) => say!("{}", source.trim_end()),
            None => {
                eprintln!("pel: no sample shader `{name}`; `pel shader` lists them");
                return Ok(ExitCode::from(2));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// `pel validate FILE|NAME`: a file that exists is read as it is; otherwise
/// a sample shader's name stands for its whole source as pel builds it.
pub(crate) fn validate(file: &Path, entry: &str) -> Result<ExitCode> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "shader".to_owned());
    let sample = kernels::shader(&stem);
    let (source, name) = match (file.exists(), sample) {
        (false, Some(whole)) if file.as_os_str() == stem.as_str() => (whole.to_owned(), stem),
        _ => (
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?,
            stem,
        ),
    };
    match pel::Reflection::of(&name, &source, entry) {
        Ok(r) => {
            say!(
                "{}: valid; entry `{}`, @workgroup_size({}, {}, {})",
                file.display(),
                r.entry,
                r.workgroup_size[0],
                r.workgroup_size[1],
                r.workgroup_size[2]
            );
            say!("| group | binding | name | access | type |");
            say!("|---|---|---|---|---|");
            for b in &r.storage {
                say!(
                    "| {} | {} | {} | {} | array<{}> |",
                    b.group,
                    b.binding,
                    b.name,
                    b.access,
                    b.elem
                );
            }
            if let Some(u) = &r.uniform {
                say!(
                    "| 0 | {} | {} | uniform | params, {} bytes |",
                    u.binding,
                    u.name,
                    u.size
                );
            }
            if r.prelude {
                say!(
                    "prelude: appended after line {} (the shader calls pel_index or pel_workgroup_index)",
                    source.lines().count()
                );
            }
            if r.unfolds_grid {
                say!(
                    "grid: takes @builtin(num_workgroups), so launches past a GPU's 65,535 workgroups per dimension fold into 2-D"
                );
            } else {
                say!(
                    "grid: takes no @builtin(num_workgroups), so launches past a GPU's 65,535 workgroups per dimension run on the CPU only (index with pel_index(id, groups) to lift this)"
                );
            }
            if r.workgroup_memory > 0 {
                say!(
                    "workgroup memory: {} bytes per workgroup",
                    r.workgroup_memory
                );
            }
            let measured: Vec<String> = r
                .storage
                .iter()
                .filter(|b| b.array_length)
                .map(|b| format!("`{}`", b.name))
                .collect();
            if !measured.is_empty() {
                say!(
                    "arrayLength: taken of {}, so a call with any of them empty runs on the CPU only",
                    measured.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // naga's message shows the line, with the column marked.
            eprintln!("{}: {e}", file.display());
            if file.exists() && sample.is_some() {
                eprintln!(
                    "(a sample shader file leaves out the shared pieces and params structs pel appends: `pel validate {}` checks its whole source)",
                    name
                );
            }
            Ok(ExitCode::from(2))
        }
    }
}

pub(crate) fn calibrate(quick: bool) -> Result<ExitCode> {
    let rt = Runtime::new()?;
    let sweep = pel::calibrate::sweep(quick);
    let before = rt.stats().calibration_runs;
    crate::with_progress(sweep.iter().map(|(_, s)| s.len()).sum(), |step| {
        pel::calibrate::calibrate(&rt, &sweep, step)
    })?;
    say!(
        "calibrated {} kernels over {} sizes with {} exploration runs; model: {}",
        sweep.len(),
        sweep.iter().map(|(_, s)| s.len()).sum::<usize>(),
        rt.stats().calibration_runs - before,
        rt.model_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not saved".into())
    );
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
