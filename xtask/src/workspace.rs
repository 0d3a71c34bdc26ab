//! The workspace's member packages, read from `cargo metadata` so that new crates appear by
//! themselves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::process;
use crate::{Error, Result};

/// One member package of the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Package {
    /// Cargo's package id, as it appears in `--message-format=json` artifacts.
    pub(crate) id: String,
    pub(crate) name: String,
    /// The crate name of its library target (`rhizo_clock`), as `Doc-tests` lines print it.
    pub(crate) lib_crate: Option<String>,
    /// Names of every package it depends on (normal, dev and build dependencies).
    pub(crate) dependencies: BTreeSet<String>,
}

/// The member packages of the workspace at `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) packages: Vec<Package>,
}

impl Workspace {
    /// The workspace that contains this xtask package.
    pub(crate) fn root_of_xtask() -> PathBuf {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
    }

    /// Runs `cargo metadata --no-deps` in `root`.
    pub(crate) fn load(root: &Path) -> Result<Self> {
        let mut command = Command::new("cargo");
        command
            .current_dir(root)
            .args(["metadata", "--no-deps", "--format-version", "1"]);
        let line = process::describe(&command);
        let output = command
            .output()
            .map_err(|e| Error::new(format!("cannot start `{line}`: {e}")))?;
        if !output.status.success() {
            return Err(Error::new(format!(
                "`{line}` failed ({}), so the workspace's packages are unknown; a member's \
                 Cargo.toml is probably broken:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            )));
        }
        Self::from_metadata_json(&String::from_utf8_lossy(&output.stdout))
    }

    /// Reads the packages out of `cargo metadata --format-version 1` output.
    pub(crate) fn from_metadata_json(text: &str) -> Result<Self> {
        let metadata: Value = serde_json::from_str(text)
            .map_err(|e| Error::new(format!("cargo metadata printed invalid JSON: {e}")))?;
        let root = metadata["workspace_root"]
            .as_str()
            .ok_or_else(|| Error::new("cargo metadata has no workspace_root"))?;
        let members: BTreeSet<&str> = metadata["workspace_members"]
            .as_array()
            .ok_or_else(|| Error::new("cargo metadata has no workspace_members"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut packages = Vec::new();
        for package in metadata["packages"].as_array().into_iter().flatten() {
            let (Some(id), Some(name)) = (package["id"].as_str(), package["name"].as_str()) else {
                return Err(Error::new(
                    "cargo metadata lists a package without id or name",
                ));
            };
            if !members.contains(id) {
                continue;
            }
            let lib_crate = package["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|target| is_library(&target["kind"]))
                .and_then(|target| target["name"].as_str())
                .map(|name| name.replace('-', "_"));
            let dependencies = package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|dependency| dependency["name"].as_str())
                .map(String::from)
                .collect();
            packages.push(Package {
                id: id.to_owned(),
                name: name.to_owned(),
                lib_crate,
                dependencies,
            });
        }
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            root: PathBuf::from(root),
            packages,
        })
    }

    pub(crate) fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|package| package.name == name)
    }

    pub(crate) fn package_by_id(&self, id: &str) -> Option<&Package> {
        self.packages.iter().find(|package| package.id == id)
    }

    pub(crate) fn package_of_lib_crate(&self, crate_name: &str) -> Option<&Package> {
        self.packages
            .iter()
            .find(|package| package.lib_crate.as_deref() == Some(crate_name))
    }

    /// `broken` together with every member that depends on one of them, directly or through
    /// other members: the packages whose builds fail when `broken` do not compile.
    pub(crate) fn with_dependants(&self, broken: &BTreeSet<String>) -> BTreeSet<String> {
        let mut closure = broken.clone();
        loop {
            let before = closure.len();
            for package in &self.packages {
                if package.dependencies.iter().any(|d| closure.contains(d)) {
                    closure.insert(package.name.clone());
                }
            }
            if closure.len() == before {
                return closure;
            }
        }
    }
}

/// A target kind list (`["lib"]`, `["cdylib", "rlib"]`, `["proc-macro"]`) names a library.
pub(crate) fn is_library(kinds: &Value) -> bool {
    kinds.as_array().into_iter().flatten().any(|kind| {
        matches!(
            kind.as_str(),
            Some("lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro")
        )
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A trimmed `cargo metadata` of a workspace with a clock crate, an algebra crate depending
    /// on it, a commit crate depending on algebra, and xtask (a binary only). One dependency is
    /// not a member and must not become a package.
    pub(crate) const METADATA: &str = r#"{
      "packages": [
        {"name": "rhizo-clock", "id": "path+file:///w/crates/rhizo-clock#0.1.0",
         "dependencies": [{"name": "smallvec", "kind": null}, {"name": "proptest", "kind": "dev"}],
         "targets": [{"kind": ["lib"], "name": "rhizo_clock"}]},
        {"name": "rhizo-algebra", "id": "path+file:///w/crates/rhizo-algebra#0.1.0",
         "dependencies": [{"name": "rhizo-clock", "kind": null}],
         "targets": [{"kind": ["lib"], "name": "rhizo_algebra"}, {"kind": ["test"], "name": "laws"}]},
        {"name": "rhizo-commit", "id": "path+file:///w/crates/rhizo-commit#0.1.0",
         "dependencies": [{"name": "rhizo-algebra", "kind": "dev"}],
         "targets": [{"kind": ["lib"], "name": "rhizo-commit"}]},
        {"name": "xtask", "id": "path+file:///w/xtask#0.1.0",
         "dependencies": [{"name": "serde_json", "kind": null}],
         "targets": [{"kind": ["bin"], "name": "xtask"}]},
        {"name": "smallvec", "id": "registry+https://github.com/rust-lang/crates.io-index#smallvec@1.15.0",
         "dependencies": [], "targets": [{"kind": ["lib"], "name": "smallvec"}]}
      ],
      "workspace_members": [
        "path+file:///w/crates/rhizo-clock#0.1.0",
        "path+file:///w/crates/rhizo-algebra#0.1.0",
        "path+file:///w/crates/rhizo-commit#0.1.0",
        "path+file:///w/xtask#0.1.0"
      ],
      "workspace_root": "/w"
    }"#;

    pub(crate) fn sample() -> Workspace {
        Workspace::from_metadata_json(METADATA).unwrap()
    }

    #[test]
    fn members_are_read_sorted_and_non_members_are_skipped() {
        let workspace = sample();
        assert_eq!(workspace.root, PathBuf::from("/w"));
        let names: Vec<&str> = workspace.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["rhizo-algebra", "rhizo-clock", "rhizo-commit", "xtask"]
        );
    }

    #[test]
    fn library_crate_names_use_underscores() {
        let workspace = sample();
        let commit = workspace.package("rhizo-commit").unwrap();
        assert_eq!(commit.lib_crate.as_deref(), Some("rhizo_commit"));
        assert_eq!(workspace.package("xtask").unwrap().lib_crate, None);
        assert_eq!(
            workspace.package_of_lib_crate("rhizo_clock").unwrap().name,
            "rhizo-clock"
        );
        assert_eq!(
            workspace
                .package_by_id("path+file:///w/crates/rhizo-algebra#0.1.0")
                .unwrap()
                .name,
            "rhizo-algebra"
        );
    }

    #[test]
    fn dependants_are_found_transitively_including_dev_dependencies() {
        let workspace = sample();
        let broken = BTreeSet::from(["rhizo-clock".to_owned()]);
        let closure: Vec<String> = workspace.with_dependants(&broken).into_iter().collect();
        assert_eq!(closure, ["rhizo-algebra", "rhizo-clock", "rhizo-commit"]);
        // A broken third-party crate takes down the members that use it.
        let broken = BTreeSet::from(["serde_json".to_owned()]);
        let closure: Vec<String> = workspace.with_dependants(&broken).into_iter().collect();
        assert_eq!(closure, ["serde_json", "xtask"]);
    }

    #[test]
    fn invalid_metadata_is_an_error() {
        let error = Workspace::from_metadata_json("{\"packages\": []}").unwrap_err();
        assert_eq!(error.to_string(), "cargo metadata has no workspace_root");
        assert!(Workspace::from_metadata_json("not json").is_err());
    }

    #[test]
    fn the_real_workspace_loads_and_contains_xtask() {
        let workspace = Workspace::load(&Workspace::root_of_xtask()).unwrap();
        assert!(workspace.package("xtask").is_some());
        assert!(workspace.package("rhizo-clock").is_some());
    }
}
