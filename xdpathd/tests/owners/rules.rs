//! Filter rules in owner documents, as the OpenStack Neutron agent makes
//! them for a port of a stateless security group: "allow these, then drop
//! the rest to the port's address". Applied with the document, in its
//! order, listed back, kept (ids and all) when the document is sent again,
//! shown with their owner by `GET /v1/rules`, left alone by a config and
//! by other owners, refused whole when one is wrong, removed with the
//! owner.

use super::*;

const PORT_OWNER: &str = "neutron-port-7d1c2b3a";
const ADDRESS: &str = "10.0.0.5/32";

/// The port's document: two allows and the drop of the rest, and a limit.
fn port_document(extra: Option<Value>) -> Value {
    let mut rules = vec![
        json!({ "src": "198.51.100.0/24", "dst": ADDRESS, "proto": "tcp", "dport": "22", "action": "pass" }),
        json!({ "dst": ADDRESS, "proto": "icmp", "action": "pass" }),
        json!({ "dst": ADDRESS, "action": "drop" }),
    ];
    if let Some(rule) = extra {
        rules.insert(1, rule);
    }
    json!({
        "limits": [{ "per": "dst", "scope": ADDRESS, "pps": "1000" }],
        "rules": rules,
    })
}

/// The rules as `GET /v1/rules` lists them.
fn rules(daemon: &Daemon) -> Vec<Value> {
    let listed = driver_ok(daemon, "GET", "/v1/rules", None);
    listed.as_array().cloned().unwrap_or_default()
}

/// The ids and actions of `owner`'s rules, in list order.
fn owned(daemon: &Daemon, owner: &str) -> Vec<(u64, String)> {
    rules(daemon)
        .iter()
        .filter(|rule| rule["owner"] == owner)
        .map(|rule| {
            (
                rule["id"].as_u64().unwrap_or(0),
                rule["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub(crate) fn rules_in_documents(daemon: &Daemon) {
    let path = format!("/v1/owners/{PORT_OWNER}");
    let operator = driver_ok(
        daemon,
        "POST",
        "/v1/rules",
        Some(&json!({ "src": "192.0.2.0/24", "action": "drop" })),
    );
    let operator_id = operator["id"].as_u64().expect("the operator's rule id");

    let answer = driver_ok(daemon, "PUT", &path, Some(&port_document(None)));
    assert_eq!(
        (answer["changed"].clone(), answer["rules"].clone()),
        (json!(true), json!(3)),
        "{answer}"
    );
    let first = owned(daemon, PORT_OWNER);
    let actions: Vec<&str> = first.iter().map(|(_, action)| action.as_str()).collect();
    assert_eq!(actions, ["pass", "pass", "drop"], "in the document's order");
    let listed = rules(daemon);
    let mine = listed
        .iter()
        .find(|rule| rule["owner"] == PORT_OWNER)
        .expect("owned rule");
    assert_eq!(mine["sources"], json!(["198.51.100.0/24"]), "{mine}");
    assert_eq!(mine["dport"], "22");
    let theirs = listed
        .iter()
        .find(|rule| rule["id"] == operator_id)
        .expect("operator's rule");
    assert_eq!(
        theirs["owner"],
        Value::Null,
        "the operator's rule has no owner"
    );

    // Listed back; the same document, or its read-back, changes nothing.
    let view = driver_ok(daemon, "GET", &path, None);
    let held = view["document"].clone();
    assert_eq!(held["rules"].as_array().map(Vec::len), Some(3), "{held}");
    assert_eq!(held["rules"][0]["proto"], "tcp");
    assert_eq!(held["rules"][0]["dport"], "22");
    assert_eq!(held["rules"][2]["action"], "drop");
    for again in [port_document(None), held] {
        let answer = driver_ok(daemon, "PUT", &path, Some(&again));
        assert_eq!(answer["changed"], false, "{answer}");
    }
    assert_eq!(owned(daemon, PORT_OWNER), first, "ids kept");
    let owners = driver_ok(daemon, "GET", "/v1/owners", None);
    let row = owners
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["owner"] == PORT_OWNER).cloned())
        .expect("the owner's row");
    assert_eq!(
        (row["limits"].clone(), row["rules"].clone()),
        (json!(1), json!(3)),
        "{row}"
    );

    // A rule inserted: the kept rules keep their ids, all in the new order
    // (the drop stays last, so the new allow is reached).
    let udp = json!({ "dst": ADDRESS, "proto": "udp", "dport": "53", "action": "pass" });
    driver_ok(daemon, "PUT", &path, Some(&port_document(Some(udp))));
    let second = owned(daemon, PORT_OWNER);
    assert_eq!(second.len(), 4, "{second:?}");
    assert_eq!(second[0], first[0]);
    assert_eq!(&second[2..], &first[1..], "kept ids, after the new rule");
    assert!(
        !first.iter().any(|(id, _)| *id == second[1].0),
        "a fresh id"
    );

    // A wrong rule refuses the whole document: nothing changes.
    let bad = json!({ "dst": ADDRESS, "action": "reject" });
    let (status, error) = driver(daemon, "PUT", &path, Some(&port_document(Some(bad))));
    assert!((400..500).contains(&status), "{status} {error}");
    assert_eq!(owned(daemon, PORT_OWNER), second, "nothing changed");

    // Another owner's document leaves them alone.
    let other = "neutron-port-other";
    let other_document = json!({ "rules": [{ "dst": "10.0.0.6/32", "action": "drop" }] });
    driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{other}"),
        Some(&other_document),
    );
    assert_eq!(owned(daemon, PORT_OWNER), second);

    // A config sets the operator's rules only; a config rule with an
    // owner's id is refused.
    let config = "[filter]\ndefault = \"pass\"\n\n[[filter.rule]]\nid = 60000\nsrc = \"192.0.2.0/24\"\naction = \"drop\"\n";
    let (status, body) = daemon.post_config("/v1/config", config, "application/toml");
    assert_eq!(status, 200, "{body}");
    assert_eq!(owned(daemon, PORT_OWNER), second, "the config left them");
    let unowned: Vec<u64> = rules(daemon)
        .iter()
        .filter(|rule| rule["owner"].is_null())
        .filter_map(|rule| rule["id"].as_u64())
        .collect();
    assert_eq!(
        unowned,
        [60000],
        "the config's rules replaced the operator's"
    );
    let clash = format!(
        "[filter]\ndefault = \"pass\"\n\n[[filter.rule]]\nid = {}\nsrc = \"192.0.2.0/24\"\naction = \"drop\"\n",
        second[0].0
    );
    let (status, body) = daemon.post_config("/v1/config", &clash, "application/toml");
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains(PORT_OWNER), "{body}");
    assert_eq!(owned(daemon, PORT_OWNER), second);

    // Deleted with the owner; the rest stays.
    driver_ok(daemon, "DELETE", &path, None);
    assert!(owned(daemon, PORT_OWNER).is_empty());
    assert_eq!(owned(daemon, other).len(), 1);
    driver_ok(daemon, "DELETE", &format!("/v1/owners/{other}"), None);
    assert_eq!(rules(daemon).len(), 1, "the config's rule stays");
}
