use std::path::Path;

use super::*;

#[test]
fn a_compare_and_set_request_puts_on_equal_and_reads_otherwise() {
    let request = cas_request(b"k", b"old", b"new");
    let key = BASE64.encode(b"k");
    assert_eq!(request["compare"][0]["key"], key);
    assert_eq!(request["compare"][0]["result"], "EQUAL");
    assert_eq!(request["compare"][0]["target"], "VALUE");
    assert_eq!(request["compare"][0]["value"], BASE64.encode(b"old"));
    assert_eq!(
        request["success"][0]["request_put"]["value"],
        BASE64.encode(b"new")
    );
    assert_eq!(request["failure"][0]["request_range"]["key"], key);
}

#[test]
fn a_swap_answer_is_read_with_proto3_defaults_left_out() {
    let swapped = json!({ "header": {}, "succeeded": true, "responses": [{ "response_put": {} }] });
    assert_eq!(parse_swap(&swapped), Ok(Swap::Swapped));

    let held = json!({
        "header": {},
        "responses": [{ "response_range": { "kvs": [{ "value": BASE64.encode(b"7") }] } }],
    });
    assert_eq!(parse_swap(&held), Ok(Swap::Held(Some(b"7".to_vec()))));

    let missing = json!({ "header": {}, "responses": [{ "response_range": { "header": {} } }] });
    assert_eq!(parse_swap(&missing), Ok(Swap::Held(None)));
}

#[test]
fn a_range_answer_gives_the_value_or_none_and_refuses_what_is_not_base64() {
    let found = json!({ "header": {}, "kvs": [{ "key": BASE64.encode(b"k"), "value": BASE64.encode(b"9") }], "count": "1" });
    assert_eq!(parse_range(&found), Ok(Some(b"9".to_vec())));
    assert_eq!(parse_range(&json!({ "header": {} })), Ok(None));
    let malformed = parse_range(&json!({ "kvs": [{ "value": "%%%" }] })).expect_err("malformed");
    assert!(!malformed.retryable, "{malformed:?}");
}

#[test]
fn a_malformed_swap_answer_is_a_failure_not_to_retry() {
    for answer in [
        json!({ "header": {} }),
        json!({ "responses": [{ "response_range": { "kvs": [{ "value": "%%%" }] } }] }),
    ] {
        let failure = parse_swap(&answer).expect_err("malformed");
        assert!(!failure.retryable, "{failure:?}");
    }
}

#[test]
fn busy_or_leaderless_answers_are_retryable_and_others_are_not() {
    let unavailable = r#"{"error":"etcdserver: request timed out","code":14}"#;
    assert!(answer(503, unavailable).expect_err("an error").retryable);
    assert!(answer(429, "{}").expect_err("an error").retryable);
    assert!(answer(504, "not json").expect_err("an error").retryable);
    let invalid = r#"{"error":"etcdserver: key is not provided","code":3}"#;
    let failure = answer(400, invalid).expect_err("an error");
    assert!(!failure.retryable);
    assert!(
        failure.reason.contains("key is not provided"),
        "{}",
        failure.reason
    );
    assert!(!answer(200, "not json").expect_err("an error").retryable);
    assert_eq!(answer(200, r#"{"a":1}"#), Ok(json!({ "a": 1 })));
}

#[test]
fn the_version_is_read_from_its_line() {
    let printed = "etcd Version: 3.4.23\nGit SHA: Not provided (use ./build instead of go build)\n\
                   Go Version: go1.19.8\nGo OS/Arch: linux/amd64\n";
    assert_eq!(version_of(printed), "etcd 3.4.23");
    assert_eq!(version_of("something else\n"), "etcd, version unknown");
}

#[test]
fn free_ports_are_distinct() {
    let ports = free_ports(6).expect("ports");
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 6, "{ports:?}");
}

/// Whether the process `pid` still exists (a reaped child's /proc entry is gone).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The members answer puts and compare-and-sets through the gateway, and are gone (by pid) once
/// the cluster is dropped. Needs etcd on PATH: without it the test says so and checks that
/// `locate` names the way to install it.
#[test]
fn a_cluster_serves_puts_and_swaps_and_its_members_stop_on_drop() {
    let binary = match locate() {
        Ok(binary) => binary,
        Err(reason) => {
            assert!(reason.contains("apt-get install etcd-server"), "{reason}");
            eprintln!("etcd is not on PATH, the cluster is not started: {reason}");
            return;
        }
    };
    let cluster = Cluster::start(&binary).expect("etcd starts");
    let pids = cluster.pids();
    assert_eq!(pids.len(), MEMBERS);
    assert!(pids.iter().all(|&pid| alive(pid)));
    let urls = cluster.client_urls();
    let a = EtcdClient::new(&urls[0], Duration::from_secs(10));
    let b = EtcdClient::new(&urls[1], Duration::from_secs(10));
    a.put(b"reg", b"0").expect("a put");
    assert_eq!(b.compare_and_set(b"reg", b"0", b"1"), Ok(Swap::Swapped));
    assert_eq!(
        a.compare_and_set(b"reg", b"0", b"2"),
        Ok(Swap::Held(Some(b"1".to_vec())))
    );
    assert_eq!(
        a.compare_and_set(b"absent", b"0", b"1"),
        Ok(Swap::Held(None))
    );
    drop(cluster);
    assert!(pids.iter().all(|&pid| !alive(pid)), "{pids:?}");
}
