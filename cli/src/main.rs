//! The `pel` command line: a thin layer over the library. It parses
//! (clap), calls `pel` or `pel-bench`, and prints.
//!
//! `pel` alone runs the tour; `pel devices`, `pel list` and `pel run` look
//! at the machine and the sample kernels; `pel bench` runs the benchmark
//! suites.

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

mod bench;
mod cluster;
mod commands;

use clap::{Parser, Subcommand, ValueEnum};
use pel::{Backend, Target};

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
    /// Run every sample kernel on every backend and with automatic placement, timed in shuffled rounds, and print a table (the default).
    Tour {
        /// Write every median as CSV here: suite, kernel, size, shape, mode, seconds.
        #[arg(long)]
        csv: Option<std::path::PathBuf>,
        /// Timed runs per cell (the median is shown).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Only these kernels (repeatable).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
    },
    /// Run a small demo workload with tracing on and write a Chrome trace (open it in ui.perfetto.dev).
    Trace {
        /// Where to write the trace.
        #[arg(long, default_value = "pel-trace.json")]
        out: std::path::PathBuf,
    },
    /// Print a sample shader's whole WGSL source as pel builds it (its file, the shared pieces and the params structs); with no name, list the sample shaders.
    Shader {
        /// The shader's name (its file's name in `shaders/`).
        name: Option<String>,
    },
    /// Check a WGSL compute shader as pel reads it: naga's diagnostics with line and column (exit 2), or the kernel's reflected bindings (group, binding, access, type) and workgroup size.
    Validate {
        /// The shader file, or a sample shader's name (see `pel shader`) for its whole source as pel builds it.
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
    /// Simulate a machine: `pel simulate --machine FILE WORKLOAD` runs a workload (demo, routing, or a Task Bench pattern such as stencil_1d) on the described machine's virtual clock and prints the predicted makespan, each device's busy fraction, the bytes on each link and where the tasks went. `describe` and `check` write and check descriptions; `validate` checks the simulator against real runs here; `scale` predicts speed-up over 1 to 8 GPUs.
    #[command(args_conflicts_with_subcommands = true)]
    Simulate {
        #[command(subcommand)]
        action: Option<SimulateAction>,
        #[command(flatten)]
        run: SimulateRun,
    },
    /// Benchmarks, each figure measured beside its peer in the same run. `kernels`: every sample kernel over sizes on every backend, with automatic placement and beside the program a user would otherwise write, against the machine's roofline. `peers`: the six headline ratios. `routing`: placement against the best single backend. `graph`: task graphs and co-execution against the best single device. `taskbench`: Task Bench's METG(50%) for pel and rayon. `cluster`: the same across MPI ranks, against an rsmpi program (built with `--features cluster`). `all` (the default): every suite.
    Bench {
        /// Which suite (also `--suite`).
        #[arg(value_enum)]
        suite: Option<Suite>,
        /// Which suite.
        #[arg(long = "suite", value_enum, conflicts_with = "suite")]
        suite_flag: Option<Suite>,
        #[command(flatten)]
        options: bench::BenchOptions,
    },
}

/// `pel simulate --machine FILE WORKLOAD`'s arguments.
#[derive(clap::Args)]
struct SimulateRun {
    /// The machine description (JSON), such as machines/h200x4-nvlink.json.
    #[arg(long)]
    machine: Option<std::path::PathBuf>,
    /// demo, routing, or a Task Bench pattern (trivial, no_comm, stencil_1d, stencil_1d_periodic, dom, tree, fft, all_to_all, nearest, spread, random_nearest).
    workload: Option<String>,
    /// Task Bench: points per step.
    #[arg(long, default_value_t = 4)]
    width: usize,
    /// Task Bench: steps.
    #[arg(long, default_value_t = 32)]
    steps: usize,
    /// Task Bench: iterations per task.
    #[arg(long, default_value_t = 16384)]
    iterations: u32,
    /// Task Bench: values per task.
    #[arg(long, default_value_t = 64)]
    elems: usize,
    /// Write the measured run's trace (Perfetto / Chrome JSON, virtual timestamps) here.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum SimulateAction {
    /// Write this machine's description (JSON) from the saved model and the bus measurements.
    Describe {
        /// Write it here (default: standard output).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Check a machine description and summarise it.
    Check {
        /// The description (JSON), such as machines/h200x4-nvlink.json.
        file: std::path::PathBuf,
    },
    /// Run the demo graph and four Task Bench patterns for real on every device configuration here, and simulated on each configuration's description; report each pair's error.
    Validate {
        /// Write the report as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// Real runs timed per pair (the median is kept).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Predict the demo graph and stencil_1d on 1, 2, 4 and 8 GPUs of a description and draw the speed-up.
    Scale {
        /// The machine description (JSON).
        #[arg(long)]
        machine: std::path::PathBuf,
        /// Write the SVG here.
        #[arg(long, default_value = "scale.svg")]
        out: std::path::PathBuf,
        /// Write the points as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
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
    /// Task Bench's minimum effective task granularity, METG(50%), for pel's submit and a rayon program, on stencil_1d and nearest.
    Taskbench,
    /// Task Bench's stencil_1d across MPI ranks (2 and 4, under mpirun): METG(50%) of pel's ClusterRuntime against an rsmpi program, and a prediction for 1–64 nodes. Needs the `cluster` feature; not part of `all`.
    Cluster,
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
    let tour = Command::Tour {
        csv: None,
        reps: 3,
        kernels: Vec::new(),
    };
    let result = match cli.command.unwrap_or(tour) {
        Command::Devices => commands::devices(),
        Command::List => commands::list(),
        Command::Run {
            kernel,
            size,
            backend,
            seed,
        } => commands::run(&kernel, size, backend.target(), seed),
        Command::Tour { csv, reps, kernels } => commands::tour(csv.as_deref(), reps, &kernels),
        Command::Model { action } => commands::model(action),
        Command::Simulate { action, run } => match action {
            Some(action) => commands::simulate(action),
            None => commands::simulate_run(run),
        },
        Command::Trace { out } => commands::trace(&out),
        Command::Calibrate { quick } => commands::calibrate(quick),
        Command::Shader { name } => commands::shader(name.as_deref()),
        Command::Validate { file, entry } => commands::validate(&file, &entry),
        Command::Bench {
            suite,
            suite_flag,
            options,
        } => bench::bench(suite.or(suite_flag).unwrap_or(Suite::All), &options),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pel: {e:#}");
            ExitCode::from(2)
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

/// `items` limited to those named in `only` (all when empty); `None`, with a
/// message, when none is left.
fn only<T>(mut items: Vec<T>, name: impl Fn(&T) -> &str, only: &[String]) -> Option<Vec<T>> {
    if !only.is_empty() {
        items.retain(|t| only.iter().any(|k| k == name(t)));
        if items.is_empty() {
            eprintln!("pel: no such kernel among {only:?}; see `pel list`");
            return None;
        }
    }
    Some(items)
}
