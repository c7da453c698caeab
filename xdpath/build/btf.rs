//! The objects' BTF made loadable: rustc describes an enum with data as a
//! union whose members sit at their fields' offsets, which the kernel
//! refuses (a union's members start at 0: "Invalid member bits_offset"),
//! and without its BTF the kernel gets a program with no function
//! information, which `bpf_loop` callbacks need. The members are moved to
//! offset 0 in place: the types then describe the bytes less exactly,
//! which nothing here reads (aya creates the maps without BTF).

/// BTF kinds whose records after the common 12 bytes are counted here.
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

/// Sanitizes the `.BTF` section of the ELF object in `object`, if any;
/// returns how many union members were moved.
pub fn sanitize_object(object: &mut [u8]) -> Result<usize, String> {
    match section(object, ".BTF")? {
        Some((offset, size)) => {
            let end = offset.checked_add(size).ok_or("section bounds overflow")?;
            let btf = object
                .get_mut(offset..end)
                .ok_or("section beyond the file")?;
            sanitize_btf(btf)
        }
        None => Ok(0),
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    let field = bytes.get(at..at + 2).ok_or("truncated")?;
    Ok(u16::from_le_bytes([field[0], field[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    let field = bytes.get(at..at + 4).ok_or("truncated")?;
    Ok(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    let low = u64::from(u32_at(bytes, at)?);
    let high = u64::from(u32_at(bytes, at + 4)?);
    Ok(low | high << 32)
}

fn to_usize(value: u64) -> Result<usize, String> {
    usize::try_from(value).map_err(|_| "offset too large".to_string())
}

/// The (file offset, size) of the section named `wanted` in a 64-bit
/// little-endian ELF file.
fn section(elf: &[u8], wanted: &str) -> Result<Option<(usize, usize)>, String> {
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) || elf.get(4) != Some(&2) {
        return Err("not a 64-bit ELF file".into());
    }
    let headers = to_usize(u64_at(elf, 0x28)?)?;
    let entry_size = usize::from(u16_at(elf, 0x3a)?);
    let count = usize::from(u16_at(elf, 0x3c)?);
    let names_index = usize::from(u16_at(elf, 0x3e)?);
    let header = |index: usize| headers + index * entry_size;
    let names = to_usize(u64_at(elf, header(names_index) + 0x18)?)?;
    for index in 0..count {
        let at = header(index);
        let name_at = names + u32_at(elf, at)? as usize;
        let name_end = elf
            .get(name_at..)
            .and_then(|rest| rest.iter().position(|byte| *byte == 0))
            .ok_or("unterminated section name")?;
        if elf.get(name_at..name_at + name_end) == Some(wanted.as_bytes()) {
            let offset = to_usize(u64_at(elf, at + 0x18)?)?;
            let size = to_usize(u64_at(elf, at + 0x20)?)?;
            return Ok(Some((offset, size)));
        }
    }
    Ok(None)
}

/// Moves every union member to offset 0 in the BTF blob `btf`.
fn sanitize_btf(btf: &mut [u8]) -> Result<usize, String> {
    if u16_at(btf, 0)? != 0xeb9f {
        return Err("not BTF (magic)".into());
    }
    let header_len = u32_at(btf, 4)? as usize;
    let types_at = header_len + u32_at(btf, 8)? as usize;
    let types_end = types_at + u32_at(btf, 12)? as usize;
    let mut at = types_at;
    let mut moved = 0;
    while at < types_end {
        let info = u32_at(btf, at + 4)?;
        let members = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        at += 12;
        let record = match kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * members,
            KIND_ENUM | KIND_FUNC_PROTO => 8 * members,
            // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT,
            // TYPE_TAG: nothing after the common part.
            2 | 7..=12 | 16 | 18 => 0,
            unknown => return Err(format!("BTF kind {unknown} is not known to this build")),
        };
        if kind == KIND_UNION {
            for member in 0..members {
                let offset_at = at + 12 * member + 8;
                if u32_at(btf, offset_at)? != 0 {
                    btf.get_mut(offset_at..offset_at + 4)
                        .ok_or("truncated")?
                        .copy_from_slice(&0u32.to_le_bytes());
                    moved += 1;
                }
            }
        }
        at += record;
    }
    Ok(moved)
}
