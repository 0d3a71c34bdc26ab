//! SVG plots of a results file (plotters).

use std::path::Path;

use plotters::prelude::*;

use crate::results::Results;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// (operations per transaction, p50 ms, p99 ms)
type LatencyPoint = (f64, f64, f64);

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes every plot into `dir`; returns the file names written.
pub(crate) fn write_all(
    results: &Results,
    dir: &Path,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut written = Vec::new();
    if !results.latency.is_empty() {
        latency(results, &dir.join("latency.svg"))?;
        written.push("latency.svg".to_string());
    }
    if !results.throughput.is_empty() {
        throughput(results, &dir.join("throughput.svg"))?;
        written.push("throughput.svg".to_string());
    }
    if !results.convergence.is_empty() {
        convergence(results, &dir.join("convergence.svg"))?;
        written.push("convergence.svg".to_string());
    }
    if let Some(comparison) = results.net_compare.as_ref().filter(|c| !c.rows.is_empty()) {
        crate::net_compare::plot::write(comparison, &dir.join("versus_etcd.svg"))?;
        written.push("versus_etcd.svg".to_string());
    }
    Ok(written)
}

fn latency(results: &Results, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = results
        .latency
        .iter()
        .map(|r| r.p99_ms)
        .fold(1e-3, f64::max)
        * 2.0;
    let min = results
        .latency
        .iter()
        .map(|r| r.p50_ms)
        .fold(f64::MAX, f64::min)
        .max(1e-5)
        / 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Commit latency, p50 (solid) and p99 (dashed points)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..150f64).log_scale(), (min..max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("operations per transaction")
        .y_desc("milliseconds")
        .draw()?;
    // (series name, points of (ops per transaction, p50, p99))
    let mut series: Vec<(String, Vec<LatencyPoint>)> = Vec::new();
    for row in &results.latency {
        let name = format!("{} / {}", row.path, row.network);
        let point = (row.ops_per_tx as f64, row.p50_ms, row.p99_ms);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, points)) => points.push(point),
            None => series.push((name, vec![point])),
        }
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|p| Circle::new((p.0, p.2), 3, color)))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn throughput(results: &Results, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    // A row that did not finish has no figure to plot.
    let rows: Vec<_> = results
        .throughput
        .iter()
        .filter(|r| r.stopped.is_none())
        .collect();
    let max_ops = rows.iter().map(|r| r.ops_per_sec).fold(1.0, f64::max) * 2.0;
    let max_nodes = rows.iter().map(|r| r.nodes as f64).fold(2.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Commit-then-converge throughput (wall clock)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (1.5f64..max_nodes).log_scale(),
            (1e3f64..max_ops).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("nodes")
        .y_desc("operations per second")
        .draw()?;
    // One line per workload: transactions per node and key space.
    let mut by_ops: Vec<(usize, usize)> = rows.iter().map(|r| (r.ops_per_node, r.keys)).collect();
    by_ops.sort_unstable();
    by_ops.dedup();
    for (i, &(ops, keys)) in by_ops.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| (r.ops_per_node, r.keys) == (ops, keys))
            .map(|r| (r.nodes as f64, r.ops_per_sec.max(1e3)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("{ops} ops per node, {keys} keys"))
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
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn convergence(results: &Results, path: &Path) -> PlotResult {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let rows = &results.convergence;
    let max_rounds = rows
        .iter()
        .map(|r| r.rounds.max(r.log_bound))
        .max()
        .unwrap_or(10) as f64
        * 1.2;
    let max_nodes = rows.iter().map(|r| r.nodes as f64).fold(2.0, f64::max) * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Rounds to converge (dashed: ⌈log2 N⌉ + 2)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1.5f64..max_nodes).log_scale(), 0f64..max_rounds)?;
    chart
        .configure_mesh()
        .x_desc("nodes")
        .y_desc("rounds")
        .draw()?;
    let mut keys: Vec<(String, usize, u64)> = rows
        .iter()
        .map(|r| {
            (
                r.scenario.clone(),
                r.fanout,
                (r.loss * 100.0).round() as u64,
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    for (i, (scenario, fanout, loss)) in keys.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| {
                r.scenario == *scenario
                    && r.fanout == *fanout
                    && (r.loss * 100.0).round() as u64 == *loss
            })
            .map(|r| (r.nodes as f64, r.rounds as f64))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let gossip = if *fanout == 0 {
            "broadcast".to_string()
        } else {
            format!("fanout {fanout}")
        };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(format!("{scenario}, {gossip}, loss {loss}%"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    let mut bound: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.nodes as f64, r.log_bound as f64))
        .collect();
    bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    bound.dedup();
    chart.draw_series(DashedLineSeries::new(bound, 6, 4, BLACK.stroke_width(1)))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
