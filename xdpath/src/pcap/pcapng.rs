//! [`PcapngWriter`]: little-endian pcapng captures (one section, Ethernet
//! interfaces, nanosecond timestamps, a comment per packet).
//!
//! The layout follows the pcapng specification (draft-ietf-opsawg-pcapng):
//! every block is `type, total length, body, total length`, with the body
//! and each option value padded to 32 bits. Unlike classic pcap, pcapng
//! lets each packet carry a comment, which is where a capture records the
//! verdict the data path gave the frame (`observe::capture::sample_comment`); Wireshark
//! shows it as `frame.comment`.

use std::io::{self, Write};

use super::LINKTYPE_ETHERNET;

/// Block type of a Section Header Block (a palindrome, so that a reader
/// can find it whatever the byte order).
pub const BLOCK_SECTION_HEADER: u32 = 0x0A0D_0D0A;
/// Block type of an Interface Description Block.
pub const BLOCK_INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
/// Block type of an Enhanced Packet Block.
pub const BLOCK_ENHANCED_PACKET: u32 = 0x0000_0006;
/// The byte-order magic of a Section Header Block.
pub const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPTION_END: u16 = 0;
const OPTION_COMMENT: u16 = 1;
const OPTION_SHB_USER_APPLICATION: u16 = 4;
const OPTION_IF_NAME: u16 = 2;
const OPTION_IF_TSRESOL: u16 = 9;
/// `if_tsresol` 9: timestamps count units of 10^-9 s.
const TSRESOL_NANOSECONDS: u8 = 9;
/// The application named in the section header.
const USER_APPLICATION: &str = "xdpath";

/// Writes a little-endian pcapng file with one section.
///
/// Interfaces are added with [`add_interface`](Self::add_interface) before
/// packets that refer to them; each is Ethernet with nanosecond timestamps.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::pcapng::PcapngWriter;
/// let mut writer = PcapngWriter::new(Vec::new()).unwrap();
/// let interface = writer.add_interface("eth0", 1536).unwrap();
/// writer.write_packet(interface, 1_700_000_000_000_000_000, 60, &[0u8; 14], Some("verdict=drop")).unwrap();
/// let bytes = writer.finish().unwrap();
/// assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
/// assert_eq!(bytes.len() % 4, 0);
/// ```
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    output: W,
    /// Snapshot length of each interface, indexed by interface id.
    snap_lens: Vec<u32>,
    packets: u64,
}

/// A block being assembled: its body, then framed by [`Block::finish`].
struct Block {
    block_type: u32,
    body: Vec<u8>,
}

impl Block {
    fn new(block_type: u32) -> Self {
        Self {
            block_type,
            body: Vec::new(),
        }
    }

    fn u16(&mut self, value: u16) {
        self.body.extend_from_slice(&value.to_le_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.body.extend_from_slice(&value.to_le_bytes());
    }

    fn padded(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
        self.body.resize(padded_len(self.body.len()), 0);
    }

    /// One option. Values longer than an option can hold (65,535 bytes) are
    /// cut short rather than refused: a comment is never worth losing the
    /// packet over.
    fn option(&mut self, code: u16, value: &[u8]) {
        let value = &value[..value.len().min(usize::from(u16::MAX))];
        self.u16(code);
        self.u16(value.len() as u16);
        self.padded(value);
    }

    /// A UTF-8 option, cut at a character boundary when too long.
    fn text_option(&mut self, code: u16, text: &str) {
        let mut end = text.len().min(usize::from(u16::MAX));
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.option(code, &text.as_bytes()[..end]);
    }

    fn end_of_options(&mut self) {
        self.u16(OPTION_END);
        self.u16(0);
    }

    /// The whole block: type, total length, body, total length.
    fn finish(self) -> io::Result<Vec<u8>> {
        let total = u32::try_from(self.body.len() + 12)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
        let mut block = Vec::with_capacity(self.body.len() + 12);
        block.extend_from_slice(&self.block_type.to_le_bytes());
        block.extend_from_slice(&total.to_le_bytes());
        block.extend_from_slice(&self.body);
        block.extend_from_slice(&total.to_le_bytes());
        Ok(block)
    }
}

/// `length` rounded up to a multiple of 4.
fn padded_len(length: usize) -> usize {
    length.div_ceil(4) * 4
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block (version 1.0, section length
    /// unspecified, `shb_userappl` "xdpath").
    pub fn new(mut output: W) -> io::Result<Self> {
        let mut block = Block::new(BLOCK_SECTION_HEADER);
        block.u32(BYTE_ORDER_MAGIC);
        block.u16(1);
        block.u16(0);
        // Section length -1: unknown, so the file can be streamed.
        block.body.extend_from_slice(&(-1i64).to_le_bytes());
        block.text_option(OPTION_SHB_USER_APPLICATION, USER_APPLICATION);
        block.end_of_options();
        output.write_all(&block.finish()?)?;
        Ok(Self {
            output,
            snap_lens: Vec::new(),
            packets: 0,
        })
    }

    /// Writes an Interface Description Block (Ethernet, `if_name` `name`,
    /// nanosecond timestamps) and returns the interface's id, counting
    /// from 0. `snap_len` 0 means no limit.
    pub fn add_interface(&mut self, name: &str, snap_len: u32) -> io::Result<u32> {
        let id = u32::try_from(self.snap_lens.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many interfaces"))?;
        let mut block = Block::new(BLOCK_INTERFACE_DESCRIPTION);
        block.u16(LINKTYPE_ETHERNET as u16);
        block.u16(0);
        block.u32(snap_len);
        block.text_option(OPTION_IF_NAME, name);
        block.option(OPTION_IF_TSRESOL, &[TSRESOL_NANOSECONDS]);
        block.end_of_options();
        self.output.write_all(&block.finish()?)?;
        self.snap_lens.push(snap_len);
        Ok(id)
    }

    /// Writes an Enhanced Packet Block.
    ///
    /// `data` is what was captured, cut to the interface's snapshot length
    /// if longer; `original_len` is the frame's length on the wire, raised
    /// to the captured length if smaller (readers reject the reverse).
    /// Fails with `InvalidInput` for an interface never added or a frame
    /// over [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN) bytes.
    pub fn write_packet(
        &mut self,
        interface_id: u32,
        unix_ns: u64,
        original_len: u32,
        data: &[u8],
        comment: Option<&str>,
    ) -> io::Result<()> {
        let snap_len = usize::try_from(interface_id)
            .ok()
            .and_then(|index| self.snap_lens.get(index).copied())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("pcapng interface {interface_id} was never added"),
                )
            })?;
        let data = match usize::try_from(snap_len) {
            Ok(limit) if snap_len != 0 && data.len() > limit => &data[..limit],
            _ => data,
        };
        let captured_len = super::captured_len(data, "pcapng")?;
        let mut block = Block::new(BLOCK_ENHANCED_PACKET);
        block.u32(interface_id);
        block.u32((unix_ns >> 32) as u32);
        block.u32(unix_ns as u32);
        block.u32(captured_len);
        block.u32(original_len.max(captured_len));
        block.padded(data);
        if let Some(comment) = comment {
            block.text_option(OPTION_COMMENT, comment);
            block.end_of_options();
        }
        self.output.write_all(&block.finish()?)?;
        self.packets += 1;
        Ok(())
    }

    /// Interfaces added so far.
    pub fn interfaces(&self) -> u32 {
        self.snap_lens.len() as u32
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes what was written so far (whole blocks) to the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.output.flush()?;
        Ok(self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::MAX_RECORD_LEN;
    use std::process::Command;

    /// The Section Header Block, field by field from the specification.
    const GOLDEN_SECTION_HEADER: [u8; 44] = [
        0x0a, 0x0d, 0x0d, 0x0a, // block type
        44, 0, 0, 0, // block total length
        0x4d, 0x3c, 0x2b, 0x1a, // byte-order magic
        1, 0, 0, 0, // major 1, minor 0
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length -1
        4, 0, 6, 0, b'x', b'd', b'p', b'a', b't', b'h', 0, 0, // shb_userappl + 2 padding
        0, 0, 0, 0, // opt_endofopt
        44, 0, 0, 0, // block total length
    ];

    #[test]
    fn section_header_matches_the_specification() {
        let bytes = PcapngWriter::new(Vec::new()).unwrap().finish().unwrap();
        assert_eq!(bytes, GOLDEN_SECTION_HEADER);
    }

    #[test]
    fn interface_and_enhanced_packet_blocks_match_the_specification() {
        let mut writer = PcapngWriter::new(Vec::new()).unwrap();
        assert_eq!(writer.add_interface("eth0", 96).unwrap(), 0);
        let data = [0xde, 0xad, 0xbe, 0xef, 0x01];
        writer
            .write_packet(0, 0x0123_4567_89ab_cdef, 60, &data, Some("v=drop"))
            .unwrap();
        let bytes = writer.finish().unwrap();
        let interface: [u8; 40] = [
            1, 0, 0, 0, // block type
            40, 0, 0, 0, // block total length
            1, 0, 0, 0, // link type Ethernet, reserved
            96, 0, 0, 0, // snapshot length
            2, 0, 4, 0, b'e', b't', b'h', b'0', // if_name
            9, 0, 1, 0, 9, 0, 0, 0, // if_tsresol 9 + 3 padding
            0, 0, 0, 0, // opt_endofopt
            40, 0, 0, 0, // block total length
        ];
        let packet: [u8; 56] = [
            6, 0, 0, 0, // block type
            56, 0, 0, 0, // block total length
            0, 0, 0, 0, // interface id
            0x67, 0x45, 0x23, 0x01, // timestamp, upper 32 bits
            0xef, 0xcd, 0xab, 0x89, // timestamp, lower 32 bits
            5, 0, 0, 0, // captured length
            60, 0, 0, 0, // original length
            0xde, 0xad, 0xbe, 0xef, 0x01, 0, 0, 0, // data + 3 padding
            1, 0, 6, 0, b'v', b'=', b'd', b'r', b'o', b'p', 0, 0, // opt_comment + 2 padding
            0, 0, 0, 0, // opt_endofopt
            56, 0, 0, 0, // block total length
        ];
        assert_eq!(&bytes[..44], &GOLDEN_SECTION_HEADER);
        assert_eq!(&bytes[44..84], &interface);
        assert_eq!(&bytes[84..], &packet);
    }

    #[test]
    fn bad_interface_and_oversized_frames_are_refused_and_snap_len_applies() {
        let mut writer = PcapngWriter::new(Vec::new()).unwrap();
        let error = writer.write_packet(0, 0, 1, &[0], None).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let unlimited = writer.add_interface("any", 0).unwrap();
        let huge = vec![0u8; MAX_RECORD_LEN as usize + 1];
        assert!(writer.write_packet(unlimited, 0, 0, &huge, None).is_err());
        let short = writer.add_interface("short", 4).unwrap();
        writer.write_packet(short, 0, 0, &huge, None).unwrap();
        let bytes = writer.finish().unwrap();
        // The last block: 28-byte header, 4 data bytes, no options, length.
        let block = &bytes[bytes.len() - 36..];
        assert_eq!(&block[..8], &[6, 0, 0, 0, 36, 0, 0, 0]);
        assert_eq!(&block[20..28], &[4, 0, 0, 0, 4, 0, 0, 0]);
    }

    #[test]
    fn overlong_comment_is_cut_at_a_character_boundary() {
        let mut writer = PcapngWriter::new(Vec::new()).unwrap();
        writer.add_interface("eth0", 0).unwrap();
        let comment = "é".repeat(40_000);
        writer.write_packet(0, 0, 0, &[], Some(&comment)).unwrap();
        let bytes = writer.finish().unwrap();
        let option = &bytes[bytes.len() - 4 - 4 - 65_536 - 4..];
        assert_eq!(&option[..4], &[1, 0, 0xfe, 0xff]);
        assert!(std::str::from_utf8(&option[4..4 + 65_534]).is_ok());
    }

    /// An Ethernet + IPv4 + UDP frame from `source`, `length` bytes long.
    fn udp_frame(source: [u8; 4], length: usize) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let ip_len = (length - 14) as u16;
        frame.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8]);
        frame.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
        frame.extend_from_slice(&source);
        frame.extend_from_slice(&[192, 0, 2, 1]);
        let udp_len = ip_len - 20;
        frame.extend_from_slice(&[0x30, 0x39, 0, 53, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        frame.resize(length, 0);
        frame
    }

    /// Runs a Wireshark tool; scripts/setup.sh installs them, so a
    /// missing one fails the test rather than skipping the check.
    fn run(program: &str, arguments: &[&str]) -> Option<std::process::Output> {
        match Command::new(program).args(arguments).output() {
            Ok(output) => Some(output),
            Err(error) => panic!("{program} (scripts/setup.sh installs it): {error}"),
        }
    }

    #[test]
    fn tshark_reads_comments_lengths_and_addresses() {
        let path = std::env::temp_dir().join(format!("xdpath-{}.pcapng", std::process::id()));
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut writer = PcapngWriter::new(file).unwrap();
        let eth0 = writer.add_interface("eth0", 1536).unwrap();
        // A 64-byte snapshot: the second frame is cut, its length kept.
        let eth1 = writer.add_interface("eth1", 64).unwrap();
        let packets = [
            (eth0, 1, 60, "verdict=drop reason=rule-deny rule=7"),
            (eth1, 2, 200, "verdict=pass reason=ipv4-udp"),
        ];
        for (interface, host, length, comment) in packets {
            let frame = udp_frame([10, 0, 0, host], length);
            let time = 1_700_000_000_000_000_000 + u64::from(host) * 500_000_001;
            writer
                .write_packet(interface, time, length as u32, &frame, Some(comment))
                .unwrap();
        }
        writer.finish().unwrap();
        let file_name = path.to_string_lossy().to_string();
        let fields = [
            "-T",
            "fields",
            "-e",
            "frame.comment",
            "-e",
            "frame.len",
            "-e",
            "ip.src",
        ];
        let mut arguments = vec!["-r", file_name.as_str()];
        arguments.extend_from_slice(&fields);
        let tshark = run("tshark", &arguments);
        let capinfos = run("capinfos", &["-M", &file_name]);
        let _ = std::fs::remove_file(&path);
        if let Some(output) = tshark {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "tshark failed: {stderr}");
            let lines: Vec<&str> = stdout.lines().collect();
            let expected = [
                "verdict=drop reason=rule-deny rule=7\t60\t10.0.0.1",
                "verdict=pass reason=ipv4-udp\t200\t10.0.0.2",
            ];
            assert_eq!(lines, expected, "stderr: {stderr}");
            let complaints: Vec<&str> = stderr
                .lines()
                .filter(|line| !line.contains("Running as user"))
                .collect();
            assert!(complaints.is_empty(), "tshark complained: {complaints:?}");
        }
        if let Some(output) = capinfos {
            let report = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "capinfos failed: {report}");
            for expected in [
                "pcapng",
                "Number of packets:   2",
                "Number of interfaces in file: 2",
            ] {
                assert!(report.contains(expected), "{report}");
            }
        }
    }
}
