//! `pel bench cluster`: starts the suite's MPI jobs (2 and 4 ranks under
//! `mpirun`, this same program as every rank), collects rank 0's reports,
//! and prints METG for pel and the rsmpi program side by side.

use anyhow::Result;

use crate::bench::{BenchOptions, Outcome};

/// Set in the ranks of a job this command started: where rank 0 writes
/// its report.
const RANK_ENV: &str = "PEL_BENCH_CLUSTER_RANK";

/// The job sizes measured.
pub(crate) const RANKS: [usize; 2] = [2, 4];

#[cfg(not(feature = "cluster"))]
pub(crate) fn cluster(_opts: &BenchOptions) -> Result<Outcome> {
    let _ = (RANK_ENV, RANKS);
    anyhow::bail!(
        "this pel was built without the cluster feature (MPI): cargo run --release -p pel-cli --features cluster -- bench cluster"
    )
}

#[cfg(feature = "cluster")]
pub(crate) fn cluster(opts: &BenchOptions) -> Result<Outcome> {
    use anyhow::Context;
    let reps = opts.reps_or(3, 5);
    if let Ok(path) = std::env::var(RANK_ENV) {
        return rank(opts.quick, reps, &path).map(|()| None);
    }
    let exe = std::env::current_exe().context("this program's path")?;
    let mut runs = Vec::new();
    for ranks in RANKS {
        let dir = std::env::temp_dir().join(format!("pel-bench-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{ranks}.json"));
        let _ = std::fs::remove_file(&file);
        say!("running {ranks} ranks under mpirun…");
        let mut cmd = std::process::Command::new("mpirun");
        cmd.args(["-n", &ranks.to_string(), "--oversubscribe"])
            .arg(&exe)
            .args(["bench", "cluster", "--reps", &reps.to_string()]);
        if opts.quick {
            cmd.arg("--quick");
        }
        cmd.env(RANK_ENV, &file)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        if std::env::var_os("OMPI_MCA_btl_vader_single_copy_mechanism").is_none() {
            // Containers refuse the shared-memory transport's single copy.
            cmd.env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
        }
        let status = cmd
            .status()
            .context("starting mpirun (Debian: openmpi-bin)")?;
        anyhow::ensure!(status.success(), "the {ranks}-rank job failed: {status}");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("rank 0's report, {}", file.display()))?;
        let run: pel_bench::cluster::ClusterRun = serde_json::from_str(&text)?;
        let _ = std::fs::remove_dir_all(&dir);
        runs.push(run);
    }
    let report = pel_bench::cluster::report(runs, &pel_bench::simulate::h200_node())?;
    print(&report);
    if let Some(dir) = &opts.plot {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("cluster-nodes.svg");
        pel_bench::cluster::plot_prediction(
            &report.prediction,
            &format!("stencil_1d over nodes of {}", report.machine),
            &path,
        )?;
        say!("wrote {}", path.display());
    }
    Ok(Some((serde_json::to_value(&report)?, Vec::new())))
}

/// One rank of a job: its runtime (the CPU alone), the suite, and on rank 0 the report written to `path`.
#[cfg(feature = "cluster")]
fn rank(quick: bool, reps: usize, path: &str) -> Result<()> {
    use pel::cluster::{Cluster, ClusterRuntime};
    let cluster = Cluster::init()?;
    // Kernels run on the rank's own thread (and rayon's global pool): a
    // pool of pel's own would hand every task to another thread.
    let rt = pel::Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()?;
    let cr = ClusterRuntime::new(cluster, rt)?;
    if let Some(run) = pel_bench::cluster::rank(&cr, quick, reps)? {
        std::fs::write(path, serde_json::to_string_pretty(&run)?)?;
    }
    cr.wait_all()?;
    Ok(())
}

#[cfg(feature = "cluster")]
fn print(report: &pel_bench::cluster::ClusterReport) {
    let f = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |v| format!("{v:.p$}"));
    for run in &report.runs {
        say!(
            "\n## cluster: stencil_1d on {} ranks ({} points × {} steps, {} values a task; pel's tasks on each rank's CPU)\n",
            run.ranks,
            run.width,
            run.steps,
            run.elems
        );
        say!(
            "| {:>10} | {:>12} | {:>12} | {:>8} | {:>8} |",
            "iterations",
            "pel µs/task",
            "mpi µs/task",
            "pel eff",
            "mpi eff"
        );
        say!(
            "|{:->12}|{:->14}|{:->14}|{:->10}|{:->10}|",
            "",
            "",
            "",
            "",
            ""
        );
        for p in &run.points {
            say!(
                "| {:>10} | {:>12} | {:>12} | {:>8} | {:>8} |",
                p.iterations,
                f(p.granularity_us.pel, 2),
                f(p.granularity_us.mpi, 2),
                f(p.efficiency.pel, 3),
                f(p.efficiency.mpi, 3)
            );
        }
        say!(
            "\nMETG(50%): pel {} µs, mpi {} µs, ratio {} (target ≤ 2); a rank skips a task it has no part in in {:.0} ns",
            f(run.metg_us.pel, 1),
            f(run.metg_us.mpi, 1),
            f(run.ratio, 2),
            run.prune_ns
        );
    }
    if !report.prediction.is_empty() {
        say!(
            "\n## predicted: stencil_1d on 1–64 nodes of {}\n",
            report.machine
        );
        say!(
            "| {:>5} | {:>12} | {:>8} |",
            "nodes",
            "makespan ms",
            "speed-up"
        );
        say!("|{:->7}|{:->14}|{:->10}|", "", "", "");
        for p in &report.prediction {
            say!(
                "| {:>5} | {:>12.3} | {:>8.2} |",
                p.nodes,
                p.makespan_s * 1e3,
                p.speedup
            );
        }
    }
}
