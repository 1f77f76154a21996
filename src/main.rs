//! The `pel` command line: a thin layer over the library.
//!
//! `pel` alone runs the tour; `pel devices`, `pel list` and `pel run` look
//! at the machine and the sample kernels.

use std::process::ExitCode;
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
    /// Run every sample kernel on every backend and print a table (the default).
    Tour,
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
        println!("{d}");
    }
    if rt.gpu_count() == 0 {
        println!(
            "no GPU adapter: everything runs on the CPU (PEL_GPU={}; install mesa-vulkan-drivers for a software Vulkan adapter)",
            std::env::var("PEL_GPU").unwrap_or_else(|_| "unset".into())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list() -> Result<ExitCode> {
    for s in kernels::samples() {
        println!(
            "{:<12} {}  [size: {}, default {}]",
            s.name, s.about, s.size_meaning, s.default_size
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
    let check = sample
        .check(&rt, target, size, seed)
        .with_context(|| format!("running {name}"))?;
    let device = rt.device(check.backend)?;
    println!(
        "{name} {} on {}: {} — {}",
        check.shape,
        device.label(),
        fmt_time(check.elapsed),
        check
    );
    println!("transfers: {}", rt.stats());
    Ok(if check.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn tour() -> Result<ExitCode> {
    let rt = Runtime::new()?;
    println!(
        "pel tour: every sample kernel on every backend, checked against its serial reference.\n"
    );
    for d in rt.devices() {
        println!("  {}", d.label());
    }
    if rt.gpu_count() == 0 {
        println!("  (no GPU adapter: CPU only)");
    }
    println!();
    println!(
        "| {:<10} | {:<13} | {:<50} | {:>10} | {:<8} |",
        "kernel", "size", "backend", "time", "verified"
    );
    println!(
        "|{:-<12}|{:-<15}|{:-<52}|{:->12}|{:-<10}|",
        "", "", "", "", ""
    );
    let mut all_ok = true;
    for sample in kernels::samples() {
        let size = sample.tour_size;
        for backend in rt.backends() {
            // A first, small run compiles the pipeline and warms the pool, so
            // the timed run measures the kernel rather than start-up.
            sample.check(&rt, Target::On(backend), 64, 1)?;
            let check = sample.check(&rt, Target::On(backend), size, 7)?;
            all_ok &= check.verified();
            println!(
                "| {:<10} | {:<13} | {:<50} | {:>10} | {:<8} |",
                sample.name,
                check.shape,
                truncate(&rt.device(backend)?.label(), 50),
                fmt_time(check.elapsed),
                if check.verified() { "yes" } else { "NO" }
            );
            if !check.verified() {
                println!("  {check}");
            }
        }
    }
    println!("\ntimes: host-resident inputs to result on the host, transfers included.");
    println!("runtime stats: {}", rt.stats());
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}
