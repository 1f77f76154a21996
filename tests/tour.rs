//! The tour as a library function: rows as they are measured, a report
//! that agrees with them, and its CSV.

mod common;

use pel::tour::{TourOptions, TourReport};

#[test]
fn the_tour_reports_every_backend_and_auto_for_each_kernel() {
    let rt = common::rt();
    let options = TourOptions {
        samples: ["saxpy", "sum"]
            .into_iter()
            .map(|k| pel::kernels::sample(k).unwrap())
            .collect(),
        reps: 2,
        ..TourOptions::default()
    };
    let mut seen = Vec::new();
    let report = pel::tour::run(rt, &options, &mut |row| seen.push(row.clone())).unwrap();
    assert_eq!(seen, report.rows);
    assert!(report.verified(), "{report}");
    assert_eq!(report.backends, rt.backends());
    for row in &report.rows {
        assert_eq!(row.cells.len(), rt.backends().len(), "{row}");
        assert!(row.cells.iter().all(|c| c.median.is_some()), "{row}");
        assert!(row.auto > std::time::Duration::ZERO, "{row}");
        assert!(!row.choice.is_empty(), "{row}");
    }

    let text = report.to_string();
    assert!(
        text.starts_with(&TourReport::header(&rt.backends())),
        "{text}"
    );
    assert!(text.contains("| saxpy") && text.contains("| sum"), "{text}");

    let mut csv = Vec::new();
    report.write_csv(&mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(pel::csv::HEADER));
    // One row per backend and one for auto, per kernel.
    assert_eq!(lines.count(), 2 * (rt.backends().len() + 1), "{csv}");
    assert!(
        csv.contains("tour,saxpy,") && csv.contains(",auto,"),
        "{csv}"
    );
}
