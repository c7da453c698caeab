//! The argument vectors of the CLI fuzz: a subcommand of
//! [`super::grammar`] in turn, values drawn from pools of valid, nearly
//! valid and hostile text, then the vector mutated. Deterministic: the
//! same seed gives the same vectors.

use std::path::PathBuf;

use super::grammar::Kind::{self, *};
use super::grammar::SPECS;

/// The files the vectors name, in a directory removed on drop.
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    /// Writes good and bad rule files, configs and a capture, and a FIFO.
    pub fn create(number: u32) -> Self {
        let dir =
            std::env::temp_dir().join(format!("xdpath-cli-fuzz-{}-{number}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fuzz dir");
        let write = |name: &str, contents: &[u8]| {
            std::fs::write(dir.join(name), contents).expect("write a fuzz file");
        };
        write(
            "good.rules",
            b"192.0.2.0/24\n--src 198.51.100.0/24 --proto tcp --dport 22 --action pass\n",
        );
        write("bad.rules", b"192.0.2.0/24\n10.0.0.300/8\n");
        write("option.rules", b"--src 10.0.0.0/8 --bogus --action drop\n");
        write("hostile.rules", b"10.0.0.0/8\0\x1b[2J\n");
        let mut long = b"# long\n".to_vec();
        long.extend(std::iter::repeat_n(b'9', 20_000));
        write("long.rules", &long);
        write(
            "good.toml",
            b"[[filter.rule]]\nid = 1\nsrc = \"192.0.2.0/24\"\naction = \"drop\"\n",
        );
        write(
            "bad.toml",
            b"[[filter.rule]]\nid = 1\nsrc = \"1.2.3.4/8\"\naction = \"drop\"\n",
        );
        write("syntax.toml", b"[[filter.rule]\nid = \n");
        let mut pcap =
            xdpath::pcap::PcapWriter::new(Vec::new(), xdpath::pcap::Precision::Microsecond)
                .expect("pcap writer");
        let time = xdpath::pcap::Timestamp {
            seconds: 1,
            fraction: 0,
            precision: xdpath::pcap::Precision::Microsecond,
        };
        pcap.write_frame(time, 60, &[0xff; 60]).expect("a frame");
        write("good.pcap", &pcap.finish().expect("pcap"));
        let fifo = std::ffi::CString::new(dir.join("fifo").into_os_string().into_encoded_bytes())
            .expect("path");
        // SAFETY: mkfifo reads a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo");
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SplitMix64: small, deterministic, good enough to pick from pools.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, pool: &[&'a str]) -> &'a str {
        pool[self.below(pool.len())]
    }
}

/// Makes the vectors.
pub struct Generator {
    random: Random,
    interface: String,
    files: Vec<(Kind, Vec<String>)>,
    next_spec: usize,
}

impl Generator {
    /// A generator for `interface` (the attached one) and `files`.
    pub fn new(seed: u64, interface: &str, files: &Files) -> Self {
        let inputs = |names: &[&str]| -> Vec<String> {
            let mut paths: Vec<String> = names.iter().map(|name| files.path(name)).collect();
            paths.extend(["/dev/zero", "/nonexistent/input", "/tmp"].map(String::from));
            paths.push(files.path("fifo"));
            paths
        };
        Self {
            random: Random(seed),
            interface: interface.to_string(),
            files: vec![
                (
                    RulesIn,
                    inputs(&[
                        "good.rules",
                        "bad.rules",
                        "option.rules",
                        "hostile.rules",
                        "long.rules",
                    ]),
                ),
                (
                    ConfigIn,
                    inputs(&["good.toml", "bad.toml", "syntax.toml", "good.rules"]),
                ),
                (CaptureIn, inputs(&["good.pcap", "good.rules"])),
                (
                    Out,
                    vec![
                        files.path("out.pcap"),
                        files.path("out.pcapng"),
                        files.path(""),
                        "/nonexistent/out".into(),
                    ],
                ),
            ],
            next_spec: 0,
        }
    }

    /// The next vector: each subcommand in turn, values drawn, then
    /// mutated. Returns the subcommand's name and the arguments.
    pub fn next_vector(&mut self) -> (String, Vec<String>) {
        let spec = &SPECS[self.next_spec % SPECS.len()];
        self.next_spec += 1;
        let mut args: Vec<String> = spec.path.iter().map(|word| word.to_string()).collect();
        for &kind in spec.positionals {
            // `demo` without its junk argument would run the demo.
            if spec.path == ["demo"] || !self.random.chance(8) {
                args.push(self.value(kind));
            }
        }
        for _ in 0..self.random.below(4) {
            let (name, kind) = spec.options[self.random.below(spec.options.len().max(1))..]
                .first()
                .copied()
                .unwrap_or(("--json", None));
            args.push(name.to_string());
            if let Some(kind) = kind {
                args.push(self.value(kind));
            }
        }
        self.mutate(&mut args, spec.path.len());
        // The bounds last and untouched: they keep long commands short.
        for &(name, kind) in spec.bound {
            args.push(name.to_string());
            if !matches!(kind, Flag) {
                args.push(self.value(kind));
            }
        }
        if self.random.chance(10) {
            args.push("--json".into());
        }
        (spec.path.join(" "), args)
    }

    fn mutate(&mut self, args: &mut Vec<String>, words: usize) {
        if self.random.chance(6) {
            let at = self.random.below(args.len() + 1);
            let junk = self.junk();
            args.insert(at, junk);
        }
        if self.random.chance(4) && args.len() > words {
            let at = words + self.random.below(args.len() - words);
            let value = self.junk();
            // A junk `--confirm` could be a valid one, which would leave
            // a rollback waiter behind.
            if !args[at].starts_with('-') && args[at - 1] != "--confirm" {
                args[at] = value;
            }
        }
        if self.random.chance(3) {
            args[0] = self
                .random
                .pick(&["fliter", "atach", "", "-", "--", "help", "--bogus"])
                .into();
        }
    }

    fn junk(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "9",
            "-",
            "--",
            "/",
            ":",
            ".",
            ",",
            "!",
            " ",
            "\n",
            "\t",
            "\r",
            "\u{1b}[2J",
            "é",
            "\u{202e}",
            "%0A",
            "\"",
            "\\",
            "=",
            "*",
            "[",
            "]",
            "\u{7f}",
            "1e400",
            "ffff",
        ];
        if self.random.chance(5) {
            return "x\n".repeat(3000);
        }
        let length = self.random.below(12);
        (0..length).map(|_| self.random.pick(PIECES)).collect()
    }

    fn value(&mut self, kind: Kind) -> String {
        if self.random.chance(10)
            && !matches!(
                kind,
                Seconds | Interval | Iterations | BadBenchCount | Confirm | Out | Collector
            )
        {
            return self.junk();
        }
        if let Some((_, paths)) = self.files.iter().find(|(file_kind, _)| {
            std::mem::discriminant(file_kind) == std::mem::discriminant(&kind)
        }) {
            let index = self.random.below(paths.len());
            return paths[index].clone();
        }
        let interface = self.interface.clone();
        let pool: &[&str] = match kind {
            Interface => &[
                "",
                "lo",
                "xdpt-missing0",
                "..",
                ".",
                ":shared",
                "a/b",
                "eth0\nx",
                "sixteen-chars-xx",
            ],
            Cidr => &[
                "10.0.0.0/8",
                "192.0.2.0/24",
                "2001:db8::/32",
                "0.0.0.0/0",
                "1.2.3.4/8",
                "10.0.0.0/08",
                "010.0.0.0/8",
                "10.0.0.300/8",
                "10.0.0.0/33",
                "::/129",
                "1.2.3.4",
                "none",
                "",
                "/",
                "1.2.3.4/",
                "fe80::1%eth0/64",
                "::ffff:1.2.3.4/128",
            ],
            Port | Count => &[
                "0",
                "1",
                "22",
                "80",
                "65535",
                "65536",
                "-1",
                "1-2",
                "2-1",
                "",
                "abc",
                "4294967296",
                "18446744073709551616",
                "99999999999999999999999",
                "1e3",
                "+5",
                " 7 ",
            ],
            PortList => &[
                "53,123",
                "",
                ",",
                "80,443,1000-2000",
                "1-",
                "-1",
                "70000",
                "a,b",
            ],
            Proto => &["tcp", "udp", "icmp", "icmpv6", "6", "256", "TCP", "gre", ""],
            TcpFlags => &[
                "syn,!ack",
                "syn,syn",
                "bogus",
                "",
                "!",
                "fin,syn,rst,psh,ack,urg",
            ],
            Action | Per | OnOff | Fragment | Switch | Health | Encap | Mode | Malformed
            | Verdict | ExportProtocol => &[
                "drop",
                "pass",
                "deny",
                "src",
                "dst",
                "on",
                "off",
                "drop-later",
                "drop-all",
                "enable",
                "disable",
                "tcp",
                "http",
                "ipip",
                "gue",
                "auto",
                "native",
                "generic",
                "offload",
                "all",
                "tx",
                "redirect",
                "sflow",
                "ipfix",
                "maybe",
            ],
            Ttl => &[
                "30s",
                "10m",
                "1h",
                "2d",
                "0",
                "0s",
                "3650d",
                "3651d",
                "99999999999999999d",
                "1y",
                "-5m",
                "",
            ],
            Confirm => &["0", "0s", "99999d", "x", "", "-1s", "1y"],
            Seconds => &[
                "0.05",
                "0.2",
                "0",
                "-1",
                "NaN",
                "inf",
                "1e300",
                "18446744073709551616",
                "1e-9",
                "soon",
            ],
            Interval => &[
                "0.05",
                "0.01",
                "0",
                "-1",
                "NaN",
                "inf",
                "18446744073709551616",
                "1e-3",
            ],
            Iterations => &["1", "2", "0", "-1", "x", "18446744073709551616"],
            Id => &["1", "0", "-1", "4294967296", "abc", ""],
            Vip => &[
                "203.0.113.10:80/tcp",
                "[2001:db8::10]:443/udp",
                "203.0.113.10:*/udp",
                "255.255.255.255:80/tcp",
                "0.0.0.0:80/tcp",
                "224.0.0.1:80/udp",
                "203.0.113.10/tcp",
                "203.0.113.10:65536/tcp",
                "[::1]:80",
                "",
            ],
            Address => &[
                "10.0.0.1",
                "2001:db8::1",
                "127.0.0.1",
                "::1",
                "255.255.255.255",
                "0.0.0.0",
                "224.0.0.5",
                "10.0.0.300",
                "",
            ],
            Mac => &[
                "fib",
                "02:00:00:00:00:01",
                "01:00:5e:00:00:01",
                "00:00:00:00:00:00",
                "zz",
                "",
            ],
            Rate => &["off", "0", "1", "100", "16777216", "16777217", "-1", "lots"],
            Cpus => &["all", "0", "0-1", "1-0", "999", "", ",", "0-4294967295"],
            Reason => &["rule-deny", "blocklisted", "ipv4-tcp", "nonsense", ""],
            Collector => &[
                "127.0.0.1:6343",
                "127.0.0.1:4739",
                "[::1]:6343",
                "127.0.0.1",
                "nowhere",
            ],
            Millis => &[
                "500ms",
                "2s",
                "1m",
                "0",
                "9ms",
                "99999999999999999999m",
                "x",
            ],
            VipFlags => &[
                "source-hash",
                "no-conntrack",
                "source-hash,no-conntrack",
                "bogus",
                "",
            ],
            BadBenchCount => &["0", "1001", "-1", "x"],
            Word => &["tap", "drop", "/health", "/", "a b", "x"],
            RulesIn | ConfigIn | CaptureIn | Out | Flag => &[],
        };
        if matches!(kind, Interface) && self.random.chance(60) {
            return interface;
        }
        self.random.pick(pool).to_string()
    }
}
