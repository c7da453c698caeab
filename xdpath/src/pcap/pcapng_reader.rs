//! pcapng: blocks, sections and interfaces, down to packets.
//!
//! Every section header (there may be several) sets the byte order of the
//! blocks after it and forgets the interfaces before it. Interface
//! description blocks give each interface's link type, snapshot length,
//! timestamp resolution (`if_tsresol`, default microseconds) and offset
//! (`if_tsoffset`). Packets come from enhanced, simple (interface 0, its
//! snapshot length, no timestamp) and the obsolete packet blocks; every
//! other block (name resolution, statistics, decryption secrets, custom,
//! unknown) is skipped. Every length is checked before it is used.

use std::io::{self, Read};

use super::classic::clip_len;
use super::link::Interface;
use super::source::{read_full, RawFrame};
use super::*;

const BLOCK_PACKET: u32 = 2;
const BLOCK_SIMPLE_PACKET: u32 = 3;
const OPTION_END: u16 = 0;
const OPTION_IF_TSRESOL: u16 = 9;
const OPTION_IF_TSOFFSET: u16 = 14;
/// `if_fcslen`: the frame check sequence each frame ends with, in bits.
const OPTION_IF_FCSLEN: u16 = 13;
/// `if_tsresol` when an interface has none: microseconds.
const DEFAULT_TSRESOL: u8 = 6;

/// What an interface description block says.
#[derive(Clone, Copy, Debug)]
struct Idb {
    link_type: u32,
    snaplen: u32,
    /// Timestamp units per second.
    units_per_second: u64,
    /// Seconds added to every timestamp.
    offset_seconds: i64,
    /// Bytes of frame check sequence each frame ends with.
    fcs_len: u8,
}

/// A block read whole: where it starts, its type, its body (between the
/// leading length and the trailing one).
struct Block {
    offset: u64,
    kind: BlockKind,
    body: Vec<u8>,
}

/// The packets of a pcapng file.
#[derive(Debug)]
pub(super) struct NgSource<R> {
    input: R,
    order: ByteOrder,
    /// Sections so far (counting from 1).
    section: u32,
    interfaces: Vec<Idb>,
    pub(super) offset: u64,
}

impl<R: Read> NgSource<R> {
    /// Reads the first section header; its block type (the file's magic)
    /// has been read already.
    pub(super) fn new(input: R) -> Result<Self, PcapError> {
        let mut source = Self {
            input,
            order: ByteOrder::LittleEndian,
            section: 0,
            interfaces: Vec::new(),
            offset: 0,
        };
        source.section_header()?;
        Ok(source)
    }

    /// The next packet, or `None` at the end of the file.
    pub(super) fn next_frame(&mut self, number: u64) -> Result<Option<RawFrame>, PcapError> {
        loop {
            let offset = self.offset;
            let mut head = [0u8; 4];
            let got = read_full(&mut self.input, &mut head)?;
            if got == 0 {
                return Ok(None);
            }
            let block_type = self.order.u32(head);
            let kind = BlockKind(block_type);
            if got < 4 {
                return Err(truncated(offset, kind, (4 - got) as u64 + 8));
            }
            if block_type == pcapng::BLOCK_SECTION_HEADER {
                self.section_header()?;
                continue;
            }
            let frame = match block_type {
                pcapng::BLOCK_INTERFACE_DESCRIPTION => {
                    let block = self.block(offset, kind, 20)?;
                    let idb = self.interface(&block)?;
                    self.interfaces.push(idb);
                    None
                }
                pcapng::BLOCK_ENHANCED_PACKET => {
                    let block = self.block(offset, kind, 32)?;
                    Some(self.enhanced_packet(&block, number, 0)?)
                }
                BLOCK_PACKET => {
                    let block = self.block(offset, kind, 32)?;
                    Some(self.enhanced_packet(&block, number, 2)?)
                }
                BLOCK_SIMPLE_PACKET => {
                    let block = self.block(offset, kind, 16)?;
                    Some(self.simple_packet(&block, number)?)
                }
                _ => {
                    self.skip_block(offset, kind)?;
                    None
                }
            };
            if let Some(frame) = frame {
                return Ok(Some(frame));
            }
        }
    }

    /// A section header block after its block type: the byte-order magic
    /// sets the order of this section.
    fn section_header(&mut self) -> Result<(), PcapError> {
        let offset = self.offset;
        let kind = BlockKind(pcapng::BLOCK_SECTION_HEADER);
        let mut head = [0u8; 8];
        let got = read_full(&mut self.input, &mut head)?;
        if got < 8 {
            return Err(truncated(offset, kind, (8 - got) as u64 + 16));
        }
        let magic = [head[4], head[5], head[6], head[7]];
        self.order = if u32::from_le_bytes(magic) == pcapng::BYTE_ORDER_MAGIC {
            ByteOrder::LittleEndian
        } else if u32::from_be_bytes(magic) == pcapng::BYTE_ORDER_MAGIC {
            ByteOrder::BigEndian
        } else {
            let magic = u32::from_be_bytes(magic);
            let problem = BlockProblem::ByteOrderMagic { magic };
            return Err(bad(offset, kind, problem));
        };
        let length = self.order.u32([head[0], head[1], head[2], head[3]]);
        check_length(offset, kind, length, 28)?;
        let mut body = magic.to_vec();
        self.read_body(offset, kind, length, 4, &mut body)?;
        let (major, minor) = (self.u16_at(&body, 4), self.u16_at(&body, 6));
        if major != 1 || !(minor == 0 || minor == 2) {
            return Err(bad(offset, kind, BlockProblem::Version { major, minor }));
        }
        self.section += 1;
        self.interfaces.clear();
        Ok(())
    }

    /// A whole block after its type: length, body, trailing length.
    fn block(&mut self, offset: u64, kind: BlockKind, minimum: u32) -> Result<Block, PcapError> {
        let length = self.length(offset, kind)?;
        check_length(offset, kind, length, minimum)?;
        let mut body = Vec::new();
        self.read_body(offset, kind, length, 0, &mut body)?;
        Ok(Block { offset, kind, body })
    }

    /// Passes over a block nobody here needs, checking its lengths.
    fn skip_block(&mut self, offset: u64, kind: BlockKind) -> Result<(), PcapError> {
        let length = self.length(offset, kind)?;
        check_length(offset, kind, length, 12)?;
        let skip = u64::from(length) - 12;
        let skipped = io::copy(&mut (&mut self.input).take(skip), &mut io::sink())?;
        if skipped < skip {
            return Err(truncated(offset, kind, skip - skipped + 4));
        }
        self.trailer(offset, kind, length)
    }

    fn length(&mut self, offset: u64, kind: BlockKind) -> Result<u32, PcapError> {
        let mut bytes = [0u8; 4];
        let got = read_full(&mut self.input, &mut bytes)?;
        if got < 4 {
            return Err(truncated(offset, kind, (4 - got) as u64 + 4));
        }
        Ok(self.order.u32(bytes))
    }

    /// Reads the body of a block of `length` (less `already` bytes of it
    /// read) into `body`, then its trailing length; the offset moves past.
    fn read_body(
        &mut self,
        offset: u64,
        kind: BlockKind,
        length: u32,
        already: u32,
        body: &mut Vec<u8>,
    ) -> Result<(), PcapError> {
        // Grows as bytes arrive: a corrupt length allocates no more than
        // the file holds.
        let wanted = u64::from(length - 12 - already);
        let got = (&mut self.input).take(wanted).read_to_end(body)? as u64;
        if got < wanted {
            return Err(truncated(offset, kind, wanted - got + 4));
        }
        self.trailer(offset, kind, length)
    }

    fn trailer(&mut self, offset: u64, kind: BlockKind, leading: u32) -> Result<(), PcapError> {
        let mut bytes = [0u8; 4];
        let got = read_full(&mut self.input, &mut bytes)?;
        if got < 4 {
            return Err(truncated(offset, kind, (4 - got) as u64));
        }
        let trailing = self.order.u32(bytes);
        if trailing != leading {
            return Err(PcapError::BlockTrailer {
                offset,
                kind,
                leading,
                trailing,
            });
        }
        self.offset = offset + u64::from(leading);
        Ok(())
    }

    fn interface(&self, block: &Block) -> Result<Idb, PcapError> {
        let body = &block.body;
        let mut idb = Idb {
            link_type: u32::from(self.u16_at(body, 0)),
            snaplen: self.u32_at(body, 4),
            units_per_second: 1_000_000,
            offset_seconds: 0,
            fcs_len: 0,
        };
        let mut tsresol = DEFAULT_TSRESOL;
        for option in Options::new(self.order, body.get(8..).unwrap_or_default()) {
            let (code, value) = option.map_err(|problem| bad(block.offset, block.kind, problem))?;
            let expect = |expected: u16| {
                let length = value.len() as u16;
                let problem = BlockProblem::OptionLength {
                    code,
                    length,
                    expected,
                };
                (value.len() == usize::from(expected))
                    .then_some(())
                    .ok_or_else(|| bad(block.offset, block.kind, problem))
            };
            match code {
                OPTION_IF_TSRESOL => {
                    expect(1)?;
                    tsresol = value.first().copied().unwrap_or(DEFAULT_TSRESOL);
                }
                OPTION_IF_FCSLEN => {
                    expect(1)?;
                    idb.fcs_len = value.first().copied().unwrap_or(0) / 8;
                }
                OPTION_IF_TSOFFSET => {
                    expect(8)?;
                    let bytes = <[u8; 8]>::try_from(value).unwrap_or_default();
                    idb.offset_seconds = match self.order {
                        ByteOrder::LittleEndian => i64::from_le_bytes(bytes),
                        ByteOrder::BigEndian => i64::from_be_bytes(bytes),
                    };
                }
                _ => {}
            }
        }
        idb.units_per_second = units_per_second(tsresol).ok_or_else(|| {
            bad(
                block.offset,
                block.kind,
                BlockProblem::Resolution { tsresol },
            )
        })?;
        Ok(idb)
    }

    /// An enhanced packet block, or (with `id_width` 2) an obsolete packet
    /// block, whose interface id is 16 bits followed by a drop count.
    fn enhanced_packet(
        &self,
        block: &Block,
        number: u64,
        id_width: usize,
    ) -> Result<RawFrame, PcapError> {
        let body = &block.body;
        let interface = if id_width == 2 {
            u32::from(self.u16_at(body, 0))
        } else {
            self.u32_at(body, 0)
        };
        let idb = self.idb(block, interface)?;
        let units = u64::from(self.u32_at(body, 4)) << 32 | u64::from(self.u32_at(body, 8));
        let caplen = self.u32_at(body, 12);
        let original_len = self.u32_at(body, 16);
        let data = self.packet_data(block, number, idb, caplen, body.get(20..))?;
        Ok(RawFrame {
            link_type: idb.link_type,
            interface: Some(Interface {
                section: self.section,
                id: interface,
            }),
            timestamp: timestamp(units, idb),
            original_len,
            clipped: data.len() < caplen as usize,
            fcs_len: idb.fcs_len,
            data,
        })
    }

    /// A simple packet block: interface 0, captured up to its snapshot
    /// length, no timestamp (0).
    fn simple_packet(&self, block: &Block, number: u64) -> Result<RawFrame, PcapError> {
        let idb = self.idb(block, 0)?;
        let original_len = self.u32_at(&block.body, 0);
        let available = block.body.len().saturating_sub(4) as u32;
        let caplen = match idb.snaplen {
            0 => original_len.min(available),
            snaplen => original_len.min(snaplen),
        };
        let data = self.packet_data(block, number, idb, caplen, block.body.get(4..))?;
        Ok(RawFrame {
            link_type: idb.link_type,
            interface: Some(Interface {
                section: self.section,
                id: 0,
            }),
            timestamp: Timestamp {
                precision: Precision::Nanosecond,
                ..Timestamp::default()
            },
            original_len,
            clipped: false,
            fcs_len: idb.fcs_len,
            data,
        })
    }

    /// `caplen` bytes off the front of `rest`, checked against the record
    /// limit and the block, cut to the interface's snapshot length.
    fn packet_data(
        &self,
        block: &Block,
        number: u64,
        idb: Idb,
        caplen: u32,
        rest: Option<&[u8]>,
    ) -> Result<Vec<u8>, PcapError> {
        if caplen > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLarge {
                record: number,
                offset: block.offset,
                caplen,
                limit: MAX_RECORD_LEN,
            });
        }
        let problem = BlockProblem::CapturedBeyondBlock { caplen };
        let data = rest
            .and_then(|rest| rest.get(..caplen as usize))
            .ok_or_else(|| bad(block.offset, block.kind, problem))?;
        let kept = caplen.min(clip_len(idb.snaplen)) as usize;
        Ok(data.get(..kept).unwrap_or(data).to_vec())
    }

    fn idb(&self, block: &Block, interface: u32) -> Result<Idb, PcapError> {
        let described = self.interfaces.len() as u32;
        let problem = BlockProblem::UnknownInterface {
            interface,
            described,
        };
        usize::try_from(interface)
            .ok()
            .and_then(|index| self.interfaces.get(index))
            .copied()
            .ok_or_else(|| bad(block.offset, block.kind, problem))
    }

    fn u16_at(&self, bytes: &[u8], at: usize) -> u16 {
        let field = bytes.get(at..at + 2).unwrap_or(&[0, 0]);
        self.order.u16([field[0], field[1]])
    }

    fn u32_at(&self, bytes: &[u8], at: usize) -> u32 {
        let field = bytes.get(at..at + 4).unwrap_or(&[0; 4]);
        self.order.u32([field[0], field[1], field[2], field[3]])
    }
}

/// The options of a block: `(code, value)` up to end-of-options or the
/// end of the block.
struct Options<'a> {
    order: ByteOrder,
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    fn new(order: ByteOrder, rest: &'a [u8]) -> Self {
        Self { order, rest }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), BlockProblem>;

    fn next(&mut self) -> Option<Self::Item> {
        let head = self.rest.get(..4)?;
        let code = self.order.u16([head[0], head[1]]);
        let length = self.order.u16([head[2], head[3]]);
        if code == OPTION_END {
            self.rest = &[];
            return None;
        }
        let padded = usize::from(length).div_ceil(4) * 4;
        let Some(value) = self.rest.get(4..4 + usize::from(length)) else {
            self.rest = &[];
            return Some(Err(BlockProblem::OptionBeyondBlock { code, length }));
        };
        self.rest = self.rest.get(4 + padded..).unwrap_or_default();
        Some(Ok((code, value)))
    }
}

/// Timestamp units per second for an `if_tsresol` byte: 10^n, or 2^n
/// when its top bit is set; `None` when that does not fit in 64 bits.
fn units_per_second(tsresol: u8) -> Option<u64> {
    let exponent = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        10u64.checked_pow(exponent)
    } else {
        1u64.checked_shl(exponent)
    }
}

/// A packet's time, `units` of its interface's resolution since the epoch
/// plus the interface's offset, in nanoseconds.
fn timestamp(units: u64, idb: Idb) -> Timestamp {
    let per_second = idb.units_per_second.max(1);
    let seconds = i64::try_from(units / per_second).unwrap_or(i64::MAX);
    let nanos = u128::from(units % per_second) * 1_000_000_000 / u128::from(per_second);
    let seconds = seconds.saturating_add(idb.offset_seconds);
    Timestamp {
        seconds: u32::try_from(seconds.max(0)).unwrap_or(u32::MAX),
        fraction: nanos as u32,
        precision: Precision::Nanosecond,
    }
}

/// Refuses a block length below `minimum`, not a multiple of 4, or past
/// [`MAX_BLOCK_LEN`].
fn check_length(offset: u64, kind: BlockKind, length: u32, minimum: u32) -> Result<(), PcapError> {
    if !length.is_multiple_of(4) || !(12..=MAX_BLOCK_LEN).contains(&length) {
        return Err(PcapError::BlockLength {
            offset,
            kind,
            length,
        });
    }
    if length < minimum {
        return Err(bad(
            offset,
            kind,
            BlockProblem::TooShort { length, minimum },
        ));
    }
    Ok(())
}

fn truncated(offset: u64, kind: BlockKind, missing: u64) -> PcapError {
    PcapError::TruncatedBlock {
        offset,
        kind,
        missing,
    }
}

fn bad(offset: u64, kind: BlockKind, problem: BlockProblem) -> PcapError {
    PcapError::BadBlock {
        offset,
        kind,
        problem,
    }
}
