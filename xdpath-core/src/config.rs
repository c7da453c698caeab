//! Per-interface configuration, shared with user space as `#[repr(C)]`.

/// What to do with a frame the parser finds malformed.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MalformedPolicy {
    /// Hand it to the kernel stack, which makes its own checks (the
    /// default), while the filter holds nothing; once it holds anything,
    /// drop it (`pipeline::parse_stage`).
    #[default]
    Pass = 0,
    /// Drop it at XDP.
    Drop = 1,
}

impl MalformedPolicy {
    /// Decodes the byte stored in the config map; unknown values mean `Pass`
    /// so a corrupt entry can never start dropping traffic.
    #[inline(always)]
    pub const fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Drop,
            _ => Self::Pass,
        }
    }
}

/// The configuration of one attached interface (one entry, index 0, of the
/// program's config array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// A [`MalformedPolicy`] as a byte.
    pub malformed: u8,
    /// Non-zero: monitor mode. Every drop this interface would make is
    /// counted (as a pass with the drop's reason) and the frame passed.
    pub monitor: u8,
    /// Non-zero: decapsulate IPIP and GUE addressed to this host (a
    /// load balancer's backend).
    pub decap: u8,
    /// Non-zero: forward frames not for this host (FIB lookup, MAC
    /// rewrite, TTL, redirect).
    pub forward: u8,
    /// The GUE port to decapsulate, host order; 0: IPIP only.
    pub decap_gue_port: u16,
    /// Non-zero: frames passed to the stack are handed to a CPU of the
    /// namespace's steering list, by flow hash (software RSS).
    pub steer: u8,
    /// Reserved, zero.
    pub reserved_tail: u8,
    /// Sample 1 in this many frames (0: no sampling).
    pub sample_rate: u32,
    /// Reserved, zero.
    pub reserved_end: u32,
}

impl InterfaceConfig {
    /// A config with the given malformed-frame policy.
    pub const fn new(malformed: MalformedPolicy) -> Self {
        Self {
            malformed: malformed as u8,
            monitor: 0,
            decap: 0,
            forward: 0,
            decap_gue_port: 0,
            steer: 0,
            reserved_tail: 0,
            sample_rate: 0,
            reserved_end: 0,
        }
    }

    /// The same config sampling 1 in `rate` frames (0: none).
    pub const fn with_sample_rate(mut self, rate: u32) -> Self {
        self.sample_rate = rate;
        self
    }

    /// The same config in monitor mode (or not).
    pub const fn with_monitor(mut self, monitor: bool) -> Self {
        self.monitor = monitor as u8;
        self
    }

    /// The same config decapsulating (or not) IPIP, and GUE to `gue_port`
    /// (0: none).
    pub const fn with_decap(mut self, decap: bool, gue_port: u16) -> Self {
        self.decap = decap as u8;
        self.decap_gue_port = gue_port;
        self
    }

    /// The same config forwarding (or not).
    pub const fn with_forward(mut self, forward: bool) -> Self {
        self.forward = forward as u8;
        self
    }

    /// The malformed-frame policy.
    #[inline(always)]
    pub const fn malformed_policy(&self) -> MalformedPolicy {
        MalformedPolicy::from_u8(self.malformed)
    }
}

/// How a program was attached, kept beside it (one entry of the `META` map)
/// so that `xdpath status` can tell from the pins alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachMeta {
    /// Wall-clock time of the attach, nanoseconds since the Unix epoch.
    pub attached_at_ns: u64,
    /// The interface index at attach time.
    pub ifindex: u32,
    /// The XDP mode: 1 native, 2 generic, 3 offload.
    pub mode: u32,
}

/// The data-path features the object an interface runs knows, kept beside
/// it (one entry of the `FEATURES` map, written by the build that loaded
/// the object, which carries that object). A program attached by a build
/// older than this word has no `FEATURES` pin: it knows none of
/// [`crate::abi::feature`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureWord {
    /// [`crate::abi::feature`] bits.
    pub features: u64,
    /// The kernel id of the program the word describes: a word whose id is
    /// not the one the interface's link runs says nothing (an older build
    /// reloaded the interface and left the pin as it was).
    pub program_id: u32,
    /// Reserved, zero.
    pub reserved: u32,
}
