//! The comparison's plot: throughput and median latency against client count, one line per
//! system, path and operation.

use std::path::Path;

use plotters::prelude::*;

use crate::results::{CompareRow, NetComparison};

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// A line's name: "etcd put", "rhizo coordinated compare_and_set", ….
fn series(row: &CompareRow) -> String {
    let system = if row.path == "raft" { "etcd" } else { "rhizo" };
    let path = if row.path == "raft" {
        String::new()
    } else {
        format!(" {}", row.path.replace('_', "-"))
    };
    format!("{system}{path} {}", row.operation)
}

/// One panel: `value` of each row against its client count, log scales on both axes.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    comparison: &NetComparison,
    caption: &str,
    y_desc: &str,
    value: fn(&CompareRow) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let rows = &comparison.rows;
    let floor = rows.iter().map(value).fold(f64::MAX, f64::min).max(1e-3) / 2.0;
    let ceiling = rows.iter().map(value).fold(floor * 4.0, f64::max) * 2.0;
    let most = rows.iter().map(|r| r.clients as f64).fold(2.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.7f64..most).log_scale(), (floor..ceiling).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("closed-loop clients")
        .y_desc(y_desc)
        .draw()?;
    let mut names: Vec<String> = rows.iter().map(series).collect();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| series(r) == *name)
            .map(|r| (r.clients as f64, value(r).max(floor)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Writes the plot to `path`.
pub(crate) fn write(
    comparison: &NetComparison,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    panel(
        &left,
        comparison,
        "Throughput, 3 members on 127.0.0.1",
        "acknowledged operations per second",
        |r| r.ops_per_sec,
    )?;
    panel(
        &right,
        comparison,
        "Median latency (call to acknowledgement)",
        "p50, ms",
        |r| r.p50_ms,
    )?;
    root.present()?;
    Ok(())
}
