//! The comparison's section of `report.md`.

use std::fmt::Write as _;

use crate::results::NetComparison;

fn yes_no(holds: Option<bool>) -> &'static str {
    match holds {
        Some(true) => "holds",
        Some(false) => "**does not hold**",
        None => "not judged",
    }
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.3} ms"))
}

/// The section: how the rows were measured, the rows, what was skipped and why, and the
/// issue's targets judged on this run's figures.
pub(crate) fn markdown(c: &NetComparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Against etcd over the network (same run)\n");
    let _ = writeln!(
        s,
        "Three etcd members (its v3 HTTP/JSON gateway) and three Rhizo nodes (mutual TLS; \
         clients through each node's client listener, `rhizo_net::Client`), all on 127.0.0.1 of \
         this machine, driven by the same closed-loop clients (each with one connection, spread \
         over the members in turn) for {:.1} s per row after an uncounted warm-up. Latency is \
         from call to acknowledgement, retries of retryable failures included (each is also \
         counted). Visibility lag: from an increment's acknowledgement until a client of each \
         other node reads it.\n",
        c.seconds_per_row
    );
    let _ = writeln!(
        s,
        "| system | path | operation | clients | ops | retries | ops/s | p50 | p99 | visible p50 | visible p99 | converged |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in &c.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.3} ms | {:.3} ms | {} | {} | {} |",
            r.system,
            r.path,
            r.operation,
            r.clients,
            r.ops,
            r.retries,
            r.ops_per_sec,
            r.p50_ms,
            r.p99_ms,
            optional_ms(r.visibility_p50_ms),
            optional_ms(r.visibility_p99_ms),
            r.converged
                .map_or("–", |c| if c { "yes" } else { "**no**" }),
        );
    }
    let _ = writeln!(s, "\nDurability (of a read: consistency) of each path:\n");
    let mut durabilities: Vec<(&str, &str)> = c
        .rows
        .iter()
        .map(|r| (r.path.as_str(), r.durability.as_str()))
        .collect();
    durabilities.dedup();
    for (path, durability) in durabilities {
        let _ = writeln!(s, "- {path}: {durability}");
    }
    for skipped in &c.skipped {
        let _ = writeln!(
            s,
            "\n{} was not measured: {}",
            skipped.system, skipped.reason
        );
    }
    let _ = writeln!(s, "\nThe issue's targets, judged on this run:\n");
    let _ = writeln!(s, "| target | measured | verdict |");
    let _ = writeln!(s, "|---|---|---|");
    for t in &c.targets {
        let _ = writeln!(s, "| {} | {} | {} |", t.target, t.measured, yes_no(t.holds));
    }
    s
}
