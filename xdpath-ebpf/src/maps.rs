//! The maps. Names are the ones user space pins and opens; sizes come from
//! `xdpath_core` so both sides agree.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{
        lpm_trie::Key, Array, CpuMap, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray,
        ProgramArray, RingBuf, XskMap,
    },
};
use xdpath_core::abi;
use xdpath_core::filter::{
    AddressLimit, AddressLimitKey, BlockEntry, Bucket, BucketBound, BucketKey, FilterConfig,
    PrefixHashKey, PrefixLengths, RateLimit, Rule, RuleChain, BOUND_CELLS, DESTINATION_BUCKETS,
    LENGTHS_SLOTS, MAX_ADDRESS_LIMITS, MAX_BLOCKLIST, MAX_CHAINS, MAX_MANAGEMENT_PREFIXES,
    MAX_PREFIXES, MAX_RATE_LIMITS, MAX_RULES, MAX_TUNNEL_BLOCKLIST, SOURCE_BUCKETS,
};
use xdpath_core::lb::{
    Backend, Connection, ConnectionKey, LbConfig, LbCounter, NewFlowSlot, Vip, VipKey, VipSlot,
    MAX_ALLOW_PREFIXES, MAX_BACKENDS, MAX_CONNECTIONS, MAX_RINGS, MAX_RING_SIZE, MAX_VIPS,
    NEW_FLOW_ENTRIES, VIP_DROP_SLOTS,
};
use xdpath_core::observe::{
    CaptureConfig, RecordMeta, CAPTURE_BYTES, CAPTURE_RING_BYTES, SAMPLE_RING_BYTES,
};
use xdpath_core::{AttachMeta, Counter, FeatureWord, FlowKey, InterfaceConfig, COUNTER_SLOTS};

// ---- this interface's own maps

/// This interface's configuration: one entry, written by user space at
/// attach time and read only on the drop paths.
#[map]
pub static CONFIG: Array<InterfaceConfig> = Array::with_max_entries(1, 0);

/// How and when user space attached this instance. The program never reads
/// it: it lives here so that it is pinned, and removed, with the program.
#[map]
pub static META: Array<AttachMeta> = Array::with_max_entries(1, 0);

/// The features this instance's object knows and the id of the program
/// they describe, written by user space at attach and reload. The program
/// never reads it; a map of its own rather than a wider `META`, whose pin a
/// reload reuses: an older build reloading over a newer pin, or this build
/// over an older one, would meet a value size it does not expect.
#[map]
pub static FEATURES: Array<FeatureWord> = Array::with_max_entries(1, 0);

/// Packets and bytes per (action, reason), per CPU so that the data path
/// never contends on a cache line; user space sums the CPUs.
#[map]
pub static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Frames left before this interface's next sample, per CPU (see
/// `xdpath_core::observe::sample_step`).
#[map]
pub static SAMPLE_SKIP: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for the flow key, per CPU: the key lives in map memory
/// instead of the 512-byte stack (see `xdpath_core::parse::parse_into`).
/// Slot 0 is the frame's key; slot 1 a tunnelled frame's inner key
/// (`xdpath_core::tunnel`), written by the filter stage.
#[map]
pub static SCRATCH: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(2, 0);

/// Scratch space for a token bucket being started, one slot per CPU
/// (`xdpath_core::filter::charge_bucket`: built on the stack, its branches
/// made the verifier walk too many states).
#[map]
pub static BUCKET_SCRATCH: PerCpuArray<Bucket> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for trie lookup keys, one slot per CPU. `Key` is packed
/// (its address starts at byte 4); built on the stack, LLVM would store it
/// with unaligned 64-bit writes the verifier refuses there.
#[map]
pub static LPM_SCRATCH: PerCpuArray<Key<[u8; 16]>> = PerCpuArray::with_max_entries(1, 0);

/// The same for the tunnel blocklist's keys (a VNI then an address).
#[map]
pub static TUNNEL_LPM_SCRATCH: PerCpuArray<Key<[u8; 20]>> = PerCpuArray::with_max_entries(1, 0);

/// The later stages, reached by tail call: each is verified as its own
/// program.
#[map]
pub static STAGES: ProgramArray = ProgramArray::with_max_entries(abi::stage::SLOTS, 0);

// ---- filter maps, shared by every interface of a namespace

/// The global filter configuration (one entry). All zero: no filtering.
#[map]
pub static FILTER_CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);

/// Rule buffer 0: rules by index. The rule set is double-buffered so a whole
/// new set is written aside and goes live with one write of
/// `FilterConfig::active`.
#[map]
pub static RULES_0: Array<Rule> = Array::with_max_entries(MAX_RULES, 0);
/// Rule buffer 1: rules by index.
#[map]
pub static RULES_1: Array<Rule> = Array::with_max_entries(MAX_RULES, 0);

/// Buffer 0: chains (a prefix's rules, then those of covering prefixes).
#[map]
pub static CHAINS_0: Array<RuleChain> = Array::with_max_entries(MAX_CHAINS, 0);
/// Buffer 1: chains.
#[map]
pub static CHAINS_1: Array<RuleChain> = Array::with_max_entries(MAX_CHAINS, 0);

/// Buffer 0: (masked prefix, length, direction) → chain index. A hash
/// table probed once per prefix length present (see `PREFIX_LENGTHS_0`):
/// far cheaper than an LPM trie of the same prefixes. Entries are
/// allocated on insert.
#[map]
pub static PREFIXES_0: HashMap<PrefixHashKey, u32> =
    HashMap::with_max_entries(2 * MAX_PREFIXES, BPF_F_NO_PREALLOC);
/// Buffer 1: prefix → chain index.
#[map]
pub static PREFIXES_1: HashMap<PrefixHashKey, u32> =
    HashMap::with_max_entries(2 * MAX_PREFIXES, BPF_F_NO_PREALLOC);

/// Buffer 0: the prefix lengths present, per direction and address family
/// (slot `lengths_slot(direction, family)`), longest first.
#[map]
pub static PREFIX_LENGTHS_0: Array<PrefixLengths> = Array::with_max_entries(LENGTHS_SLOTS, 0);
/// Buffer 1: the prefix lengths present, per direction and family.
#[map]
pub static PREFIX_LENGTHS_1: Array<PrefixLengths> = Array::with_max_entries(LENGTHS_SLOTS, 0);

/// Hits per rule id, per CPU (512 KiB a CPU): the BPF target's `core` has
/// no atomic read-modify-write, and per-CPU slots need none.
#[map]
pub static RULE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES, 0);

/// Blocked prefixes with their expiry; the data path deletes expired ones
/// it meets.
#[map]
pub static BLOCKLIST: LpmTrie<[u8; 16], BlockEntry> = LpmTrie::with_max_entries(MAX_BLOCKLIST, 0);

/// Blocked inner source prefixes of tunnelled traffic, per VNI
/// (`xdpath_core::filter::TunnelPrefixKey`); expired ones deleted as in
/// `BLOCKLIST`.
#[map]
pub static TUNNEL_BLOCKLIST: LpmTrie<[u8; 20], BlockEntry> =
    LpmTrie::with_max_entries(MAX_TUNNEL_BLOCKLIST, 0);

/// The rate limits; `FilterConfig::rate_limits` of them are live.
#[map]
pub static RATE_LIMITS: Array<RateLimit> = Array::with_max_entries(MAX_RATE_LIMITS, 0);

/// Token buckets of per-source limits. LRU, so a flood of spoofed sources
/// recycles its own entries instead of failing inserts; what an evicted
/// bucket had spent is kept in `BUCKET_BOUNDS`.
#[map]
pub static SRC_BUCKETS: LruHashMap<BucketKey, Bucket> =
    LruHashMap::with_max_entries(SOURCE_BUCKETS, 0);

/// Token buckets of per-destination limits, apart from the source buckets
/// so a spoofed-source flood cannot evict them.
#[map]
pub static DST_BUCKETS: LruHashMap<BucketKey, Bucket> =
    LruHashMap::with_max_entries(DESTINATION_BUCKETS, 0);

/// Bounds on the buckets that outlive them, one sketch per limit slot
/// (`xdpath_core::filter::bounds`): an array, so no flood evicts them, and
/// a bucket evicted from its table starts again no fuller than it was.
#[map]
pub static BUCKET_BOUNDS: Array<BucketBound> = Array::with_max_entries(BOUND_CELLS, 0);

/// Drops per rate limit, per CPU.
#[map]
pub static LIMIT_DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RATE_LIMITS, 0);

/// The limits of one address each (`xdpath_core::filter::AddressLimit`:
/// rates, bucket and drops in the entry). Written only by user space, so
/// not preallocated: an empty table costs no memory.
#[map]
pub static ADDRESS_LIMITS: HashMap<AddressLimitKey, AddressLimit> =
    HashMap::with_max_entries(MAX_ADDRESS_LIMITS, BPF_F_NO_PREALLOC);

/// Reflection source ports: a 65,536-bit set, word `port / 64`.
#[map]
pub static REFLECTION_PORTS: Array<u64> = Array::with_max_entries(abi::PORT_SET_WORDS, 0);

/// Destinations that expect traffic from reflection ports (resolvers, NTP
/// clients): the amplification guard spares them.
#[map]
pub static REFLECTION_OK: LpmTrie<[u8; 16], u8> =
    LpmTrie::with_max_entries(MAX_MANAGEMENT_PREFIXES, 0);

/// Management source prefixes: never dropped by the filter.
#[map]
pub static MGMT_SOURCES: LpmTrie<[u8; 16], u8> =
    LpmTrie::with_max_entries(MAX_MANAGEMENT_PREFIXES, 0);

/// Management destination ports (TCP and UDP): never dropped by the
/// filter. A 65,536-bit set.
#[map]
pub static MGMT_PORTS: Array<u64> = Array::with_max_entries(abi::PORT_SET_WORDS, 0);

/// Destination ports that SYN-cookie mode protects (TCP): a 65,536-bit set.
#[map]
pub static SYNCOOKIE_PORTS: Array<u64> = Array::with_max_entries(abi::PORT_SET_WORDS, 0);

// ---- load-balancer maps, shared by every interface of a namespace

/// The balancer's settings (one entry). All zero: no balancing.
#[map]
pub static LB_CONFIG: Array<LbConfig> = Array::with_max_entries(1, 0);

/// VIPs by (address, port, protocol); port 0 is an all-ports VIP.
#[map]
pub static VIPS: HashMap<VipKey, Vip> = HashMap::with_max_entries(MAX_VIPS, 0);

/// VIPs by slot, for a connection-table hit to find its VIP from its
/// backend's `vip` without a hash lookup (`VipSlot`).
#[map]
pub static VIPS_BY_SLOT: Array<VipSlot> = Array::with_max_entries(MAX_VIPS, 0);

/// Maglev rings, `MAX_RING_SIZE` slots each, two per VIP: a new table is
/// written to the idle ring and goes live with one write of the VIP.
#[map]
pub static MAGLEV_RINGS: Array<u32> = Array::with_max_entries(MAX_RINGS * MAX_RING_SIZE, 0);

/// Backends by index; `generation` tells a slot's successive owners apart.
#[map]
pub static BACKENDS: Array<Backend> = Array::with_max_entries(MAX_BACKENDS, 0);

/// Flow → backend, so established flows keep their backend when the pool
/// changes. One shared LRU rather than one per CPU: a flow whose packets
/// arrive on several CPUs (no RSS on veth) keeps one backend. Bare SYNs
/// never write it (`NEW_FLOW_TABLE`), so a SYN flood cannot evict it.
#[map]
pub static CONNECTIONS: LruHashMap<ConnectionKey, Connection> =
    LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

/// Flow → backend of flows seen only as bare SYNs or in one datagram so far,
/// one slot a flow by hash (`xdpath_core::lb::NewFlowSlot`): a flow's next
/// frame that is not a bare SYN copies its entry into `CONNECTIONS`.
#[map]
pub static NEW_FLOW_TABLE: Array<NewFlowSlot> = Array::with_max_entries(NEW_FLOW_ENTRIES, 0);

/// Per-VIP packets, bytes and new flows, per CPU.
#[map]
pub static VIP_STATS: PerCpuArray<LbCounter> = PerCpuArray::with_max_entries(MAX_VIPS, 0);

/// Per-backend packets, bytes and new flows, per CPU.
#[map]
pub static BACKEND_STATS: PerCpuArray<LbCounter> = PerCpuArray::with_max_entries(MAX_BACKENDS, 0);

/// Frames to each VIP that were not forwarded, by reason
/// (`xdpath_core::lb::vip_drop_index`: `VIP_DROP_SLOTS` slots a VIP), per
/// CPU.
#[map]
pub static VIP_DROPS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_VIPS * VIP_DROP_SLOTS, 0);

/// The VIPs' allow lists: (VIP slot, family, source prefix) → 1, looked up
/// for a VIP with `VIP_ALLOW_LIST` only (`xdpath_core::lb::AllowKey`: the
/// 20 bytes after the bit count). Entries are allocated on insert.
#[map]
pub static VIP_ALLOW: LpmTrie<[u8; 20], u8> = LpmTrie::with_max_entries(MAX_ALLOW_PREFIXES, 0);

/// The sample rate of each VIP slot with `VIP_SAMPLED` (1 in N of its
/// frames; 0: none), looked up for such a VIP only.
#[map]
pub static VIP_SAMPLE_RATES: Array<u32> = Array::with_max_entries(MAX_VIPS, 0);

/// Connection-table hits (slot 0) and misses (slot 1), per CPU.
#[map]
pub static CONN_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// This host's addresses: IPIP and GUE to them are decapsulated.
#[map]
pub static LOCAL_ADDRESSES: HashMap<[u8; 16], u8> =
    HashMap::with_max_entries(abi::MAX_LOCAL_ADDRESSES, 0);

// ---- sampling and capture, shared by every interface of a namespace

/// A frame chosen for sampling or capture: its metadata, then its head.
#[repr(C, align(8))]
pub struct PacketRecord {
    pub meta: RecordMeta,
    pub data: [u8; CAPTURE_BYTES as usize],
}

/// This CPU's record of the frame in flight, filled at the entry and sent
/// at the exit (too big for the stack).
#[map]
pub static RECORD: PerCpuArray<PacketRecord> = PerCpuArray::with_max_entries(1, 0);

/// Samples for the exporters, top talkers and auto-mitigation: fixed-size
/// records of metadata and the frame's first `SAMPLE_BYTES`.
#[map]
pub static SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLE_RING_BYTES, 0);

/// Records for `xdpath capture`: metadata and up to `CAPTURE_BYTES`.
#[map]
pub static CAPTURE_RING: RingBuf = RingBuf::with_byte_size(CAPTURE_RING_BYTES, 0);

/// What `xdpath capture` wants (one entry). All zero: no capture.
#[map]
pub static CAPTURE: Array<CaptureConfig> = Array::with_max_entries(1, 0);

/// Records lost to a full ring, per CPU: slot `LOSS_SAMPLES` and
/// `LOSS_CAPTURE`.
#[map]
pub static OBSERVE_LOSS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

// ---- forwarding, shared by every interface of a namespace

/// Interfaces forwarding may send out of, by interface index (`xdpath
/// forward enable`): the forwarding stage redirects through this map,
/// which lets the kernel batch the transmits per device.
#[map]
pub static FORWARD_PORTS: DevMapHash = DevMapHash::with_max_entries(abi::MAX_FORWARD_PORTS, 0);

// ---- steering to CPUs, shared by every interface of a namespace

/// The CPUs frames are steered to, by CPU number; each entry's queue size
/// is set by `xdpath steer enable`.
#[map]
pub static CPU_MAP: CpuMap = CpuMap::with_max_entries(abi::MAX_STEER_CPUS, 0);

/// The steering list: slot 0 holds how many CPUs follow, slots 1..=n the
/// CPU numbers (a flow goes to slot 1 + hash % n).
#[map]
pub static STEER_CPUS: Array<u32> = Array::with_max_entries(abi::MAX_STEER_CPUS + 1, 0);

/// Frames steered to each CPU (by target CPU), per source CPU.
#[map]
pub static STEER_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(abi::MAX_STEER_CPUS, 0);

// ---- steering to AF_XDP sockets, shared by every interface of a namespace

/// AF_XDP sockets by receive queue (`xdpath::afxdp::SteeredReceiver`).
#[map]
pub static XSKS: XskMap = XskMap::with_max_entries(abi::MAX_XSK_QUEUES, 0);

/// The interface each `XSKS` socket is bound to, by queue (0: none): a
/// frame goes to a queue's socket only if it arrived on that interface
/// (the kernel drops frames redirected to another device's socket).
#[map]
pub static XSK_OWNERS: Array<u32> = Array::with_max_entries(abi::MAX_XSK_QUEUES, 0);

/// Flows for AF_XDP: `protocol << 16 | destination port` → 1
/// (`xdpath xsk add`).
#[map]
pub static STEER_XSK: HashMap<u32, u32> = HashMap::with_max_entries(abi::MAX_STEER_XSK_PORTS, 0);
