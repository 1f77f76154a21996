//! The cluster under MPI. Each test launches this test binary again under
//! `mpirun -n N` ([`harness`]); the ranks see `PEL_CLUSTER_CHILD` naming
//! the test and run its body. Without MPI (or without the `cluster` feature) the tests
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
mod harness;
#[cfg(feature = "cluster")]
mod wire;
#[cfg(feature = "cluster")]
mod with_mpi;
