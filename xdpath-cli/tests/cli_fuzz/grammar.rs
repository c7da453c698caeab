//! The grammar of the CLI fuzz: every subcommand with its positionals,
//! its options and the bounds that keep it short; what kind of value each
//! takes. [`super::generator`] draws the values.

/// What a value is.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Interface,
    Cidr,
    Port,
    PortList,
    Proto,
    TcpFlags,
    Action,
    Ttl,
    Confirm,
    Seconds,
    Interval,
    Iterations,
    Count,
    Id,
    OnOff,
    Fragment,
    Vip,
    Address,
    Mac,
    Rate,
    Cpus,
    RulesIn,
    ConfigIn,
    CaptureIn,
    Out,
    Mode,
    Malformed,
    Verdict,
    Reason,
    Collector,
    Health,
    Millis,
    Per,
    Encap,
    VipFlags,
    Switch,
    ExportProtocol,
    BadBenchCount,
    Word,
    /// A bound that is a flag alone (no value).
    Flag,
}

use Kind::*;

/// A subcommand: its words, positionals, options (with `None` for a
/// flag), and what is always appended to keep it bounded.
pub struct Spec {
    pub path: &'static [&'static str],
    pub positionals: &'static [Kind],
    pub options: &'static [(&'static str, Option<Kind>)],
    pub bound: &'static [(&'static str, Kind)],
}

const RULE_OPTIONS: &[(&str, Option<Kind>)] = &[
    ("--src", Some(Cidr)),
    ("--dst", Some(Cidr)),
    ("--proto", Some(Proto)),
    ("--dport", Some(Port)),
    ("--tcp-flags", Some(TcpFlags)),
    ("--action", Some(Action)),
    ("--iface", Some(Interface)),
    ("--monitor", None),
    ("--override", None),
];

const LIMIT_OPTIONS: &[(&str, Option<Kind>)] = &[
    ("--pps", Some(Count)),
    ("--burst", Some(Count)),
    ("--bps", Some(Count)),
    ("--burst-bytes", Some(Count)),
    ("--per", Some(Per)),
    ("--aggregate-v4", Some(Count)),
    ("--aggregate-v6", Some(Count)),
    ("--scope", Some(Cidr)),
    ("--proto", Some(Proto)),
    ("--syn", None),
    ("--monitor", None),
];

macro_rules! spec {
    ($path:expr, $positionals:expr, $options:expr) => {
        spec!($path, $positionals, $options, &[])
    };
    ($path:expr, $positionals:expr, $options:expr, $bound:expr) => {
        Spec {
            path: $path,
            positionals: $positionals,
            options: $options,
            bound: $bound,
        }
    };
}

/// Every subcommand of `xdpath`.
pub const SPECS: &[Spec] = &[
    spec!(
        &["attach"],
        &[Interface],
        &[
            ("--mode", Some(Mode)),
            ("--malformed", Some(Malformed)),
            ("--monitor", None),
            ("--force-empty", None)
        ]
    ),
    spec!(&["detach"], &[Interface], &[]),
    spec!(&["reload"], &[Interface], &[]),
    spec!(&["status"], &[], &[]),
    spec!(&["stats"], &[Interface], &[]),
    spec!(
        &["replay"],
        &[CaptureIn],
        &[
            ("--write-pass", Some(Out)),
            ("--malformed", Some(Malformed)),
            ("--rules", Some(RulesIn))
        ]
    ),
    spec!(
        &["run"],
        &[Interface],
        &[
            ("--userspace", None),
            ("--queues", Some(Count)),
            ("--malformed", Some(Malformed)),
            ("--monitor", None),
            ("--forward", None),
            ("--exception", Some(Word)),
            ("--zero-copy", None)
        ],
        &[("--duration", Seconds)]
    ),
    spec!(&["filter", "add"], &[], RULE_OPTIONS),
    spec!(&["filter", "del"], &[Id], &[]),
    spec!(&["filter", "list"], &[], &[]),
    spec!(&["filter", "flush"], &[], &[]),
    spec!(&["filter", "default"], &[Action], &[("--monitor", None)]),
    spec!(&["filter", "load"], &[RulesIn], &[("--override", None)]),
    spec!(&["block", "add"], &[Cidr], &[("--ttl", Some(Ttl))]),
    spec!(&["block", "del"], &[Cidr], &[]),
    spec!(&["block", "list"], &[], &[]),
    spec!(&["ratelimit", "add"], &[], LIMIT_OPTIONS),
    spec!(&["ratelimit", "del"], &[Id], &[]),
    spec!(&["ratelimit", "list"], &[], &[]),
    spec!(&["guard", "tcp-flags"], &[OnOff], &[]),
    spec!(
        &["guard", "amplification"],
        &[OnOff],
        &[("--ports", Some(PortList)), ("--expect", Some(Cidr))]
    ),
    spec!(
        &["guard", "fragments"],
        &[],
        &[("--v4", Some(Fragment)), ("--v6", Some(Fragment))]
    ),
    spec!(
        &["guard", "syn-cookies"],
        &[OnOff],
        &[("--ports", Some(PortList))]
    ),
    spec!(&["guard", "show"], &[], &[]),
    spec!(&["mgmt", "add"], &[Cidr], &[("--port", Some(Port))]),
    spec!(&["mgmt", "del"], &[Cidr], &[("--port", Some(Port))]),
    spec!(&["mgmt", "list"], &[], &[]),
    spec!(
        &["lb", "vip", "add"],
        &[Vip],
        &[
            ("--encap", Some(Encap)),
            ("--gue-port", Some(Port)),
            ("--flags", Some(VipFlags)),
            ("--ring-size", Some(Count))
        ]
    ),
    spec!(
        &["lb", "vip", "health"],
        &[Vip, Health],
        &[
            ("--port", Some(Port)),
            ("--path", Some(Word)),
            ("--status", Some(Count)),
            ("--interval", Some(Millis)),
            ("--timeout", Some(Millis)),
            ("--rise", Some(Count)),
            ("--fall", Some(Count))
        ]
    ),
    spec!(&["lb", "vip", "del"], &[Vip], &[]),
    spec!(&["lb", "vip", "list"], &[], &[]),
    spec!(
        &["lb", "backend", "add"],
        &[Vip, Address],
        &[("--weight", Some(Count))]
    ),
    spec!(&["lb", "backend", "del"], &[Vip, Address], &[]),
    spec!(
        &["lb", "backend", "set-weight"],
        &[Vip, Address, Count],
        &[]
    ),
    spec!(&["lb", "backend", "list"], &[Vip], &[]),
    spec!(
        &["lb", "config"],
        &[],
        &[
            ("--source-v4", Some(Cidr)),
            ("--source-v6", Some(Cidr)),
            ("--next-hop", Some(Mac)),
            ("--seed", Some(Count))
        ]
    ),
    spec!(&["lb", "stats"], &[], &[]),
    spec!(&["lb", "flush"], &[], &[]),
    spec!(
        &["decap"],
        &[Interface],
        &[
            ("--mode", Some(Mode)),
            ("--gue-port", Some(Port)),
            ("--refresh", None)
        ]
    ),
    spec!(&["forward"], &[Switch, Interface], &[]),
    spec!(
        &["steer"],
        &[Switch, Interface],
        &[("--cpus", Some(Cpus)), ("--queue-size", Some(Count))]
    ),
    spec!(
        &["xsk", "add"],
        &[],
        &[("--proto", Some(Proto)), ("--dport", Some(Port))]
    ),
    spec!(
        &["xsk", "del"],
        &[],
        &[("--proto", Some(Proto)), ("--dport", Some(Port))]
    ),
    spec!(&["xsk", "list"], &[], &[]),
    spec!(&["sample"], &[Interface, Rate], &[]),
    spec!(
        &["capture"],
        &[],
        &[
            ("--iface", Some(Interface)),
            ("--verdict", Some(Verdict)),
            ("--reason", Some(Reason)),
            ("--count", Some(Count)),
            ("--snaplen", Some(Count))
        ],
        &[("-w", Out), ("--duration", Seconds)]
    ),
    spec!(
        &["export"],
        &[ExportProtocol, Interface],
        &[
            ("--collector", Some(Collector)),
            ("--rate", Some(Rate)),
            ("--agent", Some(Address)),
            ("--sub-agent-id", Some(Count)),
            ("--counter-interval", Some(Seconds)),
            ("--observation-domain", Some(Count)),
            ("--active-timeout", Some(Seconds)),
            ("--idle-timeout", Some(Seconds)),
            ("--template-refresh", Some(Seconds))
        ],
        &[("--collector", Collector), ("--duration", Seconds)]
    ),
    spec!(
        &["top"],
        &[],
        &[
            ("--iface", Some(Interface)),
            ("--window", Some(Seconds)),
            ("--limit", Some(Count)),
            ("--bytes", None)
        ],
        &[("-n", Iterations), ("--interval", Interval)]
    ),
    spec!(
        &["bench"],
        &[],
        &[
            ("--repeat", Some(Count)),
            ("--peer", Some(RulesIn)),
            ("--object", Some(RulesIn)),
            ("--lb-flows", Some(Count)),
            ("--lb-rounds", Some(Count)),
            ("--no-lb", None),
            ("--no-observe", None)
        ],
        &[("--trials", BadBenchCount)]
    ),
    spec!(&["demo"], &[Word], &[]),
    spec!(&["plan"], &[], &[], &[("-f", ConfigIn)]),
    spec!(
        &["apply"],
        &[],
        &[("--confirm", Some(Confirm))],
        &[("-f", ConfigIn)]
    ),
    spec!(&["confirm"], &[], &[]),
    spec!(&["state", "check"], &[], &[("--repair", None)]),
    spec!(&["state", "repair"], &[], &[]),
    // Plain `gc` removes other namespaces' leftovers: outside the bed.
    spec!(&["state", "gc"], &[], &[], &[("--dry-run", Flag)]),
];

/// How many subcommands there are (the fuzz must reach each).
pub const COMMANDS: usize = SPECS.len();
