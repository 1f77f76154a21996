//! The cluster under MPI. Each test launches this test binary again under
//! `mpirun -n N`; the ranks see `PEL_CLUSTER_CHILD` naming the test and
//! run its body. Without MPI (or without the `cluster` feature) the tests
//! say they were skipped; under `PEL_REQUIRE_MPI=1` they fail instead.

/// Whether MPI tests must run (CI sets it).
fn required() -> bool {
    std::env::var("PEL_REQUIRE_MPI").as_deref() == Ok("1")
}

/// A skip, said out loud; a failure where MPI is required.
fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: PEL_REQUIRE_MPI=1 but {why}");
    eprintln!("{test}: skipped: {why}");
}

#[cfg(not(feature = "cluster"))]
#[test]
fn mpi_tests_skipped_built_without_the_cluster_feature() {
    skip(
        "mpi_tests_skipped_built_without_the_cluster_feature",
        "built without the `cluster` feature (cargo test --features cluster --test cluster)",
    );
}

#[cfg(feature = "cluster")]
mod with_mpi {
    use super::*;
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};
    /// The rank's role in test `name`: `Some(true)` in a rank of it, `None` in
    /// the test harness's own process.
    fn child(name: &str) -> Option<bool> {
        std::env::var("PEL_CLUSTER_CHILD").ok().map(|t| t == name)
    }

    /// Runs this binary's test `name` on `ranks` ranks (`None`: without a
    /// launcher), at most `limit`; its output, or `None` (said) without MPI.
    fn launch(name: &str, ranks: Option<usize>, limit: Duration) -> Option<(Output, Duration)> {
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

    use pel::cluster::{Cluster, DistMap, Distribution};
    use pel::{Error, Runtime};

    fn runtime() -> Runtime {
        Runtime::builder()
            .gpu(false)
            .persist_model(false)
            .build()
            .unwrap()
    }

    /// Every collective on every rank against what one process computes.
    fn collectives() {
        let cluster = Cluster::init().unwrap();
        let (rank, size) = (cluster.rank(), cluster.size());
        let rt = runtime();
        let n = 1000;
        // allreduce: each rank gives rank + 1 (and the index): the sum is
        // known in closed form.
        let x = rt.buffer(
            &(0..n)
                .map(|i| (rank + 1) as f32 + i as f32)
                .collect::<Vec<_>>(),
        );
        cluster.allreduce_sum(&rt, &x).unwrap();
        let want: Vec<f32> = (0..n)
            .map(|i| (size * (size + 1) / 2) as f32 + (size * i) as f32)
            .collect();
        assert_eq!(rt.read(&x).unwrap(), want);
        // broadcast from the last rank.
        let root = size - 1;
        let b = rt.buffer(&vec![rank as u32; n]);
        cluster.broadcast(&rt, &b, root).unwrap();
        assert_eq!(rt.read(&b).unwrap(), vec![root as u32; n]);
        // gather to rank 0, in rank order.
        let g = rt.buffer(&[rank as i32; 3]);
        let got = cluster.gather(&rt, &g, 0).unwrap();
        if rank == 0 {
            let want: Vec<i32> = (0..size as i32).flat_map(|r| [r; 3]).collect();
            assert_eq!(got, Some(want));
        } else {
            assert_eq!(got, None);
        }
        // A root past the job is an error, not a hang.
        assert!(matches!(
            cluster.broadcast(&rt, &b, size),
            Err(Error::Cluster { .. })
        ));
        // Distributions: the same everywhere agrees; one rank's own is
        // refused naming it, on every rank.
        let block = DistMap::new("x", n, size, Distribution::Block).unwrap();
        cluster.agree("x", &block).unwrap();
        if size > 1 {
            let odd = if rank == size - 1 {
                DistMap::new("x", n, size, Distribution::BlockCyclic { block: 1 }).unwrap()
            } else {
                block.clone()
            };
            let err = cluster.agree("x", &odd).unwrap_err();
            assert!(
                matches!(&err, Error::Distribution { rank: r, buffer, .. } if *r == size - 1 && buffer == "x"),
                "{err}"
            );
        }
        cluster.barrier();
        println!("rank {rank} of {size}: collectives ok");
    }

    #[test]
    fn collectives_match_one_process_at_1_2_and_4_ranks() {
        const NAME: &str = "with_mpi::collectives_match_one_process_at_1_2_and_4_ranks";
        match child(NAME) {
            Some(true) => return collectives(),
            Some(false) => return,
            None => {}
        }
        for ranks in [None, Some(2), Some(4)] {
            let Some((out, _)) = launch(NAME, ranks, Duration::from_secs(120)) else {
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
                    stdout.contains(&format!("rank {r} of {size}: collectives ok")),
                    "{stdout}"
                );
            }
        }
    }

    /// Rank 1 panics while rank 0 waits for it.
    fn one_rank_panics() {
        let cluster = Cluster::init().unwrap();
        if cluster.rank() == 1 {
            panic!("task `stencil` failed on purpose");
        }
        cluster.barrier();
        unreachable!("rank 0 cannot pass the barrier without rank 1");
    }

    #[test]
    fn a_rank_that_panics_ends_the_job_naming_it() {
        const NAME: &str = "with_mpi::a_rank_that_panics_ends_the_job_naming_it";
        match child(NAME) {
            Some(true) => return one_rank_panics(),
            Some(false) => return,
            None => {}
        }
        let Some((out, took)) = launch(NAME, Some(2), Duration::from_secs(30)) else {
            return;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("rank 1 of 2 panicked") && stderr.contains("stencil"),
            "{stderr}"
        );
        assert!(took < Duration::from_secs(30));
        // Nothing of the job is left running.
        let left = Command::new("pgrep")
            // The ranks' own arguments, which the harness's process lacks.
            .args([
                "-f",
                "a_rank_that_panics_ends_the_job_naming_it --exact --nocapture --test-threads=1",
            ])
            .output();
        if let Ok(left) = left {
            assert!(
                left.stdout.is_empty(),
                "left running: {}",
                String::from_utf8_lossy(&left.stdout)
            );
        }
    }
}
