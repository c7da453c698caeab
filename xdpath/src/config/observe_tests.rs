//! The config's export sections (`[export.sflow]`, `[export.ipfix]`) and
//! the analytics and mitigation settings: loaded, planned, mistakes placed.

use super::tests::{errors, parse};
use super::*;

#[test]
fn observe_sections_load_and_plan() {
    let text = "\
[[interface]]
name = \"eth0\"
sample_rate = 1000

[export.sflow]
collectors = [\"192.0.2.1:6343\", \"[2001:db8::1]:6343\"]
agent = \"192.0.2.10\"
counter_interval = \"5s\"

[export.ipfix]
collectors = \"192.0.2.1:4739\"
idle_timeout = \"3s\"

[analytics]
top_window = \"30s\"

[mitigation]
threshold_pps = 5000
prefix_v4 = 24
ttl = \"10m\"
dry_run = true
exempt = [\"10.0.0.0/8\"]
";
    let config = parse(text).expect("valid");
    assert_eq!(config.interfaces[0].sample_rate, 1000);
    let sflow = config.observe.sflow.as_ref().unwrap();
    assert_eq!(sflow.collectors.len(), 2);
    assert_eq!(sflow.counter_interval_ms, 5000);
    let ipfix = config.observe.ipfix.as_ref().unwrap();
    assert_eq!(
        (ipfix.idle_timeout_ms, ipfix.active_timeout_ms),
        (3000, 60_000)
    );
    assert_eq!(config.observe.top_window_ms, 30_000);
    let mitigation = config.observe.mitigation.as_ref().unwrap();
    assert_eq!((mitigation.prefix_v4, mitigation.ttl_ms), (24, 600_000));
    assert!(mitigation.dry_run);
    assert_eq!(mitigation.exempt, [("10.0.0.0".parse().unwrap(), 8)]);
    let changes = plan(&DesiredConfig::default(), &config);
    let observe: Vec<&str> = changes
        .observe
        .iter()
        .map(|change| change.key.as_str())
        .collect();
    assert_eq!(observe, ["analytics", "ipfix", "mitigation", "sflow"]);
}

#[test]
fn observe_mistakes_are_listed_with_their_place() {
    let text = "\
[[interface]]
name = \"eth0\"
sample_rate = 99999999

[export.sflow]
agent = \"not-an-address\"

[export.ipfix]
collectors = [\"192.0.2.1\", \"127.0.0.1:0\", \"0.0.0.0:4739\", \"255.255.255.255:4739\"]
idle_timeout = \"0s\"

[mitigation]
threshold_pps = 100
prefix_v4 = 4
";
    let lines = errors(text);
    let expected = [
        "test.toml:3:15: interface[0].sample_rate: 99999999 is above the largest rate",
        "test.toml:5:1: export.sflow: missing field `collectors`",
        "test.toml:6:9: export.sflow.agent: \"not-an-address\" is not an IP address",
        "test.toml:9:15: export.ipfix.collectors[0]: \"192.0.2.1\" is not ADDRESS:PORT",
        "test.toml:9:28: export.ipfix.collectors[1]: \"127.0.0.1:0\": port 0 is no port",
        "test.toml:9:43: export.ipfix.collectors[2]: \"0.0.0.0:4739\": the unspecified address",
        "test.toml:9:59: export.ipfix.collectors[3]: \"255.255.255.255:4739\": the broadcast",
        "test.toml:10:16: export.ipfix.idle_timeout: must be longer than 0",
        "test.toml:14:13: mitigation.prefix_v4: mitigation prefix_v4 /4 is out of range",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "{line}\n  should start with\n{start}"
        );
    }
}

#[test]
fn a_collector_named_twice_or_a_group_is_refused() {
    let text = "\
[export.sflow]
collectors = [\"192.0.2.1:6343\", \"192.0.2.1:6343\", \"[::ffff:192.0.2.1]:6343\"]

[export.ipfix]
collectors = [\"224.0.0.1:4739\", \"[ff02::1]:4739\", \"[::ffff:239.1.1.1]:4739\"]
";
    let lines = errors(text);
    let expected = [
        "test.toml:2:33: export.sflow.collectors[1]: collector 192.0.2.1:6343 is listed twice \
         (also export.sflow.collectors[0])",
        "test.toml:2:51: export.sflow.collectors[2]: collector 192.0.2.1:6343 is listed twice \
         (also export.sflow.collectors[1])",
        "test.toml:5:15: export.ipfix.collectors[0]: \"224.0.0.1:4739\": a multicast address",
        "test.toml:5:33: export.ipfix.collectors[1]: \"[ff02::1]:4739\": a multicast address",
        "test.toml:5:51: export.ipfix.collectors[2]: \"[::ffff:239.1.1.1]:4739\": a multicast",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "{line}\n  should start with\n{start}"
        );
    }
}
