//! `rhizo-chaos`: runs one chaos run and exits non-zero when a check fails (see the library's
//! docs and docs/chaos.md). `cargo xtask chaos` builds it and the `rhizo` binary and runs it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match rhizo_chaos::options::parse(&args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("rhizo-chaos: {err}");
            return ExitCode::from(2);
        }
    };
    let replay = format!(
        "cargo xtask chaos --seed {} --duration {} --nodes {}",
        options.seed,
        options.duration.as_secs(),
        options.nodes
    );
    println!(
        "chaos: seed {}, {} s, {} nodes, run directory {}",
        options.seed,
        options.duration.as_secs(),
        options.nodes,
        options.run_dir.display()
    );
    match rhizo_chaos::run::run(&options) {
        Ok(report) if report.violations.is_empty() => {
            print!("{}", report.summary);
            let _ = std::fs::remove_dir_all(&options.run_dir);
            println!("chaos: PASS (seed {})", options.seed);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.summary);
            for violation in &report.violations {
                println!("VIOLATION {violation}");
            }
            println!(
                "chaos: FAIL (seed {}): {} violations; the nodes' logs are kept in {}\nreplay: {replay}",
                options.seed,
                report.violations.len(),
                options.run_dir.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            println!(
                "chaos: ERROR (seed {}): {err}; the run directory is kept in {}\nreplay: {replay}",
                options.seed,
                options.run_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
