//! The API's request types: JSON bodies and query strings as the handlers
//! receive them (unknown fields refused), and the checks that need no
//! state. A library of their own so the fuzz targets (`fuzz/`) take them
//! apart exactly as the daemon does.

use serde::{Deserialize, Serialize};
/// The changes' requests are the library's, which the CLI parses into
/// too: one type per operation.
pub use xdpath::api::{
    BackendQuery, BackendWeight, HealthArgs, LbConfigArgs, LimitArgs, NewBlock, NewVip, OwnerState,
    PrefixQuery, RuleArgs, VipAllow, VipQuery,
};
use xdpath::observe::top::{Rank, TalkerKind};

/// `GET /v1/top` query: which lists, ranked how, how long.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopQuery {
    /// `sources`, `destinations` or `flows` (default: all three).
    pub kind: Option<String>,
    /// `packets` (default) or `bytes`.
    pub by: Option<String>,
    /// Entries per list, 1 to 1000 (default 10).
    pub limit: Option<usize>,
}

/// What a [`TopQuery`] asks for, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopChoice {
    /// The lists.
    pub kinds: Vec<TalkerKind>,
    /// The ranking.
    pub by: Rank,
    /// Entries per list.
    pub limit: usize,
}

impl TopQuery {
    /// The lists, ranking and length asked for; the message of an
    /// `invalid_query` error otherwise.
    pub fn choice(&self) -> Result<TopChoice, String> {
        let kinds = match self.kind.as_deref() {
            None => TalkerKind::ALL.to_vec(),
            Some("sources") => vec![TalkerKind::Sources],
            Some("destinations") => vec![TalkerKind::Destinations],
            Some("flows") => vec![TalkerKind::Flows],
            Some(other) => return Err(format!("kind {other:?}: sources, destinations or flows")),
        };
        let by = match self.by.as_deref() {
            None | Some("packets") => Rank::Packets,
            Some("bytes") => Rank::Bytes,
            Some(other) => return Err(format!("by {other:?}: packets or bytes")),
        };
        let limit = self.limit.unwrap_or(10);
        if !(1..=1000).contains(&limit) {
            return Err(format!("limit {limit}: from 1 to 1000"));
        }
        Ok(TopChoice { kinds, by, limit })
    }
}

/// `GET /v1/vips/table` query: the VIP, and whether to list every slot.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableQuery {
    /// The VIP.
    pub vip: String,
    /// List each slot's backend too (default false).
    pub slots: Option<bool>,
}

/// `?vip=` (optional).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsQuery {
    /// The VIP.
    pub vip: Option<String>,
}

/// `GET /v1/rules` query: only one owner's rules (optional).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RulesQuery {
    /// The owner (see `PUT /v1/owners/{owner}`).
    pub owner: Option<String>,
}

/// `GET /v1/ratelimits` query: only one owner's limits (optional).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsQuery {
    /// The owner (see `PUT /v1/owners/{owner}`).
    pub owner: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_queries_are_checked() {
        let query = |text: &str| serde_urlencoded::from_str::<TopQuery>(text);
        let all = query("").expect("empty").choice().expect("defaults");
        assert_eq!((all.kinds.len(), all.by, all.limit), (3, Rank::Packets, 10));
        let flows = query("kind=flows&by=bytes&limit=1000").expect("query");
        assert_eq!(
            flows.choice().expect("valid").kinds,
            vec![TalkerKind::Flows]
        );
        assert!(query("limit=0").expect("query").choice().is_err());
        assert!(query("kind=ports").expect("query").choice().is_err());
        assert!(query("limit=-1").is_err());
        assert!(query("other=1").is_err(), "unknown fields are refused");
    }

    #[test]
    fn a_rule_body_is_filter_add_arguments() {
        let args: RuleArgs =
            serde_json::from_str(r#"{"src":"192.0.2.0/24","action":"drop","override":true}"#)
                .expect("valid");
        assert_eq!(args.action.as_deref(), Some("drop"));
        assert!(args.override_management);
        assert!(!args.monitor);
        assert!(serde_json::from_str::<RuleArgs>(r#"{"action":"drop","port":1}"#).is_err());
        let missing = serde_json::from_str::<RuleArgs>(r#"{"src":"192.0.2.0/24"}"#);
        assert!(missing.is_err_and(|error| error.to_string().contains("missing field `action`")));
        let back = serde_json::to_value(&args).expect("serializes");
        assert_eq!(back["override"], true, "the CLI sends what the API reads");
    }

    #[test]
    fn an_owner_document_reuses_the_single_requests() {
        let document: OwnerState = serde_json::from_str(
            r#"{"vips":[{"vip":"203.0.113.10:80/tcp","allow":["10.0.0.0/8"]}],
                "backends":[{"vip":"203.0.113.10:80/tcp","address":"10.0.0.11","weight":2}],
                "health":[{"vip":"203.0.113.10:80/tcp","kind":"http","status":"200-204"}],
                "limits":[{"vip":"203.0.113.10:80/tcp","pps":"100"}]}"#,
        )
        .expect("valid");
        assert_eq!(document.backends[0].weight, 2);
        assert_eq!(document.health[0].interval, "2s", "defaults as the CLI's");
        assert_eq!(document.health[0].fall, 3);
        assert!(serde_json::from_str::<OwnerState>(r#"{"vips":[],"owner":"x"}"#).is_err());
        let empty: OwnerState = serde_json::from_str("{}").expect("everything optional");
        assert!(empty.vips.is_empty() && empty.limits.is_empty());
    }

    #[test]
    fn a_limit_body_is_ratelimit_add_arguments() {
        let args: LimitArgs = serde_json::from_str(r#"{"pps":"100","syn":true}"#).expect("valid");
        assert_eq!(args.per, "src", "per source unless asked");
        assert!(args.syn);
        assert!(serde_json::from_str::<LimitArgs>(r#"{"pps":"1","rate":2}"#).is_err());
    }

    /// Every field of a request body type is in its OpenAPI schema and
    /// the other way round, and both refuse unknown fields: the document
    /// cannot drift from the types the daemon reads.
    #[test]
    fn openapi_request_schemas_match_the_request_types() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json parses");
        let schemas = &document["components"]["schemas"];
        let check = |schema: &str, fields: serde_json::Value| {
            let properties: std::collections::BTreeSet<&String> = schemas[schema]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no schema {schema}"))
                .keys()
                .collect();
            let object = fields
                .as_object()
                .expect("a request serializes as an object");
            let fields: std::collections::BTreeSet<&String> = object.keys().collect();
            assert_eq!(properties, fields, "schema {schema} against its type");
            assert_eq!(schemas[schema]["additionalProperties"], false, "{schema}");
            for required in schemas[schema]["required"].as_array().into_iter().flatten() {
                let required = required.as_str().expect("a field name");
                assert!(
                    object.contains_key(required),
                    "{schema} requires {required}"
                );
            }
        };
        // Labels are left out when there are none: given one here.
        let labels = || std::collections::BTreeMap::from([("port_id".into(), "p".into())]);
        let rule = RuleArgs {
            labels: labels(),
            ..RuleArgs::default()
        };
        check("NewRule", serde_json::to_value(rule).expect("json"));
        let limit = LimitArgs {
            labels: labels(),
            ..LimitArgs::default()
        };
        check("NewLimit", serde_json::to_value(limit).expect("json"));
        check(
            "NewBlock",
            serde_json::to_value(NewBlock::default()).expect("json"),
        );
        check(
            "NewVip",
            serde_json::to_value(NewVip::default()).expect("json"),
        );
        check(
            "BackendWeight",
            serde_json::to_value(BackendWeight::default()).expect("json"),
        );
        check(
            "VipAllow",
            serde_json::to_value(VipAllow::default()).expect("json"),
        );
        check(
            "HealthArgs",
            serde_json::to_value(HealthArgs::default()).expect("json"),
        );
        check(
            "LbConfigArgs",
            serde_json::to_value(LbConfigArgs::default()).expect("json"),
        );
        check(
            "OwnerState",
            serde_json::to_value(OwnerState::default()).expect("json"),
        );
        assert!(serde_json::from_str::<RuleArgs>(r#"{"action":"drop","unknown":1}"#).is_err());
        assert!(serde_json::from_str::<NewBlock>(r#"{"prefix":"192.0.2.0/24","x":1}"#).is_err());
    }

    /// Each operation's body names the schema of its type: the document
    /// cannot drift from the types the handlers extract.
    #[test]
    fn openapi_operations_name_the_request_types() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json parses");
        let operation = |method: &str, path: &str| document["paths"][path][method].clone();
        let bodies = [
            ("post", "/v1/rules", "NewRule"),
            ("post", "/v1/ratelimits", "NewLimit"),
            ("post", "/v1/blocklist", "NewBlock"),
            ("post", "/v1/vips", "NewVip"),
            ("post", "/v1/backends", "BackendWeight"),
            ("put", "/v1/backends", "BackendWeight"),
            ("put", "/v1/vips", "NewVip"),
            ("put", "/v1/vips/allow", "VipAllow"),
            ("put", "/v1/vips/health", "HealthArgs"),
            ("put", "/v1/lb/config", "LbConfigArgs"),
            ("put", "/v1/owners/{owner}", "OwnerState"),
        ];
        for (method, path, schema) in bodies {
            let named = &operation(method, path)["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"];
            assert_eq!(
                named.as_str(),
                Some(format!("#/components/schemas/{schema}").as_str()),
                "{method} {path}"
            );
        }
    }

    /// Each query operation's parameters are exactly the fields of its
    /// query type (the other half of the check above).
    #[test]
    fn openapi_query_parameters_are_the_query_types() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json parses");
        let operation = |method: &str, path: &str| document["paths"][path][method].clone();
        let fields = |value: serde_json::Value| -> std::collections::BTreeSet<String> {
            value
                .as_object()
                .expect("a query serializes as an object")
                .keys()
                .cloned()
                .collect()
        };
        let queries = [
            (
                "delete",
                "/v1/blocklist",
                fields(serde_json::json!(PrefixQuery::default())),
            ),
            (
                "delete",
                "/v1/vips",
                fields(serde_json::json!(VipQuery::default())),
            ),
            (
                "get",
                "/v1/backends",
                fields(serde_json::json!(BackendsQuery::default())),
            ),
            (
                "get",
                "/v1/ratelimits",
                fields(serde_json::json!(LimitsQuery::default())),
            ),
            (
                "get",
                "/v1/rules",
                fields(serde_json::json!(RulesQuery::default())),
            ),
            (
                "delete",
                "/v1/backends",
                fields(serde_json::json!(BackendQuery::default())),
            ),
            (
                "get",
                "/v1/top",
                fields(serde_json::json!(TopQuery::default())),
            ),
            (
                "delete",
                "/v1/vips/health",
                fields(serde_json::json!(VipQuery::default())),
            ),
            (
                "get",
                "/v1/vips/table",
                fields(serde_json::json!(TableQuery::default())),
            ),
        ];
        for (method, path, expected) in queries {
            let parameters: std::collections::BTreeSet<String> = operation(method, path)
                ["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
                .iter()
                .filter(|parameter| parameter["in"] == "query")
                .filter_map(|parameter| parameter["name"].as_str().map(str::to_string))
                .collect();
            assert_eq!(parameters, expected, "{method} {path}");
        }
    }
}
