#!/usr/bin/env python3
"""Where a BPF program's time goes, by source line (issue 18's profiles).

  bpf-line-profile.py run PROG_ID FRAME_HEX CALLS [FLOWS]
      runs the XDP program PROG_ID on a frame by BPF_PROG_TEST_RUN, one run
      a call (a balanced frame is rewritten in place, so a repeat would run
      on the rewritten frame), CALLS calls; with FLOWS > 1 the frame's TCP
      or UDP source port (bytes 34-35, an untagged IPv4 frame) cycles over
      FLOWS values, so that many flows take turns. Prints the last verdict
      and the kernel-reported mean ns.
  perf script -F ip,sym | bpf-line-profile.py lines PROG_ID [PROG_ID ...]
      maps the samples' addresses in those programs' JIT images (their
      subprograms included) to source lines, from the programs' BTF line
      information (`bpf_prog_info.jited_line_info`), and prints the lines
      with the most samples. bpftool's own `dump jited linum` needs a
      bpftool built with libbfd, which Debian's is not.

Run as root; used by scripts/lb-hot-flow-profile.sh.
"""

import bisect
import collections
import ctypes
import os
import re
import struct
import sys

_LIBC = ctypes.CDLL(None, use_errno=True)
_NR_BPF = 321  # x86_64
_PROG_TEST_RUN, _PROG_GET_FD_BY_ID, _OBJ_GET_INFO_BY_FD, _BTF_GET_FD_BY_ID = (
    10,
    13,
    15,
    19,
)
# struct bpf_prog_info offsets (include/uapi/linux/bpf.h).
_NAME, _BTF_ID = 64, 128
_NR_LINE_INFO, _LINE_INFO, _JITED_LINE_INFO, _NR_JITED_LINE_INFO = 148, 152, 160, 168
_LINE_INFO_REC_SIZE, _JITED_LINE_INFO_REC_SIZE = 172, 176
_PROG_INFO_SIZE = 256
# A JIT image's symbol: bpf_prog_<tag>_<name> (not the kernel's
# bpf_prog_test_run_xdp and the like).
_JITED = re.compile(r"bpf_prog_[0-9a-f]{16}_")


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    result = _LIBC.syscall(_NR_BPF, cmd, attr, len(attr))
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"bpf({cmd}): {os.strerror(errno)}")
    return result


def _fd_of(cmd: int, object_id: int) -> int:
    return _bpf(cmd, ctypes.create_string_buffer(struct.pack("I", object_id), 16))


def _info(fd: int, request: bytes, size: int) -> bytes:
    buffer = ctypes.create_string_buffer(request.ljust(size, b"\0"), size)
    attr = ctypes.create_string_buffer(
        struct.pack("IIQ", fd, size, ctypes.addressof(buffer)), 16
    )
    _bpf(_OBJ_GET_INFO_BY_FD, attr)
    return buffer.raw


def run(prog_id: int, frame: bytes, calls: int, flows: int) -> None:
    fd = _fd_of(_PROG_GET_FD_BY_ID, prog_id)
    data = ctypes.create_string_buffer(frame, len(frame))
    out = ctypes.create_string_buffer(len(frame) + 256)
    attr = ctypes.create_string_buffer(80)
    total, verdict = 0, 0
    for call in range(calls):
        if flows > 1:
            struct.pack_into("!H", data, 34, 1024 + call % flows)
        struct.pack_into(
            "IIIIQQIIII",
            attr,
            0,
            fd,
            0,
            len(frame),
            len(out),
            ctypes.addressof(data),
            ctypes.addressof(out),
            1,
            0,
            0,
            0,
        )
        _bpf(_PROG_TEST_RUN, attr)
        verdict, duration = (
            struct.unpack_from("I", attr, 4)[0],
            struct.unpack_from("I", attr, 36)[0],
        )
        total += duration
    print(f"verdict {verdict}, mean {total / calls:.1f} ns over {calls} runs")


def _btf_strings(btf_id: int) -> bytes:
    fd = _fd_of(_BTF_GET_FD_BY_ID, btf_id)
    size = struct.unpack_from("I", _info(fd, b"", 32), 8)[0]
    raw = ctypes.create_string_buffer(size)
    _info(fd, struct.pack("QI", ctypes.addressof(raw), size), 32)
    header_len, _, _, str_off, str_len = struct.unpack_from("IIIII", raw.raw, 4)
    return raw.raw[header_len + str_off : header_len + str_off + str_len]


def _program_lines(prog_id: int) -> list[tuple[int, str, str, str]]:
    """(JIT address, program, file:line, source) for each line record."""
    fd = _fd_of(_PROG_GET_FD_BY_ID, prog_id)
    first = _info(fd, b"", _PROG_INFO_SIZE)
    count = struct.unpack_from("I", first, _NR_LINE_INFO)[0]
    jited = struct.unpack_from("I", first, _NR_JITED_LINE_INFO)[0]
    btf_id = struct.unpack_from("I", first, _BTF_ID)[0]
    name = first[_NAME : _NAME + 16].split(b"\0")[0].decode()
    if not count or not jited or not btf_id:
        sys.exit(f"program {prog_id} has no line information (loaded without BTF?)")
    records = ctypes.create_string_buffer(count * 16)
    addresses = ctypes.create_string_buffer(jited * 8)
    request = bytearray(_PROG_INFO_SIZE)
    struct.pack_into("I", request, _NR_LINE_INFO, count)
    struct.pack_into("Q", request, _LINE_INFO, ctypes.addressof(records))
    struct.pack_into("Q", request, _JITED_LINE_INFO, ctypes.addressof(addresses))
    struct.pack_into("I", request, _NR_JITED_LINE_INFO, jited)
    struct.pack_into("I", request, _LINE_INFO_REC_SIZE, 16)
    struct.pack_into("I", request, _JITED_LINE_INFO_REC_SIZE, 8)
    _info(fd, bytes(request), _PROG_INFO_SIZE)
    strings = _btf_strings(btf_id)

    def text(offset: int) -> str:
        return strings[offset : strings.index(b"\0", offset)].decode(errors="replace")

    lines = []
    for index in range(min(count, jited)):
        insn, file_off, line_off, line_col = struct.unpack_from(
            "IIII", records.raw, index * 16
        )
        address = struct.unpack_from("Q", addresses.raw, index * 8)[0]
        where = f"{os.path.basename(text(file_off))}:{line_col >> 10} (insn {insn})"
        lines.append((address, name, where, text(line_off).strip()))
    return lines


def lines(prog_ids: list[int], top: int = 40) -> None:
    table = sorted(line for prog_id in prog_ids for line in _program_lines(prog_id))
    addresses = [line[0] for line in table]
    counts: collections.Counter = collections.Counter()
    outside = 0
    for sample in sys.stdin:
        fields = sample.split()
        if len(fields) < 2 or not _JITED.match(fields[1]):
            continue
        address = int(fields[0], 16)
        at = bisect.bisect_right(addresses, address) - 1
        # A record covers the JIT code up to the next one; past 4 KiB the
        # sample is in a program not asked for.
        if at < 0 or address - addresses[at] > 4096:
            outside += 1
            continue
        _, name, where, source = table[at]
        counts[(name, where, source[:80])] += 1
    total = sum(counts.values())
    print(
        f"{total} samples in the programs asked for ({outside} in other BPF programs)"
    )
    for (name, where, source), samples in counts.most_common(top):
        print(
            f"{samples:7d} {100 * samples / max(total, 1):5.1f}%  {name:16s} {where:34s} {source}"
        )


def main() -> None:
    if len(sys.argv) >= 5 and sys.argv[1] == "run":
        flows = int(sys.argv[5]) if len(sys.argv) > 5 else 1
        run(int(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4]), flows)
    elif len(sys.argv) >= 3 and sys.argv[1] == "lines":
        lines([int(arg) for arg in sys.argv[2:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
