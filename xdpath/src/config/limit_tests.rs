//! Config limits and the address table.

use super::merge::merge_filter;

use super::tests::parse;

const NOW: u64 = 1_000_000;

/// A config's limits of one address go to the address table; while a
/// program that does not read it is attached, among the general limits,
/// but for one the table holds already (an upgrade moves nothing an older
/// program enforces, nor back).
#[test]
fn a_configs_limits_of_one_address_go_where_every_program_reads_them() {
    use crate::control::state::LimitTable;
    let text = "\
[[filter.ratelimit]]
id = 1
pps = 100
per = \"dst\"
scope = \"203.0.113.7/32\"

[[filter.ratelimit]]
id = 2
pps = 100
per = \"dst\"
scope = \"203.0.113.8/32\"

[[filter.ratelimit]]
id = 3
pps = 100
";
    let config = parse(text).expect("valid");
    let tables = |state: &crate::control::state::FilterState| -> Vec<LimitTable> {
        state.rate_limits.iter().map(|limit| limit.table).collect()
    };
    let wanted = &config.filter;
    assert_eq!(
        tables(wanted),
        [
            LimitTable::Address,
            LimitTable::Address,
            LimitTable::General
        ]
    );
    let mut current = wanted.clone();
    current.rate_limits[1].table = LimitTable::General;
    assert_eq!(
        tables(&merge_filter(&current, wanted, NOW, true)),
        tables(wanted)
    );
    assert_eq!(
        tables(&merge_filter(&current, wanted, NOW, false)),
        [
            LimitTable::Address,
            LimitTable::General,
            LimitTable::General
        ]
    );
}
