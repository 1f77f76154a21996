//! Launching this test binary's ranks: each test runs itself again under
//! `mpirun -n N`, and the ranks see `PEL_CLUSTER_CHILD` naming the test.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pel::Runtime;

use super::skip;

/// A rank's runtime: CPU only, its model not kept.
pub fn runtime() -> Runtime {
    Runtime::builder()
        .gpu(false)
        .persist_model(false)
        .build()
        .unwrap()
}

/// The rank's role in test `name`: `Some(true)` in a rank of it, `None` in
/// the test harness's own process.
pub fn child(name: &str) -> Option<bool> {
    std::env::var("PEL_CLUSTER_CHILD").ok().map(|t| t == name)
}

/// Runs this binary's test `name` on `ranks` ranks (`None`: without a
/// launcher), at most `limit`; its output, or `None` (said) without MPI.
pub fn launch(name: &str, ranks: Option<usize>, limit: Duration) -> Option<(Output, Duration)> {
    launch_with(name, ranks, limit, &[])
}

/// [`launch`], with `env` set for every rank.
pub fn launch_with(
    name: &str,
    ranks: Option<usize>,
    limit: Duration,
    env: &[(&str, &str)],
) -> Option<(Output, Duration)> {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = match ranks {
        Some(n) => {
            if Command::new("mpirun").arg("--version").output().is_err() {
                skip(name, "no `mpirun` on the PATH (Debian: openmpi-bin)");
                return None;
            }
            let mut c = Command::new("mpirun");
            c.args(["-n", &n.to_string(), "--oversubscribe"]);
            c.arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("PEL_CLUSTER_CHILD", name)
        .env("PEL_GPU", "off")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // Containers refuse the shared-memory transport's single copy.
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut proc = cmd.spawn().expect("mpirun starts");
    loop {
        if proc.try_wait().expect("waitable").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = proc.kill();
            let out = proc.wait_with_output().expect("killed");
            panic!(
                "{name} on {ranks:?} ranks ran past {limit:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = proc.wait_with_output().expect("finished");
    Some((out, start.elapsed()))
}

/// Runs test `name`'s ranks at 1 (no launcher), 2 and 4 ranks and
/// asserts each job succeeded and printed `ok` lines for every rank.
pub fn at_1_2_and_4(name: &str, ok: &str) {
    for ranks in [None, Some(2), Some(4)] {
        let Some((out, _)) = launch(name, ranks, Duration::from_secs(240)) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{ranks:?} ranks: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let size = ranks.unwrap_or(1);
        for r in 0..size {
            assert!(
                stdout.contains(&format!("rank {r} of {size}: {ok}")),
                "{stdout}"
            );
        }
    }
}

/// Runs test `name` on 2 ranks, one of which dies: asserts the job
/// failed within 30 s and left nothing running; its stdout and stderr
/// (`None`, said, without MPI).
pub fn dies(name: &str) -> Option<(String, String)> {
    let (out, took) = launch(name, Some(2), Duration::from_secs(30))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(30));
    nothing_left(name.trim_start_matches("with_mpi::"));
    Some((stdout, stderr))
}

/// Asserts no rank of test `name` is left running: their arguments
/// name the test, which the harness's own process's do not.
pub fn nothing_left(name: &str) {
    // The ranks may take a moment to be reaped after mpirun returns.
    std::thread::sleep(Duration::from_millis(300));
    let pattern = format!("{name} --exact --nocapture --test-threads=1");
    if let Ok(left) = Command::new("pgrep").args(["-f", &pattern]).output() {
        assert!(
            left.stdout.is_empty(),
            "left running: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}
