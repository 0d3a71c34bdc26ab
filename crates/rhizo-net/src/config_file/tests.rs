//! The file format against its documentation: every key `docs/config.md` lists is parsed, with
//! the documented default meaning what leaving the key out means; every key the parser knows is
//! documented; an unknown key is an error naming it.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const DOC: &str = include_str!("../../../../docs/config.md");

/// A documented key and its default cell.
struct DocumentedKey {
    /// e.g. `sync.policy`, `schema.<table>.<column>.merge`.
    path: String,
    /// The default written as TOML, or `None` for *required* and described defaults.
    default: Option<String>,
    required: bool,
}

fn documented_keys() -> Vec<DocumentedKey> {
    DOC.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // `| key | default | meaning |` splits into ["", key, default, meaning, ""].
            let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let default = cells.get(2)?;
            let literal = default
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'))
                .map(str::to_owned);
            Some(DocumentedKey {
                path: key.to_owned(),
                required: default.starts_with("*required"),
                default: literal,
            })
        })
        .collect()
}

/// Where a documented key goes in a file: the table and the key within it. Template parts
/// name the base file's table and column.
fn placed(path: &str) -> (String, String) {
    let path = path
        .replace("<table>", "counters")
        .replace("<column>", "value")
        .replace("<id>", "n9");
    match path.rsplit_once('.') {
        Some((table, key)) => (table.to_owned(), key.to_owned()),
        None => (String::new(), path),
    }
}

/// A file with every required key, as tables of `key = value` lines.
fn base() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut file: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut set = |table: &str, key: &str, value: &str| {
        file.entry(table.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
    };
    set("", "node_id", "\"n1\"");
    set("", "data_dir", "\"data\"");
    set("members", "n1", "\"127.0.0.1:7001\"");
    set("members", "n2", "\"127.0.0.1:7002\"");
    set("tls", "ca_cert", "\"certs/ca.crt\"");
    set("tls", "cert", "\"certs/n1.crt\"");
    set("tls", "key", "\"certs/n1.key\"");
    set("client", "listen", "\"127.0.0.1:7101\"");
    set("metrics", "listen", "\"127.0.0.1:9101\"");
    set("schema.counters.value", "merge", "\"ADD\"");
    set("schema.counters.value", "type", "\"integer\"");
    file
}

fn render(file: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let mut text = String::new();
    for (table, keys) in file {
        if !table.is_empty() {
            text.push_str(&format!("[{table}]\n"));
        }
        for (key, value) in keys {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

/// The configuration a file gives, printed (the incarnation, a start time, set aside).
fn configured(text: &str) -> Result<String> {
    let mut config = ConfigFile::parse(text)?.node_config(Path::new("/etc/rhizo"))?;
    config.transport.incarnation = 0;
    Ok(format!("{config:?}"))
}

#[test]
fn every_documented_default_is_what_leaving_the_key_out_gives() {
    let keys = documented_keys();
    assert!(keys.len() > 40, "docs/config.md lists {} keys", keys.len());
    let expected = configured(&render(&base())).unwrap();
    for key in keys.iter().filter(|key| key.default.is_some()) {
        let (table, leaf) = placed(&key.path);
        let mut file = base();
        let value = key.default.clone().unwrap();
        file.entry(table).or_default().insert(leaf, value);
        let text = render(&file);
        assert_eq!(
            configured(&text).unwrap_or_else(|err| panic!("{}: {err}", key.path)),
            expected,
            "{} at its documented default changes the configuration",
            key.path
        );
    }
}

#[test]
fn every_documented_key_is_parsed_and_changes_the_configuration() {
    // A value other than the default for each key, where the default is a literal.
    let other = |default: &str| -> String {
        match default {
            "true" => "false".into(),
            "false" => "true".into(),
            "\"every_commit\"" => "\"group\"".into(),
            "\"rhizo\"" => "\"another\"".into(),
            "0.5" => "0.25".into(),
            number => format!("{}", number.parse::<u64>().expect("a number") + 1),
        }
    };
    for key in documented_keys() {
        let (table, leaf) = placed(&key.path);
        // Group settings mean something only under the group policy.
        let group = |mut file: BTreeMap<String, BTreeMap<String, String>>| {
            if key.path.starts_with("sync.group") {
                let sync = file.entry("sync".into()).or_default();
                sync.insert("policy".into(), "\"group\"".into());
            }
            file
        };
        let expected = configured(&render(&group(base()))).unwrap();
        let value = match (&key.default, key.path.as_str()) {
            (Some(default), _) => other(default),
            (None, "listen") => "\"0.0.0.0:7001\"".into(),
            (None, "members.<id>") => "\"127.0.0.1:7009\"".into(),
            (None, "schema.<table>.<column>.merge") => "\"MAX\"".into(),
            (None, "schema.<table>.<column>.type") => "\"float\"".into(),
            (None, "tls.ca_cert" | "tls.cert" | "tls.key") => "\"elsewhere.pem\"".into(),
            (None, "client.listen") => "\"127.0.0.1:7199\"".into(),
            (None, "metrics.listen") => "\"127.0.0.1:9199\"".into(),
            (None, "node_id") => "\"n2\"".into(),
            (None, "data_dir") => "\"elsewhere\"".into(),
            (None, path) => panic!("no sample value for {path}: add one here"),
        };
        let mut file = group(base());
        file.entry(table).or_default().insert(leaf, value);
        if key.path == "insecure" {
            file.remove("tls");
        }
        let changed = configured(&render(&file))
            .unwrap_or_else(|err| panic!("{} is not parsed: {err}", key.path));
        assert_ne!(changed, expected, "{} changes nothing", key.path);
    }
}

#[test]
fn every_required_key_is_required() {
    for key in documented_keys().iter().filter(|key| key.required) {
        let (table, leaf) = placed(&key.path);
        let mut file = base();
        if key.path == "members.<id>" {
            file.remove("members");
        } else {
            if let Some(keys) = file.get_mut(&table) {
                keys.remove(&leaf);
            }
        }
        let err = configured(&render(&file)).expect_err(&key.path);
        let named = if key.path == "members.<id>" {
            "members"
        } else {
            &leaf
        };
        assert!(err.to_string().contains(named), "{}: {err}", key.path);
    }
}

#[test]
fn every_key_the_parser_knows_is_documented_and_unknown_keys_are_refused() {
    let documented: Vec<String> = documented_keys().into_iter().map(|key| key.path).collect();
    for table in [
        "",
        "tls",
        "client",
        "metrics",
        "sync",
        "engine",
        "raft",
        "transport",
        "schema.counters.value",
    ] {
        let mut file = base();
        file.entry(table.to_owned())
            .or_default()
            .insert("no_such_key".into(), "1".into());
        let err = ConfigFile::parse(&render(&file)).unwrap_err().to_string();
        assert!(
            err.contains("unknown field `no_such_key`"),
            "[{table}]: {err}"
        );
        // serde lists the fields it expects, each in backticks.
        let expected = err
            .split("unknown field `no_such_key`, expected ")
            .nth(1)
            .unwrap_or_else(|| panic!("[{table}] lists no fields: {err}"));
        let fields: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(!fields.is_empty(), "{err}");
        for field in fields {
            let path = match table {
                "" => field.to_owned(),
                "schema.counters.value" => format!("schema.<table>.<column>.{field}"),
                _ => format!("{table}.{field}"),
            };
            let documented = documented.contains(&path)
                || (table.is_empty()
                    && [
                        "members",
                        "tls",
                        "client",
                        "metrics",
                        "sync",
                        "engine",
                        "raft",
                        "transport",
                        "schema",
                    ]
                    .contains(&field));
            assert!(documented, "{path} is parsed but not in docs/config.md");
        }
    }
}

#[test]
fn tls_or_insecure_and_members_naming_this_node() {
    let mut file = base();
    file.get_mut("")
        .unwrap()
        .insert("insecure".into(), "true".into());
    let err = configured(&render(&file)).unwrap_err();
    assert!(err.to_string().contains("not both"), "{err}");

    let mut file = base();
    file.get_mut("members").unwrap().remove("n1");
    let err = configured(&render(&file)).unwrap_err();
    assert!(err.to_string().contains("must list this node"), "{err}");

    let mut file = base();
    file.entry("sync".into())
        .or_default()
        .insert("policy".into(), "\"sometimes\"".into());
    let err = configured(&render(&file)).unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
}

#[test]
fn a_zero_metrics_interval_is_refused_at_start() {
    let mut file = base();
    file.get_mut("metrics")
        .unwrap()
        .insert("interval_ms".into(), "0".into());
    let config = ConfigFile::parse(&render(&file))
        .unwrap()
        .node_config(Path::new("/etc/rhizo"))
        .unwrap();
    let err = crate::Node::start(config).unwrap_err();
    assert!(err.to_string().contains("metrics.interval"), "{err}");
}

#[test]
fn relative_paths_are_taken_from_the_file_directory() {
    let config = ConfigFile::parse(&render(&base()))
        .unwrap()
        .node_config(Path::new("/etc/rhizo"))
        .unwrap();
    assert_eq!(
        config.data_dir.as_deref(),
        Some(Path::new("/etc/rhizo/data"))
    );
    let Security::Tls(files) = &config.transport.security else {
        panic!("TLS expected");
    };
    assert_eq!(files.ca_cert, Path::new("/etc/rhizo/certs/ca.crt"));
    assert_eq!(config.transport.listen, "127.0.0.1:7001");
    assert_eq!(
        config
            .engine
            .schema
            .column("counters", "value")
            .unwrap()
            .merge(),
        MergeType::Add
    );
}
