//! One CSV format for every measured median, the tour's and the benchmark
//! suites': `suite,kernel,size,shape,mode,seconds`, one row per median.

use std::io::{self, Write};

/// The header line (without its line break).
pub const HEADER: &str = "suite,kernel,size,shape,mode,seconds";

/// One median of one mode at one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What measured it: `tour`, or a benchmark suite's name.
    pub suite: &'static str,
    /// The kernel, or what stands for one (`demo graph`).
    pub kernel: String,
    /// The size, as `pel run --size` takes it (0 where there is none).
    pub size: usize,
    /// The problem's shape, e.g. `1000003` or `256×256×256`.
    pub shape: String,
    /// How it ran: a backend (`cpu`, `gpu0`), `auto`, or a peer program.
    pub mode: String,
    /// The median, seconds.
    pub seconds: f64,
}

impl Row {
    /// One point's rows: one per (mode, seconds) of `modes`.
    pub fn per_mode<'a>(
        suite: &'static str,
        kernel: &'a str,
        size: usize,
        shape: &'a str,
        modes: impl IntoIterator<Item = (String, f64)> + 'a,
    ) -> impl Iterator<Item = Row> + 'a {
        modes.into_iter().map(move |(mode, seconds)| Row {
            suite,
            kernel: kernel.to_owned(),
            size,
            shape: shape.to_owned(),
            mode,
            seconds,
        })
    }
}

/// Writes [`HEADER`] and then `rows`, quoting fields that need it.
///
/// # Examples
///
/// ```
/// let row = pel::csv::Row {
///     suite: "tour",
///     kernel: "matmul".into(),
///     size: 256,
///     shape: "256×256×256".into(),
///     mode: "gpu0 (modelled)".into(),
///     seconds: 0.5,
/// };
/// let mut out = Vec::new();
/// pel::csv::write(&mut out, &[row])?;
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "suite,kernel,size,shape,mode,seconds\ntour,matmul,256,256×256×256,gpu0 (modelled),5e-1\n"
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{:e}",
            r.suite,
            field(&r.kernel),
            r.size,
            field(&r.shape),
            field(&r.mode),
            r.seconds
        )?;
    }
    Ok(())
}

/// A field, quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_fields_that_need_it() {
        assert_eq!(field("gpu0"), "gpu0");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
