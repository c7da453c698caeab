//! The contract between the eBPF programs and user space, written once:
//! map names, tail-call slots, program names and the sizes both sides
//! must agree on.
//!
//! The eBPF crate declares each map as a `static` whose identifier *is*
//! the name here (aya-ebpf names a map after its static), and user space
//! opens maps only through these constants. `xdpath-cli/tests/abi.rs` checks
//! both directions: every map in each built object is listed here, every
//! name here is in its object, and no map name appears as a string literal
//! anywhere else in the tree.
//!
//! The shared `#[repr(C)]` types live beside the logic that reads them
//! (`filter::types`, `lb`, `observe`, `config`); user space views them as
//! bytes through `aya::Pod` newtypes in the `xdpath` crate.

/// Map names. Each is documented at its declaration in `xdpath-ebpf`.
pub mod map {
    #[doc = "`CONFIG`"]
    pub const CONFIG: &str = "CONFIG";
    #[doc = "`META`"]
    pub const META: &str = "META";
    #[doc = "`FEATURES`"]
    pub const FEATURES: &str = "FEATURES";
    #[doc = "`COUNTERS`"]
    pub const COUNTERS: &str = "COUNTERS";
    #[doc = "`SAMPLE_SKIP`"]
    pub const SAMPLE_SKIP: &str = "SAMPLE_SKIP";
    #[doc = "`SCRATCH`"]
    pub const SCRATCH: &str = "SCRATCH";
    #[doc = "`BUCKET_SCRATCH`"]
    pub const BUCKET_SCRATCH: &str = "BUCKET_SCRATCH";
    #[doc = "`LPM_SCRATCH`"]
    pub const LPM_SCRATCH: &str = "LPM_SCRATCH";
    #[doc = "`STAGES`"]
    pub const STAGES: &str = "STAGES";
    #[doc = "`FILTER_CONFIG`"]
    pub const FILTER_CONFIG: &str = "FILTER_CONFIG";
    #[doc = "`RULES_0`"]
    pub const RULES_0: &str = "RULES_0";
    #[doc = "`RULES_1`"]
    pub const RULES_1: &str = "RULES_1";
    #[doc = "`CHAINS_0`"]
    pub const CHAINS_0: &str = "CHAINS_0";
    #[doc = "`CHAINS_1`"]
    pub const CHAINS_1: &str = "CHAINS_1";
    #[doc = "`PREFIXES_0`"]
    pub const PREFIXES_0: &str = "PREFIXES_0";
    #[doc = "`PREFIXES_1`"]
    pub const PREFIXES_1: &str = "PREFIXES_1";
    #[doc = "`PREFIX_LENGTHS_0`"]
    pub const PREFIX_LENGTHS_0: &str = "PREFIX_LENGTHS_0";
    #[doc = "`PREFIX_LENGTHS_1`"]
    pub const PREFIX_LENGTHS_1: &str = "PREFIX_LENGTHS_1";
    #[doc = "`RULE_HITS`"]
    pub const RULE_HITS: &str = "RULE_HITS";
    #[doc = "`BLOCKLIST`"]
    pub const BLOCKLIST: &str = "BLOCKLIST";
    #[doc = "`TUNNEL_BLOCKLIST`"]
    pub const TUNNEL_BLOCKLIST: &str = "TUNNEL_BLOCKLIST";
    #[doc = "`TUNNEL_LPM_SCRATCH`"]
    pub const TUNNEL_LPM_SCRATCH: &str = "TUNNEL_LPM_SCRATCH";
    #[doc = "`RATE_LIMITS`"]
    pub const RATE_LIMITS: &str = "RATE_LIMITS";
    #[doc = "`SRC_BUCKETS`"]
    pub const SRC_BUCKETS: &str = "SRC_BUCKETS";
    #[doc = "`DST_BUCKETS`"]
    pub const DST_BUCKETS: &str = "DST_BUCKETS";
    #[doc = "`BUCKET_BOUNDS`"]
    pub const BUCKET_BOUNDS: &str = "BUCKET_BOUNDS";
    #[doc = "`LIMIT_DROPS`"]
    pub const LIMIT_DROPS: &str = "LIMIT_DROPS";
    #[doc = "`ADDRESS_LIMITS`"]
    pub const ADDRESS_LIMITS: &str = "ADDRESS_LIMITS";
    #[doc = "`REFLECTION_PORTS`"]
    pub const REFLECTION_PORTS: &str = "REFLECTION_PORTS";
    #[doc = "`REFLECTION_OK`"]
    pub const REFLECTION_OK: &str = "REFLECTION_OK";
    #[doc = "`MGMT_SOURCES`"]
    pub const MGMT_SOURCES: &str = "MGMT_SOURCES";
    #[doc = "`MGMT_PORTS`"]
    pub const MGMT_PORTS: &str = "MGMT_PORTS";
    #[doc = "`SYNCOOKIE_PORTS`"]
    pub const SYNCOOKIE_PORTS: &str = "SYNCOOKIE_PORTS";
    #[doc = "`LB_CONFIG`"]
    pub const LB_CONFIG: &str = "LB_CONFIG";
    #[doc = "`VIPS`"]
    pub const VIPS: &str = "VIPS";
    #[doc = "`VIPS_BY_SLOT`"]
    pub const VIPS_BY_SLOT: &str = "VIPS_BY_SLOT";
    #[doc = "`MAGLEV_RINGS`"]
    pub const MAGLEV_RINGS: &str = "MAGLEV_RINGS";
    #[doc = "`BACKENDS`"]
    pub const BACKENDS: &str = "BACKENDS";
    #[doc = "`CONNECTIONS`"]
    pub const CONNECTIONS: &str = "CONNECTIONS";
    #[doc = "`NEW_FLOW_TABLE`"]
    pub const NEW_FLOW_TABLE: &str = "NEW_FLOW_TABLE";
    #[doc = "`VIP_STATS`"]
    pub const VIP_STATS: &str = "VIP_STATS";
    #[doc = "`BACKEND_STATS`"]
    pub const BACKEND_STATS: &str = "BACKEND_STATS";
    #[doc = "`VIP_DROPS`"]
    pub const VIP_DROPS: &str = "VIP_DROPS";
    #[doc = "`VIP_ALLOW`"]
    pub const VIP_ALLOW: &str = "VIP_ALLOW";
    #[doc = "`VIP_SAMPLE_RATES`"]
    pub const VIP_SAMPLE_RATES: &str = "VIP_SAMPLE_RATES";
    #[doc = "`CONN_STATS`"]
    pub const CONN_STATS: &str = "CONN_STATS";
    #[doc = "`LOCAL_ADDRESSES`"]
    pub const LOCAL_ADDRESSES: &str = "LOCAL_ADDRESSES";
    #[doc = "`RECORD`"]
    pub const RECORD: &str = "RECORD";
    #[doc = "`SAMPLES`"]
    pub const SAMPLES: &str = "SAMPLES";
    #[doc = "`CAPTURE_RING`"]
    pub const CAPTURE_RING: &str = "CAPTURE_RING";
    #[doc = "`CAPTURE`"]
    pub const CAPTURE: &str = "CAPTURE";
    #[doc = "`OBSERVE_LOSS`"]
    pub const OBSERVE_LOSS: &str = "OBSERVE_LOSS";
    #[doc = "`FORWARD_PORTS`"]
    pub const FORWARD_PORTS: &str = "FORWARD_PORTS";
    #[doc = "`CPU_MAP`"]
    pub const CPU_MAP: &str = "CPU_MAP";
    #[doc = "`STEER_CPUS`"]
    pub const STEER_CPUS: &str = "STEER_CPUS";
    #[doc = "`STEER_STATS`"]
    pub const STEER_STATS: &str = "STEER_STATS";
    #[doc = "`XSKS`"]
    pub const XSKS: &str = "XSKS";
    #[doc = "`XSK_OWNERS`"]
    pub const XSK_OWNERS: &str = "XSK_OWNERS";
    #[doc = "`STEER_XSK`"]
    pub const STEER_XSK: &str = "STEER_XSK";
    #[doc = "`COOKIE_SCRATCH`"]
    pub const COOKIE_SCRATCH: &str = "COOKIE_SCRATCH";
    #[doc = "`TOO_BIG_SCRATCH`"]
    pub const TOO_BIG_SCRATCH: &str = "TOO_BIG_SCRATCH";
    #[doc = "`LIMITS_HANDOVER`"]
    pub const LIMITS_HANDOVER: &str = "LIMITS_HANDOVER";
    #[doc = "`SYNCOOKIE_PASSED`"]
    pub const SYNCOOKIE_PASSED: &str = "SYNCOOKIE_PASSED";
    #[doc = "`XSK_FLAGS`"]
    pub const XSK_FLAGS: &str = "XSK_FLAGS";
    #[doc = "`REDIRECT_TO`"]
    pub const REDIRECT_TO: &str = "REDIRECT_TO";
    #[doc = "`FLOOD_PLAN`"]
    pub const FLOOD_PLAN: &str = "FLOOD_PLAN";
    #[doc = "`FLOOD_SENT`"]
    pub const FLOOD_SENT: &str = "FLOOD_SENT";
    #[doc = "`REFLB_VIPS`"]
    pub const REFLB_VIPS: &str = "REFLB_VIPS";
    #[doc = "`REFLB_LRU`"]
    pub const REFLB_LRU: &str = "REFLB_LRU";
    #[doc = "`REFLB_RING`"]
    pub const REFLB_RING: &str = "REFLB_RING";
    #[doc = "`REFLB_REALS`"]
    pub const REFLB_REALS: &str = "REFLB_REALS";
    #[doc = "`REFLB_CTL`"]
    pub const REFLB_CTL: &str = "REFLB_CTL";
    #[doc = "`REFLB_STATS`"]
    pub const REFLB_STATS: &str = "REFLB_STATS";
    #[doc = "`REFLB_REAL_STATS`"]
    pub const REFLB_REAL_STATS: &str = "REFLB_REAL_STATS";
}

/// Every map of the main object (`xdpath.bpf.o`): the shared ones and the
/// interface's own.
pub const MAIN_OBJECT_MAPS: [&str; 63] = concat(SHARED_MAPS, INTERFACE_MAPS);

/// The main object's maps each interface has for itself: its config,
/// counters, attach record and feature word, its tail-call table, the
/// per-CPU scratch slots, the sampling countdown and record.
pub const INTERFACE_MAPS: [&str; 15] = [
    map::CONFIG,
    map::META,
    map::FEATURES,
    map::COUNTERS,
    map::SAMPLE_SKIP,
    map::SCRATCH,
    map::BUCKET_SCRATCH,
    map::LPM_SCRATCH,
    map::TUNNEL_LPM_SCRATCH,
    map::STAGES,
    map::RECORD,
    map::COOKIE_SCRATCH,
    map::TOO_BIG_SCRATCH,
    map::SYNCOOKIE_PASSED,
    map::LIMITS_HANDOVER,
];

/// `first` then `second`; `N` must be their lengths' sum (checked when
/// the constant is evaluated).
const fn concat<const A: usize, const B: usize, const N: usize>(
    first: [&'static str; A],
    second: [&'static str; B],
) -> [&'static str; N] {
    assert!(A + B == N, "the lengths do not add up");
    let mut out = [""; N];
    let mut index = 0;
    while index < A {
        out[index] = first[index];
        index += 1;
    }
    while index < N {
        out[index] = second[index - A];
        index += 1;
    }
    out
}

/// The maps every interface of a namespace shares (the filter's, the
/// balancer's, the sample and capture rings, forwarding and steering),
/// pinned once in the namespace's `:shared` directory.
pub const SHARED_MAPS: [&str; 48] = [
    map::FILTER_CONFIG,
    map::RULES_0,
    map::RULES_1,
    map::CHAINS_0,
    map::CHAINS_1,
    map::PREFIXES_0,
    map::PREFIXES_1,
    map::PREFIX_LENGTHS_0,
    map::PREFIX_LENGTHS_1,
    map::RULE_HITS,
    map::BLOCKLIST,
    map::TUNNEL_BLOCKLIST,
    map::RATE_LIMITS,
    map::SRC_BUCKETS,
    map::DST_BUCKETS,
    map::BUCKET_BOUNDS,
    map::LIMIT_DROPS,
    map::ADDRESS_LIMITS,
    map::REFLECTION_PORTS,
    map::REFLECTION_OK,
    map::MGMT_SOURCES,
    map::MGMT_PORTS,
    map::SYNCOOKIE_PORTS,
    map::LB_CONFIG,
    map::VIPS,
    map::VIPS_BY_SLOT,
    map::MAGLEV_RINGS,
    map::BACKENDS,
    map::CONNECTIONS,
    map::NEW_FLOW_TABLE,
    map::VIP_STATS,
    map::BACKEND_STATS,
    map::VIP_DROPS,
    map::VIP_ALLOW,
    map::VIP_SAMPLE_RATES,
    map::CONN_STATS,
    map::LOCAL_ADDRESSES,
    map::SAMPLES,
    map::CAPTURE_RING,
    map::CAPTURE,
    map::OBSERVE_LOSS,
    map::FORWARD_PORTS,
    map::CPU_MAP,
    map::STEER_CPUS,
    map::STEER_STATS,
    map::XSKS,
    map::XSK_OWNERS,
    map::STEER_XSK,
];

/// Shared maps earlier builds pinned that this one no longer uses: unpinned
/// once this build has created its own shared maps (a program still
/// running that uses one keeps it alive until it is reloaded).
/// `NEW_CONNECTIONS`: the new-flow table as an LRU hash, now
/// `NEW_FLOW_TABLE`.
pub const RETIRED_SHARED_MAPS: [&str; 1] = ["NEW_CONNECTIONS"];

/// The interface's own pinned maps that a reload hands to the new program:
/// its config, its counters, and the mode and time of the attach.
pub const INTERFACE_REUSED_MAPS: [&str; 3] = [map::CONFIG, map::COUNTERS, map::META];

/// The data-path features a control-plane entry can need that a program
/// loaded by an older build does not know, one bit each (see
/// [`crate::FeatureWord`]). An older program reads the fields they use as
/// zero or ignores them, so it would silently not enforce the entry: the
/// control plane refuses such an entry while a program without the bit is
/// attached, and `xdpath state check` reports the ones already there.
///
/// A bit is never reused or removed; a new feature of the same kind takes
/// the next one, and [`feature::ALL`] grows with it.
pub mod feature {
    /// Rules and rate limits by VNI (`Rule::tunnel`, `RateLimit::tunnel`,
    /// `FILTER_TUNNELS`, `FilterConfig::tunnel_limits`).
    pub const TUNNELS: u64 = 1 << 0;
    /// Blocklist entries by VNI (`TUNNEL_BLOCKLIST`,
    /// `FILTER_TUNNEL_BLOCKLIST`).
    pub const TUNNEL_BLOCKLIST: u64 = 1 << 1;
    /// Rules by ICMP type and code (`RULE_ICMP_TYPE`).
    pub const ICMP_TYPE: u64 = 1 << 2;
    /// The rule action admit (`RULE_ADMIT`).
    pub const ADMIT: u64 = 1 << 3;
    /// Rate limits of the frames to one VIP (`LIMIT_SCOPE_DESTINATION`).
    pub const LIMIT_TO: u64 = 1 << 4;
    /// Per-VIP allow lists (`VIP_ALLOW`).
    pub const VIP_ALLOW: u64 = 1 << 5;
    /// Per-VIP sampling rates (`VIP_SAMPLE_RATES`).
    pub const VIP_SAMPLE_RATE: u64 = 1 << 6;
    /// Frames the filter cannot judge are dropped: a frame the parser
    /// refuses while the filter holds anything, a tunnel around a refused
    /// inner frame, and IPv6 frames from or to IPv4-mapped addresses are
    /// refused by the parser (`Reason::Ipv6MappedAddress`). Needed by any
    /// filter or balancer state: an older program passes such frames.
    pub const UNJUDGED_DROPPED: u64 = 1 << 7;
    /// A frame `xdpath decap` strips is judged by the filter on its inner
    /// headers too (`pipeline::judge_decapsulated`). Needed by any filter
    /// state: an older program passes the inner packet unjudged.
    pub const DECAPSULATED_JUDGED: u64 = 1 << 8;
    /// A frame to a VIP too big for the path once encapsulated is answered
    /// with ICMP too-big (`Reason::LbTooBig`, `LbConfig::mtu`). Needed by
    /// any balancer state: an older program sends it on, and the device
    /// drops it (a path-MTU black hole).
    pub const TOO_BIG_ANSWERED: u64 = 1 << 9;
    /// Rate limits of one address each in a table of their own
    /// (`ADDRESS_LIMITS`, `FILTER_ADDRESS_LIMITS_*`): an older program
    /// does not look there, and the address goes unlimited.
    pub const ADDRESS_LIMITS: u64 = 1 << 10;
    /// Every feature this build's objects know.
    pub const ALL: u64 = TUNNELS
        | TUNNEL_BLOCKLIST
        | ICMP_TYPE
        | ADMIT
        | LIMIT_TO
        | VIP_ALLOW
        | VIP_SAMPLE_RATE
        | UNJUDGED_DROPPED
        | DECAPSULATED_JUDGED
        | TOO_BIG_ANSWERED
        | ADDRESS_LIMITS;
}

/// Every map of the AF_XDP redirect object (`xdpath-xsk.bpf.o`).
pub const XSK_OBJECT_MAPS: [&str; 2] = [map::XSKS, map::XSK_FLAGS];
/// Every map of the redirect benchmark's object (`xdpath-redirect.bpf.o`).
pub const REDIRECT_OBJECT_MAPS: [&str; 1] = [map::REDIRECT_TO];
/// Every map of the flood generator's object (`xdpath-flood.bpf.o`).
pub const FLOOD_OBJECT_MAPS: [&str; 2] = [map::FLOOD_PLAN, map::FLOOD_SENT];
/// Every map of the reference balancer's object (`xdpath-reflb.bpf.o`).
pub const REFLB_OBJECT_MAPS: [&str; 7] = [
    map::REFLB_VIPS,
    map::REFLB_LRU,
    map::REFLB_RING,
    map::REFLB_REALS,
    map::REFLB_CTL,
    map::REFLB_STATS,
    map::REFLB_REAL_STATS,
];

/// Slots of the `STAGES` tail-call table: each later stage is its own
/// program, verified on its own (the whole pipeline as one program passes
/// the verifier's 1M-instruction limit).
pub mod stage {
    /// The filter stage.
    pub const FILTER: u32 = 0;
    /// The SYN-cookie stage (kernel only; reached from the filter stage).
    pub const SYNCOOKIE: u32 = 1;
    /// The balancing stage (decapsulation on a backend, the load balancer).
    pub const BALANCE: u32 = 2;
    /// The forwarding stage (FIB lookup, rewrite, redirect).
    pub const FORWARD: u32 = 3;
    /// The steering stage (to a CPU or an AF_XDP socket).
    pub const STEER: u32 = 4;
    /// Stages with a slot (of `xdpath_core::stages::Stage`).
    pub const COUNT: u32 = 5;
    /// Not a stage of the walk: where the balancing stage hands a frame
    /// it decapsulated to be judged on its inner headers (the filter's
    /// work, which does not fit in the balancing program).
    pub const DECAPSULATED: u32 = COUNT;
    /// Not a stage of the walk either: where the balancing stage hands a
    /// frame too big for the path to its backend, to be answered with
    /// ICMP (the rewrite, kept out of the balancing program).
    pub const TOO_BIG: u32 = COUNT + 1;
    /// Not a stage of the walk either: where the filter stage hands a
    /// frame to its rate limits (a program of their own, so the filter
    /// program stays within the verifier's budget).
    pub const LIMITS: u32 = COUNT + 2;
    /// Slots in the table.
    pub const SLOTS: u32 = COUNT + 3;
}

/// Names of the XDP entry points (the `#[xdp]` functions).
pub mod program {
    /// The main object's entry point.
    pub const XDPATH: &str = "xdpath";
    /// The filter stage (tail call).
    pub const FILTER: &str = "xdpath_filter";
    /// The SYN-cookie stage (tail call from the filter stage).
    pub const SYNCOOKIE: &str = "xdpath_syncookie";
    /// The balancing stage (tail call).
    pub const BALANCE: &str = "xdpath_balance";
    /// The forwarding stage (tail call).
    pub const FORWARD: &str = "xdpath_forward";
    /// The steering stage (tail call).
    pub const STEER: &str = "xdpath_steer";
    /// The judging of a decapsulated frame's inner headers (tail call
    /// from the balancing stage).
    pub const DECAPSULATED: &str = "xdpath_decapsulated";
    /// The ICMP answer to a frame too big for the balancer's path (tail
    /// call from the balancing stage).
    pub const TOO_BIG: &str = "xdpath_too_big";
    /// The filter's rate limits (tail call from the filter stage).
    pub const LIMITS: &str = "xdpath_limits";
    /// The empty program, `return XDP_PASS` (benchmarks' floor).
    pub const EMPTY: &str = "xdpath_empty";
    /// The AF_XDP redirect program.
    pub const XSK: &str = "xdpath_xsk";
    /// The minimal redirect program (the forwarding benchmark's peer).
    pub const REDIRECT: &str = "xdpath_redirect";
    /// The flood generator of the end-to-end tests.
    pub const FLOOD: &str = "xdpath_flood";
    /// The reference balancer (the balancer benchmark's peer).
    pub const REFLB: &str = "xdpath_reflb";
}

/// Most CPUs a namespace steers to (`CPU_MAP`, `STEER_STATS`; `STEER_CPUS`
/// has one more slot, the count).
pub const MAX_STEER_CPUS: u32 = 64;
/// Receive queues with an AF_XDP socket slot (`XSKS`, `XSK_OWNERS`).
pub const MAX_XSK_QUEUES: u32 = 64;
/// Words of each port set (`REFLECTION_PORTS`, `MGMT_PORTS`,
/// `SYNCOOKIE_PORTS`): a bitmap of 1024 × 64 bits, one per port.
pub const PORT_SET_WORDS: u32 = 1024;
/// Ports steered to AF_XDP sockets (`STEER_XSK`).
pub const MAX_STEER_XSK_PORTS: u32 = 1024;
/// Slots of `SYNCOOKIE_PASSED` (valid cookies by destination port).
pub const SYNCOOKIE_PASSED_SLOTS: u32 = 65_536;
/// Interfaces forwarding may send out of (`FORWARD_PORTS`).
pub const MAX_FORWARD_PORTS: u32 = 256;
/// Local addresses the balancer knows (`LOCAL_ADDRESSES`).
pub const MAX_LOCAL_ADDRESSES: u32 = 256;
/// The flag of `XSK_FLAGS` that keeps ARP and IPv6 neighbour discovery in
/// the kernel.
pub const XSK_NEIGHBOURS_TO_STACK: u32 = 1;
