//! One round's two builds with the same state: a fresh kernel program
//! (`BPF_PROG_TEST_RUN`, every frame captured to its ring so each frame's
//! verdict, reason and match are read without a syscall) and native tables,
//! both installed by the control plane from one scenario.

use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use xdpath_core::abi;
use xdpath_core::lb::{LbCounter, VIP_DROP_SLOTS};
use xdpath_core::native::OperatorMap;
use xdpath_core::observe::{CaptureConfig, RecordMeta, CAPTURE_BYTES};
use xdpath_core::{pipeline, Action, Counter, FrameBuffer, NativeTables, Reason};

use super::restore::Snapshot;
use super::scenarios::{install_balancer, native_tables, Scenario, LOOPBACK_IFINDEX};
use super::DifferentialError;
use xdpath::control::apply::{install_fresh, FilterTarget};
use xdpath::control::kernel::{monotonic_now_ns, KernelMaps};
use xdpath::control::wall_now;
use xdpath::dataplane::LoadedProgram;

use crate::reuse::Reused;

/// `BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header.
pub const ETH_HLEN: usize = 14;

/// Capture every frame, whole.
const CAPTURE_ALL: CaptureConfig = CaptureConfig {
    enabled: 1,
    reason_set: 0,
    reason: 0,
    actions: 0,
    ifindex: 0,
    snap_len: CAPTURE_BYTES,
    reserved: 0,
};

/// What one build made of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The action code returned.
    pub code: u32,
    /// The capture record's metadata, arrival time zeroed.
    pub meta: Option<RecordMeta>,
    /// The bytes the capture record holds.
    pub captured: Vec<u8>,
    /// The frame as the build left it.
    pub output: Vec<u8>,
}

impl Seen {
    /// `action/reason` as the capture record says.
    pub fn verdict(&self) -> String {
        match &self.meta {
            Some(meta) => format!(
                "{}/{} (code {}, matched {:#x})",
                meta.action().map_or("?", Action::name),
                meta.reason().map_or("?", Reason::name),
                self.code,
                meta.matched
            ),
            None => format!("code {} with no capture record", self.code),
        }
    }
}

fn parse_record(record: Option<&[u8]>) -> (Option<RecordMeta>, Vec<u8>) {
    match record.and_then(RecordMeta::parse) {
        Some((mut meta, data)) => {
            meta.timestamp_ns = 0;
            (Some(meta), data.to_vec())
        }
        None => (None, Vec::new()),
    }
}

/// One frame through both builds.
#[derive(Clone, Debug)]
pub struct Ran {
    /// The native build's verdict.
    pub action: Action,
    /// The native build's reason.
    pub reason: Reason,
    /// What the kernel did differently, if anything.
    pub difference: Option<String>,
}

/// Counters and statistics that only grow, read at the start of a round.
#[derive(Clone, Debug, Default)]
struct Baseline {
    counters: Vec<Counter>,
    rule_hits: Vec<u64>,
    limit_drops: Vec<u64>,
    vips: Vec<[u64; 3]>,
    backends: Vec<[u64; 3]>,
    connections: [u64; 2],
    /// `VIP_DROPS` (slot, count), `VIP_DROP_SLOTS` slots per VIP of
    /// `vip_slots`.
    vip_drops: Vec<(u32, u64)>,
}

/// The kernel program and the native tables of a scenario, reset to the
/// scenario's state before each round.
pub struct Builds {
    program: Reused,
    maps: KernelMaps,
    ring: RingBuf<MapData>,
    tables: Snapshot,
    /// The native tables as set up, copied for each round.
    pristine: NativeTables,
    native: NativeTables,
    /// Frames too short for a test run go through these instead, so the
    /// round's tables count exactly what the kernel counted.
    short: NativeTables,
    baseline: Baseline,
    rule_ids: Vec<u32>,
    limits: u32,
    vip_slots: Vec<u32>,
    backend_slots: Vec<u32>,
}

impl Builds {
    /// A program as freshly loaded (pooled) and tables in the scenario's state.
    pub fn new(scenario: &Scenario) -> Result<Self, DifferentialError> {
        let failed = |step: &str, detail: String| DifferentialError::Setup {
            scenario: scenario.name,
            step: step.to_string(),
            detail,
        };
        let mut program = Reused::take(scenario.config)
            .map_err(|error| failed("load the program", error.to_string()))?;
        let mut maps = KernelMaps::of_program(&program)
            .map_err(|error| failed("open its maps", error.to_string()))?;
        let mut native =
            native_tables(scenario).map_err(|error| failed("install natively", error))?;
        let lo = |name: &str| (name == "lo").then_some(LOOPBACK_IFINDEX);
        install_fresh(&mut maps, &scenario.filter, &lo, wall_now())
            .map_err(|error| failed("install the filter in the kernel", error.to_string()))?;
        install_balancer(scenario, &maps, &mut native)
            .map_err(|error| failed("install the balancer", error))?;
        write_local_and_capture(&mut program, &scenario.local_addresses)
            .map_err(|(step, detail)| failed(step, detail))?;
        native.observer.capture = CAPTURE_ALL;
        let ring = program
            .ring_consumer(abi::map::CAPTURE_RING)
            .map_err(|error| failed("open the capture ring", error.to_string()))?;
        let tables = Snapshot::take(&mut program, &maps)
            .map_err(|error| failed("read its tables", error.to_string()))?;
        let lb = scenario.lb.as_ref();
        let mut builds = Self {
            program,
            maps,
            ring,
            tables,
            short: native.clone(),
            pristine: native.clone(),
            native,
            baseline: Baseline::default(),
            rule_ids: scenario.filter.rules.iter().map(|rule| rule.id).collect(),
            limits: scenario.filter.rate_limits.len() as u32,
            vip_slots: lb.map_or(Vec::new(), |lb| {
                lb.vips.iter().map(|(_, vip)| vip.index).collect()
            }),
            backend_slots: lb.map_or(Vec::new(), |lb| {
                lb.backends.iter().map(|(index, _)| *index).collect()
            }),
        };
        builds.baseline = builds.read_baseline()?;
        Ok(builds)
    }

    /// Back to the scenario's state: the kernel's tables restored, the
    /// native tables copied afresh, the counters' starting values read.
    pub fn reset(&mut self) -> Result<(), DifferentialError> {
        self.tables
            .restore(&self.maps)
            .map_err(|error| DifferentialError::Read {
                what: error.map.to_string(),
                detail: error.detail,
            })?;
        // A capture record left over (none should be) belongs to no frame.
        while self.ring.next().is_some() {}
        self.native = self.pristine.clone();
        self.native.set_now_ns(monotonic_now_ns());
        self.short = self.native.clone();
        self.baseline = self.read_baseline()?;
        Ok(())
    }

    fn read_baseline(&mut self) -> Result<Baseline, DifferentialError> {
        let counters = self
            .program
            .counters()
            .map_err(|error| DifferentialError::Read {
                what: abi::map::COUNTERS.into(),
                detail: error.to_string(),
            })?;
        let rule_hits = self
            .rule_ids
            .iter()
            .map(|id| self.maps.rule_hits(*id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read_error(abi::map::RULE_HITS, e.to_string()))?;
        let limit_drops = (0..self.limits)
            .map(|index| self.maps.limit_drops(index))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| read_error(abi::map::LIMIT_DROPS, e.to_string()))?;
        let ebpf = self.program.ebpf_mut();
        let vips = self
            .vip_slots
            .iter()
            .map(|slot| per_cpu_counter(ebpf, abi::map::VIP_STATS, *slot))
            .collect::<Result<Vec<_>, _>>()?;
        let backends = self
            .backend_slots
            .iter()
            .map(|slot| per_cpu_counter(ebpf, abi::map::BACKEND_STATS, *slot))
            .collect::<Result<Vec<_>, _>>()?;
        let connections = [
            per_cpu_u64(ebpf, abi::map::CONN_STATS, 0)?,
            per_cpu_u64(ebpf, abi::map::CONN_STATS, 1)?,
        ];
        let vip_drops = drop_slots(&self.vip_slots)
            .map(|index| Ok((index, per_cpu_u64(ebpf, abi::map::VIP_DROPS, index)?)))
            .collect::<Result<Vec<_>, DifferentialError>>()?;
        Ok(Baseline {
            counters,
            rule_hits,
            limit_drops,
            vips,
            backends,
            connections,
            vip_drops,
        })
    }

    /// The native tables, to plant a difference (the harness's own test).
    pub fn native_mut(&mut self) -> &mut NativeTables {
        &mut self.native
    }

    /// Runs `frame` through both builds; what differs, if anything.
    pub fn run(&mut self, frame: &[u8]) -> Ran {
        if frame.len() < ETH_HLEN {
            let verdict = pipeline::process_frame(&mut FrameBuffer::new(frame), &mut self.short);
            self.short.observer.captures.clear();
            let (action, reason) = (verdict.outcome.action, verdict.outcome.reason);
            let difference = (reason != Reason::TruncatedEthernet).then(|| {
                format!(
                    "a {}-byte frame is {}, not truncated-ethernet",
                    frame.len(),
                    reason.name()
                )
            });
            return Ran {
                action,
                reason,
                difference,
            };
        }
        let mut buffer = FrameBuffer::new(frame);
        let verdict = pipeline::process_frame(&mut buffer, &mut self.native);
        let (meta, captured) = parse_record(self.native.observer.captures.pop_front().as_deref());
        let native = Seen {
            code: verdict.outcome.action as u32,
            meta,
            captured,
            output: buffer.bytes().to_vec(),
        };
        let (action, reason) = (verdict.outcome.action, verdict.outcome.reason);
        let (code, output) = match self.program.test_run_output(frame) {
            Ok(result) => result,
            Err(error) => {
                let difference = Some(format!("the kernel's test run failed: {error}"));
                return Ran {
                    action,
                    reason,
                    difference,
                };
            }
        };
        let record = self.ring.next().map(|item| item.to_vec());
        let (meta, captured) = parse_record(record.as_deref());
        let kernel = Seen {
            code,
            meta,
            captured,
            output,
        };
        Ran {
            action,
            reason,
            difference: describe(&kernel, &native),
        }
    }

    /// After the round: what it added to the counters, rule hits, limit
    /// drops and the balancer's statistics must be the same in both builds.
    pub fn totals(&mut self) -> Result<Vec<String>, DifferentialError> {
        let before = self.baseline.clone();
        let after = self.read_baseline()?;
        let mut differences = Vec::new();
        let kernel: Vec<Counter> = after
            .counters
            .iter()
            .zip(&before.counters)
            .map(|(after, before)| Counter {
                packets: after.packets.wrapping_sub(before.packets),
                bytes: after.bytes.wrapping_sub(before.bytes),
            })
            .collect();
        if kernel.as_slice() != self.native.counters() {
            differences.push(counter_differences(&kernel, self.native.counters()));
        }
        for (index, id) in self.rule_ids.iter().enumerate() {
            let kernel = after.rule_hits[index].wrapping_sub(before.rule_hits[index]);
            let native = self.native.rule_hits.get(*id);
            if kernel != native {
                differences.push(format!("rule {id} hits: kernel {kernel}, native {native}"));
            }
        }
        for (index, (after, before)) in after
            .limit_drops
            .iter()
            .zip(&before.limit_drops)
            .enumerate()
        {
            let kernel = after.wrapping_sub(*before);
            let native = self.native.limit_drops.get(index).copied().unwrap_or(0);
            if kernel != native {
                differences.push(format!(
                    "rate limit {index} drops: kernel {kernel}, native {native}"
                ));
            }
        }
        let native_counter = |stats: &OperatorMap<u32, LbCounter>, slot: &u32| {
            let counter = stats.get(slot).copied().unwrap_or_default();
            [counter.packets, counter.bytes, counter.new_flows]
        };
        let grown = |after: &[u64; 3], before: &[u64; 3]| {
            [0, 1, 2].map(|at| after[at].wrapping_sub(before[at]))
        };
        for (index, slot) in self.vip_slots.iter().enumerate() {
            let kernel = grown(&after.vips[index], &before.vips[index]);
            let native = native_counter(&self.native.lb.vip_stats, slot);
            if kernel != native {
                differences.push(format!(
                    "VIP {slot} [packets, bytes, new flows]: kernel {kernel:?}, native {native:?}"
                ));
            }
        }
        for (index, slot) in self.backend_slots.iter().enumerate() {
            let kernel = grown(&after.backends[index], &before.backends[index]);
            let native = native_counter(&self.native.lb.backend_stats, slot);
            if kernel != native {
                differences.push(format!("backend {slot} [packets, bytes, new flows]: kernel {kernel:?}, native {native:?}"));
            }
        }
        for ((index, grown), (_, was)) in after.vip_drops.iter().zip(&before.vip_drops) {
            let kernel = grown.wrapping_sub(*was);
            let native = self.native.lb.vip_drops.get(index).copied().unwrap_or(0);
            if kernel != native {
                differences.push(format!(
                    "VIP drops slot {index}: kernel {kernel}, native {native}"
                ));
            }
        }
        for (slot, name) in ["hits", "misses"].into_iter().enumerate() {
            let kernel = after.connections[slot].wrapping_sub(before.connections[slot]);
            let native = self.native.lb.connection_stats[slot];
            if kernel != native {
                differences.push(format!(
                    "connection-table {name}: kernel {kernel}, native {native}"
                ));
            }
        }
        Ok(differences)
    }
}

fn read_error(what: &str, detail: String) -> DifferentialError {
    DifferentialError::Read {
        what: what.to_string(),
        detail,
    }
}

/// A per-CPU `u64` slot, summed.
/// The `VIP_DROPS` slots of these VIP slots.
fn drop_slots(vips: &[u32]) -> impl Iterator<Item = u32> + '_ {
    vips.iter()
        .flat_map(|slot| (0..VIP_DROP_SLOTS).map(move |offset| slot * VIP_DROP_SLOTS + offset))
}

fn per_cpu_u64(ebpf: &mut aya::Ebpf, name: &str, slot: u32) -> Result<u64, DifferentialError> {
    let map = ebpf
        .map(name)
        .ok_or_else(|| read_error(name, "no such map".into()))?;
    let array =
        PerCpuArray::<&MapData, u64>::try_from(map).map_err(|e| read_error(name, e.to_string()))?;
    let values = array
        .get(&slot, 0)
        .map_err(|e| read_error(name, e.to_string()))?;
    Ok(values
        .iter()
        .fold(0u64, |sum, value| sum.wrapping_add(*value)))
}

/// A per-CPU `LbCounter` (packets, bytes, new flows), summed.
fn per_cpu_counter(
    ebpf: &mut aya::Ebpf,
    name: &str,
    slot: u32,
) -> Result<[u64; 3], DifferentialError> {
    let map = ebpf
        .map(name)
        .ok_or_else(|| read_error(name, "no such map".into()))?;
    let array = PerCpuArray::<&MapData, [u64; 3]>::try_from(map)
        .map_err(|e| read_error(name, e.to_string()))?;
    let values = array
        .get(&slot, 0)
        .map_err(|e| read_error(name, e.to_string()))?;
    Ok(values.iter().fold([0; 3], |sum, cpu| {
        [0, 1, 2].map(|at| sum[at].wrapping_add(cpu[at]))
    }))
}

/// Writes the decapsulator's local addresses and turns capture of every
/// frame on; on failure, what was being done and why.
fn write_local_and_capture(
    program: &mut LoadedProgram,
    local_addresses: &[[u8; 16]],
) -> Result<(), (&'static str, String)> {
    let ebpf = program.ebpf_mut();
    let map = ebpf
        .map_mut(abi::map::LOCAL_ADDRESSES)
        .ok_or(("find LOCAL_ADDRESSES", String::new()))?;
    let mut local = BpfHashMap::<&mut MapData, [u8; 16], u8>::try_from(map)
        .map_err(|error| ("open LOCAL_ADDRESSES", error.to_string()))?;
    for address in local_addresses {
        local
            .insert(address, 1, 0)
            .map_err(|error| ("write LOCAL_ADDRESSES", error.to_string()))?;
    }
    let map = ebpf
        .map_mut(abi::map::CAPTURE)
        .ok_or(("find CAPTURE", String::new()))?;
    let mut capture = Array::<&mut MapData, [u8; 16]>::try_from(map)
        .map_err(|error| ("open CAPTURE", error.to_string()))?;
    capture
        .set(0, CAPTURE_ALL.to_bytes(), 0)
        .map_err(|error| ("write CAPTURE", error.to_string()))
}

/// What differs between the two builds' view of one frame.
fn describe(kernel: &Seen, native: &Seen) -> Option<String> {
    if kernel.code == Action::Aborted as u32 {
        return Some(format!("the kernel aborted; native {}", native.verdict()));
    }
    if kernel == native {
        return None;
    }
    let mut what = Vec::new();
    if kernel.code != native.code || kernel.meta != native.meta {
        what.push(format!(
            "kernel {}, native {}",
            kernel.verdict(),
            native.verdict()
        ));
    }
    what.extend(bytes_differ(
        "capture records",
        &kernel.captured,
        &native.captured,
    ));
    what.extend(bytes_differ(
        "output frames",
        &kernel.output,
        &native.output,
    ));
    Some(what.join("; "))
}

/// How the kernel's and the native build's `what` (bytes) differ, if
/// they do: both lengths and the first byte that differs.
fn bytes_differ(what: &str, kernel: &[u8], native: &[u8]) -> Option<String> {
    if kernel == native {
        return None;
    }
    let first = kernel
        .iter()
        .zip(native)
        .position(|(a, b)| a != b)
        .unwrap_or(kernel.len().min(native.len()));
    Some(format!(
        "{what} differ (kernel {} bytes, native {}; first difference at byte {first})",
        kernel.len(),
        native.len(),
    ))
}

fn counter_differences(kernel: &[Counter], native: &[Counter]) -> String {
    let slots: Vec<String> = kernel
        .iter()
        .zip(native)
        .enumerate()
        .filter(|(_, (kernel, native))| kernel != native)
        .map(|(slot, (kernel, native))| {
            let slots = xdpath_core::REASON_SLOTS as usize;
            let action = Action::from_u32((slot / slots) as u32).map_or("?", Action::name);
            let reason = Reason::from_u8((slot % slots) as u8).map_or("?", Reason::name);
            format!(
                "{action}/{reason}: kernel {} packets, native {}",
                kernel.packets, native.packets
            )
        })
        .collect();
    format!("counters differ: {}", slots.join("; "))
}
