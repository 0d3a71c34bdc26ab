//! Phase "py": the Python bindings, checked in a virtual environment at `<root>/.venv` that is
//! created (and given its tools) when missing, so that a fresh machine needs only `python3`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Outcome, StepReport, StepStatus, TestResult, junit, run_step};
use crate::Result;

/// The tools installed into the virtual environment: (executable in `.venv/bin`, pip package).
const TOOLS: &[(&str, &str)] = &[
    ("maturin", "maturin"),
    ("pytest", "pytest"),
    ("ruff", "ruff"),
    ("mypy", "mypy"),
];

/// The Rust package that holds the bindings; pytest's results are recorded under it.
const PACKAGE: &str = "rhizo-py";

/// Everything the Python phase produced.
#[derive(Debug, Default)]
pub(crate) struct PythonRun {
    pub(crate) steps: Vec<StepReport>,
    pub(crate) tests: Vec<TestResult>,
}

/// Makes sure `<root>/.venv` exists and holds maturin, then builds the bindings into it with
/// `maturin develop --release`: the build `cargo xtask bench` measures. `Ok(false)` if a step
/// failed (it has printed why).
pub(crate) fn build_release_bindings(root: &Path, package_dir: &Path) -> Result<bool> {
    let venv = root.join(".venv");
    let bin = venv.join("bin");
    let mut steps = Vec::new();
    if !ensure_venv(root, &[("maturin", "maturin")], &mut steps)? {
        return Ok(false);
    }
    let mut develop = Command::new(bin.join("maturin"));
    develop
        .current_dir(package_dir)
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", path_with(&bin))
        .args(["develop", "--release"]);
    Ok(run_step("maturin develop --release", develop, &|_| true)?
        .0
        .status
        == StepStatus::Passed)
}

/// Creates `<root>/.venv` if it is missing and installs those of `tools` (executable in
/// `.venv/bin`, pip package) it lacks, reporting each step. `Ok(false)` if a step failed.
fn ensure_venv(root: &Path, tools: &[(&str, &str)], steps: &mut Vec<StepReport>) -> Result<bool> {
    let bin = root.join(".venv").join("bin");
    let python = bin.join("python");
    if !python.exists() {
        let mut command = Command::new("python3");
        command.current_dir(root).args(["-m", "venv", ".venv"]);
        let (report, _) = run_step("python venv", command, &|_| true)?;
        let ok = report.status == StepStatus::Passed;
        steps.push(report);
        if !ok {
            return Ok(false);
        }
    }
    let missing = missing_tools(&bin, tools);
    if missing.is_empty() {
        return Ok(true);
    }
    let mut command = Command::new(&python);
    command
        .current_dir(root)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(missing);
    let (report, _) = run_step("pip install", command, &|_| true)?;
    let ok = report.status == StepStatus::Passed;
    steps.push(report);
    Ok(ok)
}

/// Runs venv setup, `maturin develop`, ruff, stubtest and pytest for the project in
/// `package_dir`. A failing step skips the steps that need it.
pub(crate) fn run(root: &Path, package_dir: &Path, scratch_dir: &Path) -> Result<PythonRun> {
    let venv = root.join(".venv");
    let bin = venv.join("bin");
    let python = bin.join("python");
    let mut run = PythonRun::default();

    if !ensure_venv(root, TOOLS, &mut run.steps)? {
        return Ok(run);
    }

    let in_venv = |program: PathBuf| {
        let mut command = Command::new(program);
        command
            .current_dir(package_dir)
            .env("VIRTUAL_ENV", &venv)
            .env("PATH", path_with(&bin));
        command
    };

    let mut develop = in_venv(bin.join("maturin"));
    develop.arg("develop");
    let (report, _) = run_step("maturin develop", develop, &|_| true)?;
    let built = report.status == StepStatus::Passed;
    run.steps.push(report);

    let mut ruff = in_venv(bin.join("ruff"));
    ruff.args(["check", "."]);
    run.steps.push(run_step("ruff check", ruff, &|_| true)?.0);

    if !built {
        run.steps.push(StepReport::skipped(
            "mypy stubtest",
            "the extension did not build",
        ));
        run.steps
            .push(StepReport::skipped("pytest", "the extension did not build"));
        return Ok(run);
    }

    let modules = stub_modules(package_dir);
    if modules.is_empty() {
        run.steps
            .push(StepReport::skipped("mypy stubtest", "no .pyi stub found"));
    } else {
        let mut stubtest = in_venv(python.clone());
        stubtest.args(["-m", "mypy.stubtest"]).args(&modules);
        run.steps
            .push(run_step("mypy stubtest", stubtest, &|_| true)?.0);
    }

    let report_path = scratch_dir.join("pytest-junit.xml");
    let _ = fs::remove_file(&report_path);
    fs::create_dir_all(scratch_dir)
        .map_err(|e| crate::Error::new(format!("cannot create {}: {e}", scratch_dir.display())))?;
    let mut pytest = in_venv(python);
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml"])
        .arg(&report_path);
    let (mut report, captured) = run_step("pytest", pytest, &|_| true)?;
    match captured.status.code() {
        // 0: all passed, 1: some failed; the report says which.
        Some(0 | 1) => {
            let xml = fs::read_to_string(&report_path).map_err(|e| {
                crate::Error::new(format!("cannot read {}: {e}", report_path.display()))
            })?;
            for case in junit::parse(&xml)? {
                run.tests.push(TestResult {
                    package: PACKAGE.to_owned(),
                    id: format!("{PACKAGE}::pytest::{}", case.name),
                    outcome: case.outcome,
                });
            }
            let failed = run
                .tests
                .iter()
                .filter(|test| test.outcome != Outcome::Passed)
                .count();
            report.status = if failed == 0 {
                StepStatus::Passed
            } else {
                StepStatus::TestsFailed(failed)
            };
        }
        // 5: no tests were collected; a baseline, if any, reports them missing.
        Some(5) => report.status = StepStatus::Passed,
        _ => {}
    }
    run.steps.push(report);
    Ok(run)
}

/// Pip packages whose executables are absent from `bin`.
fn missing_tools<'a>(bin: &Path, tools: &[(&str, &'a str)]) -> Vec<&'a str> {
    tools
        .iter()
        .filter(|(executable, _)| !bin.join(executable).exists())
        .map(|(_, package)| *package)
        .collect()
}

/// `bin` in front of the inherited PATH.
fn path_with(bin: &Path) -> OsString {
    let mut paths = vec![bin.to_path_buf()];
    if let Some(inherited) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&inherited));
    }
    std::env::join_paths(paths).unwrap_or_else(|_| bin.as_os_str().to_owned())
}

/// The modules that have `.pyi` stubs under `dir` (skipping build and environment folders),
/// sorted: `x.pyi` is module `x`, `x/__init__.pyi` is module `x`.
fn stub_modules(dir: &Path) -> Vec<String> {
    let mut modules = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && !matches!(name.as_str(), "target" | "__pycache__") {
                    pending.push(path);
                }
            } else if let Some(module) = module_of_stub(&path) {
                modules.push(module);
            }
        }
    }
    modules.sort();
    modules.dedup();
    modules
}

fn module_of_stub(path: &Path) -> Option<String> {
    if path.extension()? != "pyi" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    if stem == "__init__" {
        Some(path.parent()?.file_name()?.to_str()?.to_owned())
    } else {
        Some(stem.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_name_their_modules() {
        assert_eq!(
            module_of_stub(Path::new("py/_rhizo.pyi")),
            Some("_rhizo".to_owned())
        );
        assert_eq!(
            module_of_stub(Path::new("python/rhizo/__init__.pyi")),
            Some("rhizo".to_owned())
        );
        assert_eq!(module_of_stub(Path::new("python/rhizo/__init__.py")), None);
    }

    #[test]
    fn stub_search_skips_environments_and_build_folders() {
        let dir = std::env::temp_dir().join(format!("xtask-stubs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for file in [
            "python/rhizo/__init__.pyi",
            "_rhizo.pyi",
            ".venv/lib/site.pyi",
            "target/wheels/x.pyi",
            "tests/test_clock.py",
        ] {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "").unwrap();
        }
        assert_eq!(stub_modules(&dir), ["_rhizo", "rhizo"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_absent_tools_are_installed() {
        let dir = std::env::temp_dir().join(format!("xtask-venv-bin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            missing_tools(&dir, TOOLS),
            ["maturin", "pytest", "ruff", "mypy"]
        );
        fs::write(dir.join("pytest"), "").unwrap();
        fs::write(dir.join("ruff"), "").unwrap();
        assert_eq!(missing_tools(&dir, TOOLS), ["maturin", "mypy"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_environment_comes_first_on_the_path() {
        let path = path_with(Path::new("/r/.venv/bin"));
        let first = std::env::split_paths(&path).next().unwrap();
        assert_eq!(first, PathBuf::from("/r/.venv/bin"));
    }
}
