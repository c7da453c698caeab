//! The benchmark's report ([`BenchReport`]) and its table on stdout.

/// One program's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgramResult {
    /// What ran.
    pub program: String,
    /// Mean over the mix of the per-frame medians, ns per packet.
    pub ns_per_packet: f64,
    /// Per frame, in mix order.
    pub per_frame_ns: Vec<f64>,
    /// `ns_per_packet` / the empty program's.
    pub ratio_to_empty: f64,
    /// `ns_per_packet` / xdp-filter's, when the peer ran.
    pub ratio_to_xdp_filter: Option<f64>,
    /// The kernel's own `duration` (whole ns, truncated; excludes the
    /// syscall and part of the loop), mean over the mix of the medians.
    pub kernel_reported_ns: f64,
    /// `kernel_reported_ns` / the empty program's.
    pub kernel_reported_ratio_to_empty: f64,
    /// The kernel's figure per frame, in mix order.
    pub per_frame_kernel_ns: Vec<f64>,
}

/// The native build's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NativeResult {
    /// Packets processed.
    pub packets: u64,
    /// ns per packet.
    pub ns_per_packet: f64,
    /// Millions of packets per second on one core.
    pub mpps: f64,
}

/// The whole report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// The method, in words.
    pub method: String,
    /// Frame descriptions, in mix order.
    pub mix: Vec<String>,
    /// Kernel results: xdpath, empty, and the peer if it loaded.
    pub kernel: Vec<ProgramResult>,
    /// Why the peer did not run, if it did not.
    pub peer_skipped: Option<String>,
    /// Sections asked for that could not run on this kernel, and why.
    pub skipped: Vec<String>,
    /// Native results.
    pub native: NativeResult,
    /// The mix on N CPUs at once, when asked for (`--cpus`).
    pub multicore: Option<Vec<crate::bench::multicore::MultiCoreRow>>,
    /// `uname -r`, CPU model, cores.
    pub machine: String,
    /// The veth flood benchmark, when asked for.
    pub flood: Option<Vec<crate::bench::flood::FloodResult>>,
    /// The load-balancer section, unless skipped (`--no-lb`).
    pub lb: Option<crate::bench::lb::LbReport>,
    /// The sampling section, unless skipped (`--no-observe`).
    pub observe: Option<crate::bench::observe::ObserveReport>,
    /// The user-space runtime section, when asked for (`--userspace`).
    pub userspace: Option<Vec<crate::bench::userspace::UserspaceResult>>,
    /// The runtime on two queues, one thread and `--threads`, when asked
    /// for (`--userspace-threads`).
    pub userspace_threads: Option<Vec<crate::bench::userspace_threads::ThreadsResult>>,
    /// The forwarding section, when asked for (`--forward`).
    pub forward: Option<Vec<crate::bench::forward::ForwardResult>>,
    /// The tunnel section, when asked for (`--tunnels`).
    pub tunnels: Option<crate::bench::tunnel::TunnelReport>,
}

impl BenchReport {
    /// Prints the report as a table.
    pub fn print(&self) {
        println!("machine: {}", self.machine);
        println!("method:  {}", self.method);
        println!("mix:     {}", self.mix.join(", "));
        println!();
        self.print_kernel();
        if let Some(reason) = &self.peer_skipped {
            println!("xdp-filter peer skipped: {reason}");
        }
        for reason in &self.skipped {
            println!("section not run: {reason}");
        }
        println!();
        println!(
            "native pipeline (1 core): {:.2} ns/packet, {:.1} Mpps over {} packets",
            self.native.ns_per_packet, self.native.mpps, self.native.packets
        );
        if let Some(rows) = &self.multicore {
            println!();
            crate::bench::multicore::print(rows);
        }
        if let Some(lb) = &self.lb {
            println!();
            lb.print();
        }
        if let Some(observe) = &self.observe {
            observe.print();
        }
        if let Some(tunnels) = &self.tunnels {
            tunnels.print();
        }
        self.print_forward();
        self.print_userspace();
        if let Some(rows) = &self.userspace_threads {
            crate::bench::userspace_threads::print(rows);
        }
        self.print_flood();
    }

    /// The kernel programs' table and their packets/s.
    fn print_kernel(&self) {
        println!(
            "{:<28} {:>10} {:>9} {:>14} {:>16} {:>9}",
            "KERNEL (BPF_PROG_TEST_RUN)",
            "ns/packet",
            "vs empty",
            "vs xdp-filter",
            "kernel-reported",
            "vs empty"
        );
        for result in &self.kernel {
            println!(
                "{:<28} {:>10.2} {:>8.2}x {:>14} {:>16.2} {:>8.2}x",
                result.program,
                result.ns_per_packet,
                result.ratio_to_empty,
                result
                    .ratio_to_xdp_filter
                    .map_or("-".into(), |ratio| format!("{ratio:.2}x")),
                result.kernel_reported_ns,
                result.kernel_reported_ratio_to_empty,
            );
        }
        println!(
            "packets/s (wall-clock): {}",
            self.kernel
                .iter()
                .map(|result| format!("{} {:.1} Mpps", result.program, 1e3 / result.ns_per_packet))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    /// The forwarding section, when it ran.
    fn print_forward(&self) {
        let Some(forward) = &self.forward else {
            return;
        };
        println!();
        println!(
            "FORWARDING over veth (live frames, h1 -> r -> h2) {:>10} {:>12} {:>12} {:>10}",
            "ns/packet", "packets/s", "vs redirect", "arrived"
        );
        for row in forward {
            println!(
                "{:<50} {:>10.1} {:>12.0} {:>11.2}x {:>9.0}%",
                row.program,
                row.ns_per_packet,
                row.packets_per_second,
                row.ratio_to_redirect,
                row.delivered_share * 100.0
            );
        }
    }

    /// The user-space runtime section, when it ran.
    fn print_userspace(&self) {
        let Some(userspace) = &self.userspace else {
            return;
        };
        println!();
        println!(
            "USER SPACE vs KERNEL (veth, frames B -> A, rule drop)      {:>9} {:>10} {:>14} {:>8} {:>8}",
            "received", "ns/packet", "packets/s/core", "ratio", "vs live"
        );
        for row in userspace {
            println!(
                "{:<58} {:>8.1}% {:>10.1} {:>14.0} {:>7.2}x {:>7.2}x",
                row.path,
                row.received_share * 100.0,
                row.ns_per_packet,
                row.packets_per_second,
                row.ratio_to_kernel,
                row.ratio_to_kernel_live
            );
        }
    }

    /// The flood section, when it ran.
    fn print_flood(&self) {
        let Some(flood) = &self.flood else {
            return;
        };
        println!();
        println!(
            "{:<12} {:>12} {:>12} {:>14} {:>10}",
            "FLOOD (veth)", "sent", "dropped", "dropped/s", "client"
        );
        for result in flood {
            println!(
                "{:<12} {:>12} {:>12} {:>14.0} {:>7}/{}",
                result.defender,
                result.sent,
                result.dropped,
                result.dropped_per_second,
                result.fetched,
                result.tried
            );
        }
    }
}
