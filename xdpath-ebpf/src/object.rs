//! What every XDP object of this crate carries besides its programs: the
//! licence the kernel reads (GPL-compatible, for the helpers that need it:
//! tail calls, redirects, FIB lookups) and the panic handler `no_std`
//! requires. Each binary declares `mod object;`.

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the core has no panicking path and the verifier would
    // reject a program that could reach one.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
