//! Sampling and capture: which frames are copied to user space, and the
//! record that carries them there.
//!
//! A frame is chosen at the entry of the pipeline, while its bytes are
//! still those that arrived (the balancing and SYN-cookie stages rewrite
//! frames), and its record is completed and sent at the pipeline's single
//! exit, once the verdict is known. Two independent reasons to copy a
//! frame exist:
//!
//! - **sampling**: 1 in N frames of an interface, at random, with the first
//!   [`SAMPLE_BYTES`] bytes (sFlow, IPFIX, top talkers, auto-mitigation);
//! - **capture**: every frame matching a [`CaptureConfig`] (verdict, reason,
//!   interface), with up to [`CAPTURE_BYTES`] bytes (`xdpath capture`).
//!
//! Records are a [`RecordMeta`] followed by `captured_len` frame bytes.

use crate::stats::{Action, Reason};

/// Frame bytes a sample carries (at most).
pub const SAMPLE_BYTES: u32 = 128;

/// Frame bytes a capture record carries (at most): a full standard frame.
pub const CAPTURE_BYTES: u32 = 1536;

/// Size of a record's metadata, in bytes.
pub const RECORD_META_LEN: usize = core::mem::size_of::<RecordMeta>();

/// `RecordMeta::flags`: the frame was chosen by 1-in-N sampling.
pub const RECORD_SAMPLED: u8 = 1;
/// `RecordMeta::flags`: the frame matched the capture filter.
pub const RECORD_CAPTURED: u8 = 2;

/// `RecordMeta::matched` kind (top 4 bits): nothing matched.
pub const MATCHED_NONE: u32 = 0;
/// `RecordMeta::matched` kind: a filter rule (the low 28 bits: its id).
pub const MATCHED_RULE: u32 = 1 << 28;
/// `RecordMeta::matched` kind: a VIP (the low 28 bits: its index).
pub const MATCHED_VIP: u32 = 2 << 28;
/// Mask of the id in `RecordMeta::matched`.
pub const MATCHED_ID_MASK: u32 = (1 << 28) - 1;

/// Ring buffer size of the sample ring, bytes (a power of two).
pub const SAMPLE_RING_BYTES: u32 = 4 << 20;
/// Ring buffer size of the capture ring, bytes (a power of two).
pub const CAPTURE_RING_BYTES: u32 = 8 << 20;

/// `LOSS` slot counting samples the sample ring had no room for.
pub const LOSS_SAMPLES: u32 = 0;
/// `LOSS` slot counting capture records the capture ring had no room for.
pub const LOSS_CAPTURE: u32 = 1;

/// The metadata at the head of every record. Host byte order throughout.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// When the frame arrived: CLOCK_MONOTONIC nanoseconds in the kernel.
    pub timestamp_ns: u64,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// Its length on arrival, bytes.
    pub frame_len: u32,
    /// What matched it: a `MATCHED_*` kind ORed with an id.
    pub matched: u32,
    /// The interface's 1-in-N sampling rate when it was chosen (0: not
    /// sampled, only captured).
    pub sample_rate: u32,
    /// Frame bytes following this header.
    pub captured_len: u16,
    /// The final verdict, an [`Action`] code.
    pub action: u8,
    /// Why, a [`Reason`] code.
    pub reason: u8,
    /// `RECORD_SAMPLED` and/or `RECORD_CAPTURED`.
    pub flags: u8,
    /// Reserved, zero.
    pub reserved: [u8; 7],
}

impl RecordMeta {
    /// Reads the metadata at the head of a record; `None` when it is too
    /// short or its lengths disagree with the record's.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath_core::observe::{RecordMeta, RECORD_META_LEN};
    /// let meta = RecordMeta { frame_len: 60, captured_len: 2, ..Default::default() };
    /// let mut record = meta.to_bytes().to_vec();
    /// record.extend_from_slice(&[0xaa, 0xbb]);
    /// let (read, data) = RecordMeta::parse(&record).unwrap();
    /// assert_eq!((read, data), (meta, &[0xaa, 0xbb][..]));
    /// assert!(RecordMeta::parse(&record[..RECORD_META_LEN + 1]).is_none());
    /// ```
    pub fn parse(record: &[u8]) -> Option<(RecordMeta, &[u8])> {
        let head = record.get(..RECORD_META_LEN)?;
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(head.get(at..at + 4)?.try_into().ok()?))
        };
        let meta = RecordMeta {
            timestamp_ns: u64::from_ne_bytes(head.get(0..8)?.try_into().ok()?),
            ifindex: u32_at(8)?,
            frame_len: u32_at(12)?,
            matched: u32_at(16)?,
            sample_rate: u32_at(20)?,
            captured_len: u16::from_ne_bytes(head.get(24..26)?.try_into().ok()?),
            action: *head.get(26)?,
            reason: *head.get(27)?,
            flags: *head.get(28)?,
            reserved: [0; 7],
        };
        let data = record.get(RECORD_META_LEN..RECORD_META_LEN + meta.captured_len as usize)?;
        Some((meta, data))
    }

    /// The metadata as the bytes the kernel writes.
    pub fn to_bytes(&self) -> [u8; RECORD_META_LEN] {
        let mut bytes = [0u8; RECORD_META_LEN];
        let mut put = |at: usize, value: &[u8]| {
            if let Some(slot) = bytes.get_mut(at..at + value.len()) {
                slot.copy_from_slice(value);
            }
        };
        put(0, &self.timestamp_ns.to_ne_bytes());
        put(8, &self.ifindex.to_ne_bytes());
        put(12, &self.frame_len.to_ne_bytes());
        put(16, &self.matched.to_ne_bytes());
        put(20, &self.sample_rate.to_ne_bytes());
        put(24, &self.captured_len.to_ne_bytes());
        put(26, &[self.action, self.reason, self.flags]);
        bytes
    }

    /// The verdict, if the code is known.
    pub fn action(&self) -> Option<Action> {
        Action::from_u32(self.action as u32)
    }

    /// The reason, if the code is known.
    pub fn reason(&self) -> Option<Reason> {
        Reason::from_u8(self.reason)
    }
}

/// Which frames `xdpath capture` wants (one entry of the shared `CAPTURE`
/// map). All zero: no capture.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Non-zero: capturing.
    pub enabled: u8,
    /// Non-zero: only frames with reason `reason`.
    pub reason_set: u8,
    /// The reason code wanted when `reason_set`.
    pub reason: u8,
    /// Actions wanted: bit `1 << action code`; 0 means every action.
    pub actions: u8,
    /// The interface wanted; 0: every interface.
    pub ifindex: u32,
    /// Frame bytes to keep, 1..=[`CAPTURE_BYTES`].
    pub snap_len: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

impl CaptureConfig {
    /// The config as the kernel's map holds it.
    pub fn to_bytes(&self) -> [u8; 16] {
        let [i0, i1, i2, i3] = self.ifindex.to_ne_bytes();
        let [s0, s1, s2, s3] = self.snap_len.to_ne_bytes();
        let [r0, r1, r2, r3] = self.reserved.to_ne_bytes();
        [
            self.enabled,
            self.reason_set,
            self.reason,
            self.actions,
            i0,
            i1,
            i2,
            i3,
            s0,
            s1,
            s2,
            s3,
            r0,
            r1,
            r2,
            r3,
        ]
    }

    /// Whether a frame arriving on `ifindex` may be captured (its verdict
    /// is checked at the exit by [`CaptureConfig::wants`]).
    #[inline(always)]
    pub fn wants_interface(&self, ifindex: u32) -> bool {
        self.enabled != 0 && (self.ifindex == 0 || self.ifindex == ifindex)
    }

    /// Whether a frame with this verdict and reason is wanted.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath_core::{observe::CaptureConfig, Action, Reason};
    /// let drops = CaptureConfig { enabled: 1, actions: 1 << Action::Drop as u8, ..Default::default() };
    /// assert!(drops.wants(Action::Drop, Reason::RuleDeny));
    /// assert!(!drops.wants(Action::Pass, Reason::Ipv4Tcp));
    /// ```
    #[inline(always)]
    pub fn wants(&self, action: Action, reason: Reason) -> bool {
        let action_bit = 1u32 << (action as u32 & 7);
        (self.actions == 0 || self.actions as u32 & action_bit != 0)
            && (self.reason_set == 0 || self.reason == reason as u8)
    }

    /// The bytes to copy of a frame of `frame_len` bytes.
    #[inline(always)]
    pub fn copy_len(&self, frame_len: u32) -> u32 {
        let snap = if self.snap_len == 0 || self.snap_len > CAPTURE_BYTES {
            CAPTURE_BYTES
        } else {
            self.snap_len
        };
        if frame_len < snap {
            frame_len
        } else {
            snap
        }
    }
}

/// Whether a frame is sampled at 1-in-`rate` given a uniform random
/// number (`rate` 0: sampling off).
///
/// # Examples
///
/// ```
/// use xdpath_core::observe::sample_hit;
/// assert!(!sample_hit(0, 0));
/// assert!(sample_hit(1, 12345));
/// assert!(sample_hit(100, 300) && !sample_hit(100, 301));
/// ```
#[inline(always)]
pub fn sample_hit(rate: u32, random: u32) -> bool {
    rate != 0 && random.is_multiple_of(rate)
}

/// Whether the next frame is sampled, given the frames `left` before the
/// next sample (a countdown kept per CPU), and the countdown's new value.
///
/// Instead of a random draw per frame (a helper call on every frame in
/// the kernel), the gap to the next sample is drawn once per sample,
/// uniformly from 1 to 2·rate − 1 (mean: `rate`), as sFlow agents do. A
/// countdown beyond that range (the rate was lowered) is drawn afresh.
///
/// # Examples
///
/// ```
/// use xdpath_core::observe::sample_step;
/// assert_eq!(sample_step(100, 0, 41), (true, 1 + 41 % 199));
/// assert_eq!(sample_step(100, 5, 41), (false, 4));
/// assert_eq!(sample_step(1, 1, 7), (true, 1));
/// ```
#[inline(always)]
pub fn sample_step(rate: u32, left: u32, random: u32) -> (bool, u32) {
    let span = rate.saturating_mul(2).saturating_sub(1).max(1);
    if left <= 1 || left > span {
        (true, 1 + random % span)
    } else {
        (false, left - 1)
    }
}

/// Bytes of a frame of `frame_len` bytes that a sample carries.
#[inline(always)]
pub fn sample_len(frame_len: u32) -> u32 {
    if frame_len < SAMPLE_BYTES {
        frame_len
    } else {
        SAMPLE_BYTES
    }
}

/// A small seeded generator (xorshift32) for the native build's sampling:
/// reproducible runs, no dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRng {
    state: u32,
}

impl SampleRng {
    /// A generator from `seed` (0 is replaced: xorshift cannot leave 0).
    pub const fn new(seed: u32) -> Self {
        Self {
            state: if seed == 0 { 0x9e37_79b9 } else { seed },
        }
    }

    /// The next number.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath_core::observe::SampleRng;
    /// let mut a = SampleRng::new(7);
    /// let mut b = SampleRng::new(7);
    /// assert_eq!(a.next_u32(), b.next_u32());
    /// ```
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_layout_is_fixed() {
        assert_eq!(RECORD_META_LEN, 40);
        let meta = RecordMeta {
            timestamp_ns: 0x0102_0304_0506_0708,
            ifindex: 7,
            frame_len: 1514,
            matched: MATCHED_RULE | 42,
            sample_rate: 100,
            captured_len: 0,
            action: Action::Drop as u8,
            reason: Reason::RuleDeny as u8,
            flags: RECORD_SAMPLED | RECORD_CAPTURED,
            reserved: [0; 7],
        };
        let bytes = meta.to_bytes();
        assert_eq!(&bytes[8..12], &7u32.to_ne_bytes());
        assert_eq!(bytes[26..29], [1, 40, 3]);
        assert_eq!(RecordMeta::parse(&bytes).map(|(m, _)| m), Some(meta));
        assert_eq!(meta.action(), Some(Action::Drop));
        assert_eq!(meta.reason(), Some(Reason::RuleDeny));
    }

    #[test]
    fn record_shorter_than_its_length_is_refused() {
        let meta = RecordMeta {
            captured_len: 10,
            ..Default::default()
        };
        let mut record = meta.to_bytes().to_vec();
        record.extend_from_slice(&[0; 9]);
        assert!(RecordMeta::parse(&record).is_none());
        record.push(0);
        assert_eq!(RecordMeta::parse(&record).map(|(_, d)| d.len()), Some(10));
    }

    #[test]
    fn capture_filters_compose() {
        let config = CaptureConfig {
            enabled: 1,
            reason_set: 1,
            reason: Reason::Blocklisted as u8,
            actions: 1 << Action::Drop as u8,
            ifindex: 3,
            snap_len: 64,
            reserved: 0,
        };
        assert!(config.wants_interface(3) && !config.wants_interface(4));
        assert!(config.wants(Action::Drop, Reason::Blocklisted));
        assert!(!config.wants(Action::Drop, Reason::RuleDeny));
        assert!(!config.wants(Action::Pass, Reason::Blocklisted));
        assert_eq!((config.copy_len(60), config.copy_len(1500)), (60, 64));
        assert!(!CaptureConfig::default().wants_interface(3));
    }

    #[test]
    fn seeded_sampling_is_close_to_its_rate() {
        let mut rng = SampleRng::new(1);
        let hits = (0..1_000_000)
            .filter(|_| sample_hit(100, rng.next_u32()))
            .count();
        assert!((9_500..=10_500).contains(&hits), "{hits}");
    }

    #[test]
    fn skip_counting_samples_one_in_rate_on_average() {
        let mut rng = SampleRng::new(9);
        let mut left = 0;
        let mut hits = 0;
        for _ in 0..1_000_000 {
            let (hit, next) = sample_step(100, left, rng.next_u32());
            left = next;
            hits += usize::from(hit);
        }
        assert!((9_700..=10_300).contains(&hits), "{hits}");
        // Lowering the rate does not wait out the old, longer gap.
        assert!(sample_step(10, 1500, 3).0);
        // Rate 1: every frame.
        assert!((0..10).all(|left| sample_step(1, left, 12345) == (true, 1)));
    }
}
