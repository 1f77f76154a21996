//! The `pel` command line: a thin layer over the library.
//!
//! `pel` alone runs the tour; `pel devices`, `pel list` and `pel run` look
//! at the machine and the sample kernels.

use std::process::ExitCode;

/// `println!` that ends the program quietly when standard output has gone
/// (e.g. `pel run saxpy | head -1`) instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pel::kernels;
use pel::{Backend, Runtime, Target};

#[derive(Parser)]
#[command(
    name = "pel",
    version,
    about = "Parallel Execution Layer: run compute kernels on whichever processor does them best",
    long_about = "Parallel Execution Layer: run compute kernels on whichever processor does them best.\n\nWith no command, runs the tour: every sample kernel on every backend, verified against its serial reference.\n\nEnvironment: PEL_GPU=off opens no GPU; WGPU_BACKEND=vulkan|gl limits the wgpu backends; PEL_CPU_THREADS=N sizes the CPU pool."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// One line per backend: name, driver, API, device type and key limits.
    Devices,
    /// One sample kernel per line, name first.
    List,
    /// Run one sample kernel on random input and check it against its serial reference.
    Run {
        /// The kernel's name (see `pel list`).
        kernel: String,
        /// Problem size (its meaning per kernel is in `pel list`).
        #[arg(long)]
        size: Option<usize>,
        /// Where to run it: cpu, gpu (the first GPU), gpuN, or auto.
        #[arg(long, default_value = "auto")]
        backend: BackendArg,
        /// Seed of the random input.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Run every sample kernel on every backend and with automatic placement, and print a table (the default).
    Tour,
    /// Run a small demo workload with tracing on and write a Chrome trace (open it in ui.perfetto.dev).
    Trace {
        /// Where to write the trace.
        #[arg(long, default_value = "pel-trace.json")]
        out: std::path::PathBuf,
    },
    /// Check a WGSL compute shader as pel reads it: naga's diagnostics with line and column (exit 2), or the kernel's reflected bindings (group, binding, access, type) and workgroup size.
    Validate {
        /// The shader file.
        file: std::path::PathBuf,
        /// Its entry point.
        #[arg(long, default_value = "main")]
        entry: String,
    },
    /// Look at or reset the performance model.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Fill the performance model for every sample kernel over a range of sizes.
    Calibrate {
        /// Fewer, smaller sizes.
        #[arg(long)]
        quick: bool,
    },
    /// Benchmarks, each figure measured beside its peer in the same run. `kernels`: every sample kernel over sizes on every backend, with automatic placement and beside the program a user would otherwise write, against the machine's roofline. `peers`: the six headline ratios. `routing`: placement against the best single backend. `graph`: task graphs and co-execution against the best single device. `all` (the default): every suite.
    Bench {
        /// Which suite (also `--suite`).
        #[arg(value_enum)]
        suite: Option<Suite>,
        /// Which suite.
        #[arg(long = "suite", value_enum, conflicts_with = "suite")]
        suite_flag: Option<Suite>,
        /// Write the report as JSON here (one suite: its report; `all`: one report per suite).
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Write every measured median as CSV here: suite, kernel, size, shape, mode, seconds.
        #[arg(long)]
        csv: Option<std::path::PathBuf>,
        /// Write one SVG plot per kernel (time against size, a line per backend) into this directory (kernels suite).
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
        /// Fewer, smaller sizes and fewer repetitions.
        #[arg(long)]
        quick: bool,
        /// Timed repetitions per mode per point.
        #[arg(long)]
        reps: Option<usize>,
        /// Only these kernels (repeatable; kernels and routing suites).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ModelAction {
    /// A table of kernel, device, size bucket, samples, mean, median, spread and the fitted curve.
    Show,
    /// Forget every measurement.
    Reset,
    /// Print the model file's path.
    Path,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Suite {
    /// Every sample kernel over sizes, on every backend, with automatic placement and beside its peer; roofline fractions.
    Kernels,
    /// pel against the program a user would otherwise write: faer, a rayon loop, rayon's sort, a hand-written wgpu program, a direct call.
    Peers,
    /// Placement against the best single backend, point by point.
    Routing,
    /// The task graph: the demo graph's makespan with submit and automatic placement, and a splittable kernel at its calibrated split, each against the best single device.
    Graph,
    /// Every suite, one after another.
    All,
}

#[derive(Clone, Copy, Debug)]
enum BackendArg {
    Auto,
    Cpu,
    Gpu(usize),
}

impl ValueEnum for BackendArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            BackendArg::Auto,
            BackendArg::Cpu,
            BackendArg::Gpu(0),
            BackendArg::Gpu(1),
            BackendArg::Gpu(2),
            BackendArg::Gpu(3),
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            BackendArg::Auto => clap::builder::PossibleValue::new("auto"),
            BackendArg::Cpu => clap::builder::PossibleValue::new("cpu"),
            BackendArg::Gpu(0) => clap::builder::PossibleValue::new("gpu").alias("gpu0"),
            BackendArg::Gpu(1) => clap::builder::PossibleValue::new("gpu1"),
            BackendArg::Gpu(2) => clap::builder::PossibleValue::new("gpu2"),
            BackendArg::Gpu(_) => clap::builder::PossibleValue::new("gpu3"),
        })
    }
}

impl BackendArg {
    fn target(self) -> Target {
        match self {
            BackendArg::Auto => Target::Auto,
            BackendArg::Cpu => Target::On(Backend::Cpu),
            BackendArg::Gpu(i) => Target::On(Backend::Gpu(i)),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Tour) {
        Command::Devices => devices(),
        Command::List => list(),
        Command::Run {
            kernel,
            size,
            backend,
            seed,
        } => run(&kernel, size, backend, seed),
        Command::Tour => tour(),
        Command::Model { action } => model(action),
        Command::Trace { out } => trace(&out),
        Command::Calibrate { quick } => calibrate(quick),
        Command::Validate { file, entry } => validate(&file, &entry),
        Command::Bench {
            suite,
            suite_flag,
            json,
            csv,
            plot,
            quick,
            reps,
            kernels,
        } => bench(
            suite.or(suite_flag).unwrap_or(Suite::All),
            &BenchOptions {
                json,
                csv,
                plot,
                quick,
                reps,
                kernels,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pel: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn devices() -> Result<ExitCode> {
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

fn list() -> Result<ExitCode> {
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

fn run(name: &str, size: Option<usize>, backend: BackendArg, seed: u64) -> Result<ExitCode> {
    let Some(sample) = kernels::sample(name) else {
        let names: Vec<_> = kernels::samples().iter().map(|s| s.name).collect();
        eprintln!(
            "pel: no kernel `{name}`; the kernels are: {}",
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let rt = Runtime::new()?;
    let target = backend.target();
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
    let reason = placement(&check);
    say!(
        "{name} {} on {} ({reason}): {} — {}",
        check.shape,
        device.label(),
        fmt_time(check.elapsed),
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

/// Why a checked run went where it did, e.g. `modelled` or
/// `calibrating, split 40% gpu`.
fn placement(check: &kernels::Check) -> String {
    match check.placement {
        Some((reason, Some(share))) => format!("{reason}, split {:.0}% gpu", share * 100.0),
        Some((reason, None)) => reason.to_string(),
        None => String::new(),
    }
}

fn tour() -> Result<ExitCode> {
    let rt = Runtime::new()?;
    say!("pel tour: every sample kernel on every backend and with automatic placement,");
    say!("each checked against its serial reference.\n");
    for d in rt.devices() {
        say!("  {}", d.label());
    }
    if rt.gpu_count() == 0 {
        say!("  (no GPU adapter: CPU only)");
    }
    let backends = rt.backends();
    say!();
    // Rows are printed as they are measured, so the widths are fixed: wide
    // enough for every sample's shape and for a split's choice.
    const SIZE: usize = 28;
    const CHOICE: usize = 32;
    let mut header = format!("| {:<16} | {:<SIZE$} |", "kernel", "size");
    let mut rule = format!("|{:-<18}|{:-<w$}|", "", "", w = SIZE + 2);
    for b in &backends {
        header += &format!(" {:>10} |", b.to_string());
        rule += &format!("{:->12}|", "");
    }
    header += &format!(
        " {:>10} | {:<CHOICE$} | {:<8} |",
        "auto", "auto's choice", "verified"
    );
    rule += &format!("{:->12}|{:-<w$}|{:-<10}|", "", "", "", w = CHOICE + 2);
    say!("{header}\n{rule}");

    const REPS: usize = 3;
    // With faults injected every run is checked, not only the first.
    let check_all = rt.faults().any();
    let mut all_ok = true;
    let mut moved = false;
    for sample in kernels::samples() {
        let mut trial = sample.trial(&rt, sample.tour_size, 7)?;
        let mut row = format!("| {:<16} | {:<SIZE$} |", sample.name, trial.shape());
        let mut failures = Vec::new();
        // Forced runs: the first of each warms up (and is dropped by the model).
        let mut refused = Vec::new();
        for &b in &backends {
            let mut times = Vec::new();
            let mut elsewhere = false;
            for rep in 0..=REPS {
                // Under injected faults a forced call may fail as asked (a
                // panicking CPU kernel, a rejected pipeline): the cell says
                // so, and automatic placement shows the recovery.
                let check = match kernels::run_check(trial.as_mut(), &rt, Target::On(b)) {
                    Ok(check) => check,
                    Err(e) if check_all => {
                        refused.push(format!("{b}: forced there, the call failed: {e}"));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                if (rep == 0 || check_all) && !check.verified() {
                    failures.push(format!("{b}: {check}"));
                }
                elsewhere |= check.backend != b;
                if rep > 0 {
                    times.push(check.elapsed);
                }
            }
            times.sort();
            let mark = if elsewhere { "*" } else { "" };
            moved |= elsewhere;
            let cell = match times.get(times.len() / 2) {
                Some(t) if times.len() == REPS => format!("{}{mark}", fmt_time(*t)),
                _ => "failed".to_owned(),
            };
            row += &format!(" {cell:>10} |");
        }
        // Automatic placement, once the model is calibrated at this size.
        pel::bench::calibrate_trial(&rt, trial.as_mut(), 12)?;
        let mut times = Vec::new();
        let mut choice = String::new();
        for _ in 0..REPS {
            let check = kernels::run_check(trial.as_mut(), &rt, Target::Auto)?;
            if !check.verified() {
                failures.push(format!("auto on {}: {check}", check.backend));
            }
            choice = format!("{} ({})", check.backend, placement(&check));
            times.push(check.elapsed);
        }
        times.sort();
        let ok = failures.is_empty();
        all_ok &= ok;
        row += &format!(
            " {:>10} | {:<CHOICE$} | {:<8} |",
            fmt_time(times[times.len() / 2]),
            choice,
            if ok { "yes" } else { "NO" }
        );
        say!("{row}");
        for f in failures.iter().chain(&refused) {
            say!("  {f}");
        }
    }
    say!(
        "\ntimes: median of {REPS}, from host-resident inputs to the result on the host, transfers included."
    );
    if moved {
        say!("*: ran elsewhere at least once, after its device was lost or ran out of memory.");
    }
    let stats = rt.stats();
    if stats.devices_lost + stats.recoveries + stats.evictions > 0 {
        say!(
            "recovery: {} device(s) lost, {} call(s) run again elsewhere, {} recorded call(s) replayed to rebuild lost data, {} GPU copies evicted; every result above was checked.",
            stats.devices_lost,
            stats.recoveries,
            stats.replayed_tasks,
            stats.evictions
        );
    }
    say!("runtime: {stats}");
    if let Some(p) = rt.model_path() {
        say!("performance model: {}", p.display());
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn trace(out: &std::path::Path) -> Result<ExitCode> {
    let rt = Runtime::new()?;
    // Untraced runs first, so placement is decided by the model rather
    // than by calibration.
    let graph = pel::bench::DemoGraph::new(&rt, 3);
    for _ in 0..20 {
        let before = rt.stats().calibration_runs;
        graph.run(&rt, pel::bench::Placing::Auto)?;
        if rt.stats().calibration_runs == before {
            break;
        }
    }
    rt.enable_trace();
    pel::bench::trace_demo(&rt, pel::bench::Placing::Auto)?;
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
    if pel::bench::overlapping(&events, rt.gpu_count()).is_some() {
        say!("a CPU-lane and a GPU-lane event overlap in time");
    }
    Ok(ExitCode::SUCCESS)
}

fn model(action: ModelAction) -> Result<ExitCode> {
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

fn validate(file: &std::path::Path, entry: &str) -> Result<ExitCode> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "shader".to_owned());
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
            Ok(ExitCode::from(2))
        }
    }
}

/// Runs `f` with a progress bar of `total` steps that `f`'s `step(done,
/// total, what)` moves, cleared at the end.
fn with_progress<T>(total: usize, f: impl FnOnce(&mut dyn FnMut(usize, usize, &str)) -> T) -> T {
    let bar = progress(total);
    let out = f(&mut |done, _, what| {
        bar.set_position(done as u64);
        bar.set_message(what.to_owned());
    });
    bar.finish_and_clear();
    out
}

fn progress(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn calibrate(quick: bool) -> Result<ExitCode> {
    let rt = Runtime::new()?;
    let sweep = pel::bench::calibration_sweep(quick);
    let before = rt.stats().calibration_runs;
    with_progress(sweep.iter().map(|(_, s)| s.len()).sum(), |step| {
        pel::bench::calibrate(&rt, &sweep, step)
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

/// The options every benchmark suite takes.
struct BenchOptions {
    json: Option<std::path::PathBuf>,
    csv: Option<std::path::PathBuf>,
    plot: Option<std::path::PathBuf>,
    quick: bool,
    reps: Option<usize>,
    kernels: Vec<String>,
}

/// One row of `--csv`: a median of one mode at one point of one suite.
struct CsvRow {
    suite: &'static str,
    kernel: String,
    size: usize,
    shape: String,
    mode: String,
    seconds: f64,
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Runs `suite` (every suite for `all`), prints each one's table, and
/// writes the JSON, CSV and plots asked for.
fn bench(suite: Suite, opts: &BenchOptions) -> Result<ExitCode> {
    let suites: &[Suite] = match suite {
        Suite::All => &[Suite::Kernels, Suite::Peers, Suite::Routing, Suite::Graph],
        _ => std::slice::from_ref(&suite),
    };
    let rt = Runtime::new()?;
    let mut reports = serde_json::Map::new();
    let mut rows = Vec::new();
    for &s in suites {
        let (name, report) = match s {
            Suite::Kernels => ("kernels", bench_kernels(&rt, opts, &mut rows)?),
            Suite::Peers => ("peers", bench_peers(&rt, opts, &mut rows)?),
            Suite::Routing => ("routing", bench_routing(&rt, opts, &mut rows)?),
            Suite::Graph => ("graph", bench_graph(&rt, opts, &mut rows)?),
            Suite::All => continue,
        };
        let Some(report) = report else {
            return Ok(ExitCode::from(2));
        };
        reports.insert(name.to_owned(), report);
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
        let mut text = String::from("suite,kernel,size,shape,mode,seconds\n");
        for r in &rows {
            text += &format!(
                "{},{},{},{},{},{:e}\n",
                r.suite,
                csv_field(&r.kernel),
                r.size,
                csv_field(&r.shape),
                csv_field(&r.mode),
                r.seconds
            );
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        say!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The sweep limited to `only` (all when empty); `None`, with a message,
/// when no kernel is left.
fn only_kernels(
    mut sweep: Vec<(kernels::Sample, Vec<usize>)>,
    only: &[String],
) -> Option<Vec<(kernels::Sample, Vec<usize>)>> {
    if !only.is_empty() {
        sweep.retain(|(s, _)| only.iter().any(|k| k == s.name));
        if sweep.is_empty() {
            eprintln!("pel: no such kernel among {only:?}; see `pel list`");
            return None;
        }
    }
    Some(sweep)
}

fn bench_kernels(
    rt: &Runtime,
    opts: &BenchOptions,
    rows: &mut Vec<CsvRow>,
) -> Result<Option<serde_json::Value>> {
    let Some(sweep) = only_kernels(
        pel::bench::kernels::kernels_sweep(opts.quick),
        &opts.kernels,
    ) else {
        return Ok(None);
    };
    let reps = opts.reps.unwrap_or(if opts.quick { 3 } else { 7 });
    let points: usize = sweep.iter().map(|(_, s)| s.len()).sum();
    let bar = progress(points + 1);
    bar.set_message("roofline: triad and GEMM");
    let roofline = pel::bench::kernels::roofline(rt, opts.quick, reps)?;
    bar.set_position(1);
    let min_secs = if opts.quick { 0.02 } else { 0.3 };
    let report = pel::bench::kernels::kernels(
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
            pel::secs(p.cpu_s),
            p.gpu_s.map(pel::secs).unwrap_or_else(|| "-".into()),
            pel::secs(p.auto_s),
            p.choice,
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
        let mut add = |mode: String, seconds: f64| {
            rows.push(CsvRow {
                suite: "kernels",
                kernel: p.kernel.clone(),
                size: p.size,
                shape: p.shape.clone(),
                mode,
                seconds,
            })
        };
        for (b, s) in &p.backends {
            add(b.clone(), *s);
        }
        add("auto".into(), p.auto_s);
        if let (Some(name), Some(s)) = (&p.peer, p.peer_s) {
            add(format!("peer: {name}"), s);
        }
    }
    say!(
        "\nTimes are medians from host-resident inputs to the result on the host; GFLOP/s, GB/s and the roofline fraction are automatic placement's, against the peaks of the backend it chose."
    );
    if let Some(dir) = &opts.plot {
        let files = pel::bench::plot::kernel_plots(&report.points, dir)
            .with_context(|| format!("plotting into {}", dir.display()))?;
        say!("wrote {} plots into {}", files.len(), dir.display());
    }
    Ok(Some(serde_json::to_value(&report)?))
}

fn bench_peers(
    rt: &Runtime,
    opts: &BenchOptions,
    rows: &mut Vec<CsvRow>,
) -> Result<Option<serde_json::Value>> {
    let reps = opts.reps.unwrap_or(if opts.quick { 3 } else { 9 });
    let report = with_progress(6, |step| {
        pel::bench::peers::peers(rt, opts.quick, reps, step)
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
        "| dispatch_overhead_us | {:.3} | ≤ 2 |",
        report.dispatch_overhead_us
    );
    say!("\nmedians:");
    for (k, v) in &report.medians_s {
        say!("  {k:<24} {}", pel::secs(*v));
        rows.push(CsvRow {
            suite: "peers",
            kernel: k.split('_').next().unwrap_or(k).to_owned(),
            size: 0,
            shape: String::new(),
            mode: k.clone(),
            seconds: *v,
        });
    }
    Ok(Some(serde_json::to_value(&report)?))
}

fn bench_graph(
    rt: &Runtime,
    opts: &BenchOptions,
    rows: &mut Vec<CsvRow>,
) -> Result<Option<serde_json::Value>> {
    let reps = opts.reps.unwrap_or(if opts.quick { 5 } else { 15 });
    let report = with_progress(4, |step| pel::bench::graph(rt, reps, step))?;
    say!("## graph\n");
    say!("| {:<38} | {:>10} |", "placement", "median");
    say!("|{:-<40}|{:->12}|", "", "");
    for (k, v) in &report.makespan_s {
        let what = format!("demo graph ({} tasks), {k}", report.tasks);
        say!("| {what:<38} | {:>10} |", pel::secs(*v));
        rows.push(CsvRow {
            suite: "graph",
            kernel: "demo graph".into(),
            size: report.tasks,
            shape: format!("{} tasks", report.tasks),
            mode: k.clone(),
            seconds: *v,
        });
    }
    for (k, v) in &report.coexec_s {
        let what = format!("mandelbrot 1024×1024, {k}");
        say!("| {what:<38} | {:>10} |", pel::secs(*v));
        rows.push(CsvRow {
            suite: "graph",
            kernel: "mandelbrot".into(),
            size: 1 << 20,
            shape: "1024×1024".into(),
            mode: k.clone(),
            seconds: *v,
        });
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
    Ok(Some(serde_json::to_value(&report)?))
}

fn bench_routing(
    rt: &Runtime,
    opts: &BenchOptions,
    rows: &mut Vec<CsvRow>,
) -> Result<Option<serde_json::Value>> {
    let Some(sweep) = only_kernels(pel::bench::sweep(opts.quick), &opts.kernels) else {
        return Ok(None);
    };
    let reps = opts.reps.unwrap_or(if opts.quick { 3 } else { 7 });
    let report = with_progress(sweep.iter().map(|(_, s)| s.len()).sum(), |step| {
        pel::bench::routing(rt, &sweep, reps, step)
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
                p.backends
                    .get(&b.to_string())
                    .map(|s| pel::secs(*s))
                    .unwrap_or_default()
            );
        }
        let best = p.gpu_s.map_or(p.cpu_s, |g| g.min(p.cpu_s));
        row += &format!(
            " {:>10} | {:<6} | {:>6.3} |",
            pel::secs(p.auto_s),
            p.choice,
            p.auto_s / best
        );
        say!("{row}");
        for (mode, s) in p.backends.iter().chain([(&"auto".to_owned(), &p.auto_s)]) {
            rows.push(CsvRow {
                suite: "routing",
                kernel: p.kernel.clone(),
                size: p.size,
                shape: p.size.to_string(),
                mode: mode.clone(),
                seconds: *s,
            });
        }
    }
    say!(
        "\nregret_total {:.3} (target ≤ 1.05), regret_max {:.3} (target ≤ 1.25), calibration_runs {}",
        report.regret_total,
        report.regret_max,
        report.calibration_runs
    );
    Ok(Some(serde_json::to_value(&report)?))
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

fn fmt_time(d: Duration) -> String {
    pel::secs(d.as_secs_f64())
}
