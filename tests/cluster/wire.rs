//! How messages name what they carry: with `PEL_CLUSTER_CHECK=1` every
//! message also carries a header the receiver checks; the results are the
//! same, and ranks that disagree on it are told so at the start. With
//! `PEL_CLUSTER_MAX_MESSAGE` a message longer than it goes as blocks (as
//! every message past MPI's `int` does), cut alike or not on each side.

use std::time::Duration;

use super::harness::{child, launch_with, runtime};
use pel::Error;
use pel::cluster::{Cluster, ClusterRuntime};
use pel::kernels::taskbench::{self, CPU, Graph, Pattern, TaskBench};

/// Task Bench's stencil, submitted and then replayed, against its serial
/// result; the bytes between ranks are the payloads alone either way.
fn stencil() {
    let cluster = Cluster::init().unwrap();
    if std::env::var("CUT_ON_RANK_0").is_ok() {
        // Rank 0 cuts messages into blocks of 100 bytes, the others into
        // blocks of 1,000 (longer than a message): MPI matches bytes.
        let limit = if cluster.rank() == 0 { "100" } else { "1000" };
        // SAFETY: this rank's process runs one test on one thread
        // (`--test-threads=1`), and nothing else reads the environment now.
        unsafe { std::env::set_var("PEL_CLUSTER_MAX_MESSAGE", limit) };
    }
    let cr = ClusterRuntime::new(cluster, runtime()).unwrap();
    let (rank, size) = (cr.rank(), cr.size());
    let tb = TaskBench::new().unwrap();
    let graph = Graph::new(Pattern::Stencil1d, 2 * size + 1, 7);
    let want = taskbench::reference(&graph, tb.elems_per_task(), 2).unwrap();
    let rows = pel::distributed::TaskbenchRows::new(&cr, &tb, &graph).unwrap();
    let before = cr.stats();
    let recorded = rows.record(&cr, &tb, CPU, 2).unwrap();
    for _ in 0..3 {
        cr.replay(&recorded).unwrap();
    }
    cr.flush().unwrap();
    let moved = cr.stats().since(&before);
    let payload = (tb.elems_per_task() * 4) as u64;
    assert_eq!(moved.bytes_sent, moved.messages_sent * payload);
    assert_eq!(moved.bytes_received, moved.messages_received * payload);
    if size > 1 {
        assert!(moved.messages_received > 0);
    }
    for (p, b) in rows.last().iter().enumerate() {
        if let Some(v) = cr.fetch(b, 0).unwrap() {
            assert_eq!(v, want[p], "point {p}");
        }
    }
    cr.wait_all().unwrap();
    let check = std::env::var("PEL_CLUSTER_CHECK").unwrap_or_default();
    let cut = std::env::var("PEL_CLUSTER_MAX_MESSAGE").unwrap_or_default();
    println!("rank {rank} of {size}: stencil ok (check {check:?}, cut {cut:?})");
}

#[test]
fn checked_and_cut_messages_give_the_same_results_at_2_and_4_ranks() {
    const NAME: &str = "wire::checked_and_cut_messages_give_the_same_results_at_2_and_4_ranks";
    match child(NAME) {
        Some(true) => return stencil(),
        Some(false) => return,
        None => {}
    }
    // Payloads of 256 bytes (272 with a header): cut into blocks of 100.
    // (ranks, environment, what every rank says).
    type Job<'a> = (usize, &'a [(&'a str, &'a str)], &'a str);
    let jobs: [Job; 6] = [
        (2, &[("PEL_CLUSTER_CHECK", "1")], "check \"1\", cut \"\""),
        (4, &[("PEL_CLUSTER_CHECK", "1")], "check \"1\", cut \"\""),
        (2, &[("PEL_CLUSTER_CHECK", "0")], "check \"0\", cut \"\""),
        (4, &[("PEL_CLUSTER_MAX_MESSAGE", "100")], "cut \"100\""),
        (
            2,
            &[
                ("PEL_CLUSTER_MAX_MESSAGE", "100"),
                ("PEL_CLUSTER_CHECK", "1"),
            ],
            "check \"1\", cut \"100\"",
        ),
        (2, &[("CUT_ON_RANK_0", "1")], "cut \""),
    ];
    for (ranks, env, said) in jobs {
        let Some((out, _)) = launch_with(NAME, Some(ranks), Duration::from_secs(120), env) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{ranks} ranks, {env:?}: {stdout}\n{stderr}"
        );
        for r in 0..ranks {
            let ok = stdout.lines().any(|l| {
                l.contains(&format!("rank {r} of {ranks}: stencil ok")) && l.contains(said)
            });
            assert!(ok, "{env:?}: {stdout}");
        }
    }
}

/// Rank 0 alone asks for checked messages (`REFUSE=check`), or sets a
/// block that is no number (`REFUSE=block`): every rank is refused, none
/// left waiting.
fn disagree() {
    let cluster = Cluster::init().unwrap();
    let (rank, size) = (cluster.rank(), cluster.size());
    let (var, value, said) = match std::env::var("REFUSE").as_deref() {
        Ok("block") => ("PEL_CLUSTER_MAX_MESSAGE", "lots", "PEL_CLUSTER_MAX_MESSAGE"),
        _ => ("PEL_CLUSTER_CHECK", "1", "PEL_CLUSTER_CHECK"),
    };
    if rank == 0 {
        // SAFETY: this rank's process runs one test on one thread
        // (`--test-threads=1`), and nothing else reads the environment now.
        unsafe { std::env::set_var(var, value) };
    }
    let err = ClusterRuntime::new(cluster, runtime()).unwrap_err();
    assert!(
        matches!(&err, Error::Cluster { message, .. } if message.contains(said)),
        "{err}"
    );
    println!("rank {rank} of {size}: refused ({err})");
}

#[test]
fn ranks_that_disagree_on_the_wire_or_set_no_number_are_all_refused() {
    const NAME: &str = "wire::ranks_that_disagree_on_the_wire_or_set_no_number_are_all_refused";
    match child(NAME) {
        Some(true) => return disagree(),
        Some(false) => return,
        None => {}
    }
    for refuse in ["check", "block"] {
        let env = [("REFUSE", refuse)];
        let Some((out, _)) = launch_with(NAME, Some(2), Duration::from_secs(60), &env) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{refuse}: {stdout}\n{stderr}");
        for r in 0..2 {
            let line = format!("rank {r} of 2: refused");
            assert!(stdout.contains(&line), "{refuse}: {stdout}");
        }
    }
}
