//! SVG plots of the kernels suite: per kernel, median time against size on
//! log–log axes, one line per backend, automatic placement and the peer,
//! so each crossover can be seen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::kernels::KernelPoint;

/// The colours of the lines, in the order series are drawn.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Writes `DIR/KERNEL.svg` for every kernel among `points`, creating `dir`.
/// Returns the files written.
pub fn kernel_plots(points: &[KernelPoint], dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut by_kernel: BTreeMap<&str, Vec<&KernelPoint>> = BTreeMap::new();
    for p in points {
        by_kernel.entry(&p.kernel).or_default().push(p);
    }
    let mut written = Vec::new();
    for (kernel, pts) in by_kernel {
        let path = dir.join(format!("{kernel}.svg"));
        plot_kernel(kernel, &pts, &path).map_err(|e| std::io::Error::other(e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

/// Every series of one kernel: its name and its (size, seconds) points.
fn series(pts: &[&KernelPoint]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in pts {
        let size = p.size.max(1) as f64;
        for (b, s) in &p.medians.backends {
            lines.entry(b.clone()).or_default().push((size, *s));
        }
        lines
            .entry("auto".to_owned())
            .or_default()
            .push((size, p.medians.auto_s));
        if let (Some(name), Some(s)) = (&p.peer, p.peer_s) {
            lines
                .entry(format!("peer: {name}"))
                .or_default()
                .push((size, s));
        }
    }
    // Automatic placement last, drawn over the line it follows.
    let mut lines: Vec<_> = lines.into_iter().collect();
    lines.sort_by_key(|(name, _)| name == "auto");
    lines
}

/// A size as a short label: 512, 16K, 4M (decimal: the log axis puts
/// its labels at powers of ten).
fn short(x: f64) -> String {
    let (mut v, mut unit) = (x, "");
    for u in ["K", "M", "G"] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v >= 10.0 || v.fract().abs() < 0.05 {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.1}{unit}")
    }
}

fn plot_kernel(
    kernel: &str,
    pts: &[&KernelPoint],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let lines = series(pts);
    let all = lines.iter().flat_map(|(_, v)| v.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (1.0, 10.0, 1e-6, 1e-3);
    }
    // Some room around the data on the log axes.
    let (x0, x1) = (x0 / 1.5, x1 * 1.5);
    let (y0, y1) = (y0.max(1e-9) / 2.0, y1.max(1e-9) * 2.0);
    let size_meaning = pel::kernels::sample(kernel).map_or("size", |s| s.size_meaning);

    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{kernel}: median time against size"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(size_meaning)
        .y_desc("median seconds")
        .x_labels(10)
        .y_labels(10)
        .light_line_style(WHITE)
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| pel::secs(*y))
        .draw()?;
    let coloured = lines.into_iter().enumerate().map(|(i, (name, v))| {
        let colour = if name == "auto" {
            BLACK
        } else {
            COLOURS[i % COLOURS.len()]
        };
        (name, v, colour)
    });
    draw_lines(&mut chart, coloured)?;
    root.present()?;
    Ok(())
}

/// Draws each (name, points, colour) as a line with its points marked, and
/// the legend.
fn draw_lines<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    lines: impl IntoIterator<Item = (String, Vec<(f64, f64)>, RGBColor)>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    for (name, mut v, colour) in lines {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(v.iter().copied(), colour.stroke_width(2)))
            .map_err(failed)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart
            .draw_series(v.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(failed)
}

/// Writes the speed-up curves of a scaling prediction (one line per
/// workload, and the ideal) as an SVG at `path`.
pub fn speedup_plot(
    points: &[crate::simulate::ScalePoint],
    title: &str,
    path: &Path,
) -> std::io::Result<()> {
    speedup_plot_axes(
        points,
        title,
        ("GPUs", "predicted speed-up over one GPU"),
        path,
    )
}

/// [`speedup_plot`] with other axis names (`(x, y)`): the points' `gpus`
/// are then whatever x counts.
pub fn speedup_plot_axes(
    points: &[crate::simulate::ScalePoint],
    title: &str,
    axes: (&str, &str),
    path: &Path,
) -> std::io::Result<()> {
    draw_speedup(points, title, axes, path).map_err(|e| std::io::Error::other(e.to_string()))
}

fn draw_speedup(
    points: &[crate::simulate::ScalePoint],
    title: &str,
    (x_desc, y_desc): (&str, &str),
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut lines: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        lines
            .entry(&p.workload)
            .or_default()
            .push((p.gpus as f64, p.speedup));
    }
    let most = points.iter().map(|p| p.gpus).max().unwrap_or(1).max(2) as f64;
    let top = points.iter().map(|p| p.speedup).fold(most, f64::max);
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..most + 0.5, 0.0..top * 1.05)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(WHITE)
        .draw()?;
    let ideal = [(1.0, 1.0), (most, most)];
    chart
        .draw_series(LineSeries::new(ideal, BLACK.mix(0.4).stroke_width(1)))?
        .label("ideal")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    let coloured = lines
        .into_iter()
        .enumerate()
        .map(|(i, (name, v))| (name.to_owned(), v, COLOURS[i % COLOURS.len()]));
    draw_lines(&mut chart, coloured)?;
    root.present()?;
    Ok(())
}
