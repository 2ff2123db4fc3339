#![forbid(unsafe_code)]
//! `entropy`: host command to see which entropy sources this machine has and how they test.
//!
//! ```text
//! entropy probe [--bytes N] [--trng PATH]... [--tpm-socket PATH]
//!     list sources, health-test them, run the policy
//! entropy dump <source> <file> <bytes> [--trng PATH] [--tpm-socket PATH]
//!     source: rdseed | rdrand | hwrng | tpm | trng | os
//!     writes raw samples (one byte per sample) for NIST's ea_non_iid
//! entropy assess <file> <1|8>
//!     the SP 800-90B estimates sherd credits a raw source by, over a sample file
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use entropy::health::{Cutoffs, HealthTester, Verdict};
use entropy::{Config, Policy, SerialTrngConfig, Source};
use zeroize::Zeroizing;

const USAGE: &str = "usage:
  entropy probe [--bytes N] [--trng PATH]... [--tpm-socket PATH]
      list the entropy sources on this machine, health-test each on N bytes (default 65536,
      1024 start-up samples included), measure throughput, then run the ceremony policy
  entropy dump <source> <file> <bytes> [--trng PATH] [--tpm-socket PATH]
      write <bytes> raw samples of one source to <file> for NIST ea_non_iid
      (then: ea_non_iid -v <file> 8); source is rdseed, rdrand, hwrng, tpm, trng or os
  entropy assess <file> <1|8>
      the SP 800-90B most-common-value, collision and Markov estimates sherd credits a raw
      source by, over a file of samples (8: one byte per sample; 1: each bit a sample)
  --tpm-socket PATH: use a TPM speaking raw TPM 2.0 commands on a unix socket (swtpm's
      --server type=unixio) instead of /dev/tpmrm0";

/// Options shared by the commands.
#[derive(Default)]
struct Opts {
    bytes: Option<usize>,
    tpm_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("probe") => probe(&args[1..]),
        Some("dump") => dump(&args[1..]),
        Some("assess") => assess(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("expected a command\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("entropy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Pulls the options out of the arguments; returns the rest.
fn options(args: &[String], config: &mut Config, opts: &mut Opts) -> Result<Vec<String>, String> {
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--trng" => {
                let p = it
                    .next()
                    .ok_or("--trng needs a path, e.g. --trng /dev/ttyACM0")?;
                config
                    .serial_trngs
                    .push(SerialTrngConfig::whitened(PathBuf::from(p)));
            }
            "--bytes" => {
                let n = it.next().ok_or("--bytes needs a number")?;
                opts.bytes = Some(
                    n.parse()
                        .map_err(|_| format!("--bytes {n:?}: not a number of bytes"))?,
                );
            }
            "--tpm-socket" => {
                let p = it.next().ok_or("--tpm-socket needs a path")?;
                opts.tpm_socket = Some(PathBuf::from(p));
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => rest.push(a.clone()),
        }
    }
    Ok(rest)
}

fn probe(args: &[String]) -> Result<(), String> {
    let mut config = Config::default();
    let mut opts = Opts::default();
    let rest = options(args, &mut config, &mut opts)?;
    if !rest.is_empty() {
        return Err(format!("probe takes no positional arguments\n{USAGE}"));
    }
    let bytes = opts.bytes.unwrap_or(65536);
    let policy = Policy::default();
    let mut found = entropy::discover_verbose(&config);
    if let Some(path) = &opts.tpm_socket {
        found.sources.insert(0, socket_tpm(path)?);
    }
    println!("sources found: {}", found.sources.len());
    for s in &found.sources {
        let i = s.info();
        println!(
            "  {} {} [{}, device {}, {} bits/sample, claimed H {}]",
            i.kind, i.identity, i.conditioning, i.device, i.sample_bits, i.claimed_h
        );
    }
    for a in &found.absent {
        println!("  not available: {}: {}", a.what, a.reason);
    }
    let mut sources = found.sources;
    println!(
        "\nhealth tests on {bytes} bytes per source (alpha {}):",
        policy.alpha
    );
    for s in sources.iter_mut() {
        probe_one(s.as_mut(), &policy, bytes);
    }
    println!(
        "\nceremony policy (gather with {} contribution bytes):",
        policy.contribution_bytes
    );
    let machine = entropy::Machine::detect();
    if let Some(why) = &machine.hypervisor {
        println!("this machine is virtual: {why}; its sources do not count as hardware");
    }
    match entropy::gather(&mut sources, &policy, &machine) {
        Ok((_drbg, report)) => {
            println!("{report}");
            println!("verdict: the DRBG would be seeded");
        }
        Err(e) => {
            if let Some(r) = e.report() {
                println!("{r}");
            }
            println!("verdict: REFUSED: {e}");
        }
    }
    Ok(())
}

fn probe_one(source: &mut dyn Source, policy: &Policy, bytes: usize) {
    let info = source.info().clone();
    println!("  {} {}", info.kind, info.identity);
    let cutoffs = match Cutoffs::new(info.claimed_h, info.sample_bits, policy.alpha) {
        Ok(c) => c,
        Err(e) => {
            println!("    invalid claim: {e}");
            return;
        }
    };
    println!("    {cutoffs}");
    let mut t = HealthTester::new(cutoffs, policy.startup_samples).expect("valid start-up size");
    let mut buf = Zeroizing::new(vec![0u8; 4096]);
    let start = Instant::now();
    let mut drawn = 0;
    while drawn < bytes {
        let n = (bytes - drawn).min(buf.len());
        if let Err(e) = source.fill(&mut buf[..n]) {
            println!("    read failed after {drawn} bytes: {e}");
            break;
        }
        drawn += n;
        if t.feed(&buf[..n]).is_err() {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "    drew {drawn} bytes in {secs:.3} s = {:.0} bytes/s",
        drawn as f64 / secs.max(1e-9)
    );
    println!(
        "    MCV min-entropy estimate: {} bits/sample over {} samples",
        t.mcv_estimate()
            .map(|h| format!("{h:.3}"))
            .unwrap_or_else(|| "-".into()),
        t.samples()
    );
    match t.verdict() {
        Verdict::Healthy => println!("    start-up and continuous RCT/APT: passed"),
        Verdict::StartingUp { seen, needed } => {
            println!("    start-up incomplete: {seen} of {needed} samples")
        }
        Verdict::Failed(f) => println!("    FAILED: {f}"),
    }
}

fn dump(args: &[String]) -> Result<(), String> {
    let mut config = Config::default();
    let mut opts = Opts::default();
    let rest = options(args, &mut config, &mut opts)?;
    let [name, file, count] = rest.as_slice() else {
        return Err(format!("dump needs <source> <file> <bytes>\n{USAGE}"));
    };
    let count: usize = count
        .parse()
        .map_err(|_| format!("{count:?} is not a number of bytes"))?;
    let mut source = match (name.as_str(), &opts.tpm_socket) {
        ("tpm", Some(path)) => socket_tpm(path)?,
        _ => open_named(name, &config)?,
    };
    let info = source.info().clone();
    let mut out = std::fs::File::create(file).map_err(|e| format!("cannot create {file}: {e}"))?;
    let mut buf = Zeroizing::new(vec![0u8; 4096]);
    let start = Instant::now();
    let mut done = 0;
    while done < count {
        let n = (count - done).min(buf.len());
        source
            .fill(&mut buf[..n])
            .map_err(|e| format!("{} after {done} bytes: {e}", info.identity))?;
        out.write_all(&buf[..n])
            .map_err(|e| format!("writing {file}: {e}"))?;
        done += n;
    }
    out.sync_all().map_err(|e| format!("syncing {file}: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "wrote {done} raw {}-bit samples of {} {} ({}) to {file} in {secs:.3} s ({:.0} bytes/s)\n\
         assess with: ea_non_iid -v {file} {}",
        info.sample_bits,
        info.kind,
        info.identity,
        info.conditioning,
        done as f64 / secs.max(1e-9),
        info.sample_bits
    );
    Ok(())
}

/// A TPM on a unix socket (swtpm): a TPM of its own, not the machine's chip.
fn socket_tpm(path: &std::path::Path) -> Result<Box<dyn Source>, String> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to the TPM socket {}: {e}", path.display()))?;
    let location = path.display().to_string();
    let device = entropy::DeviceKey(format!("tpm-socket:{location}"));
    let tpm = entropy::TpmSource::new(stream, &location, device)
        .map_err(|e| format!("TPM on {location}: {e}"))?;
    Ok(Box::new(tpm))
}

fn open_named(name: &str, config: &Config) -> Result<Box<dyn Source>, String> {
    let e = |e: entropy::SourceError| format!("{name}: {e}");
    Ok(match name {
        "rdseed" => {
            let s = entropy::CpuSource::open().map_err(e)?;
            if s.info().kind != entropy::SourceKind::CpuRdseed {
                return Err("this CPU has no RDSEED; use rdrand".into());
            }
            Box::new(s)
        }
        "rdrand" => Box::new(entropy::CpuSource::open_rdrand().map_err(e)?),
        "hwrng" => Box::new(
            entropy::HwrngSource::open(
                &config.dev_dir.join("hwrng"),
                &config.sysfs_dir.join("class/misc/hw_random"),
            )
            .map_err(e)?,
        ),
        "tpm" => {
            let rm = config.dev_dir.join("tpmrm0");
            let path = if rm.exists() {
                rm
            } else {
                config.dev_dir.join("tpm0")
            };
            Box::new(entropy::TpmSource::open_device(&path).map_err(e)?)
        }
        "trng" => {
            let c = match config.serial_trngs.first() {
                Some(c) => c.clone(),
                None => SerialTrngConfig::whitened(
                    entropy::sources::serial::find_known_trngs(&config.dev_dir, &config.sysfs_dir)
                        .into_iter()
                        .next()
                        .ok_or("no known USB TRNG found; give its tty with --trng PATH")?,
                ),
            };
            Box::new(entropy::SerialTrngSource::open(&c, &config.sysfs_dir).map_err(e)?)
        }
        "os" => Box::new(entropy::OsCsprng::new()),
        other => {
            return Err(format!(
                "unknown source {other:?}; use rdseed, rdrand, hwrng, tpm, trng or os"
            ));
        }
    })
}

fn assess(args: &[String]) -> Result<(), String> {
    let [file, bits] = args else {
        return Err(format!("assess takes a file and 1 or 8\n{USAGE}"));
    };
    let sample_bits: u32 = match bits.as_str() {
        "1" => 1,
        "8" => 8,
        _ => return Err(format!("{bits:?}: bits per sample must be 1 or 8")),
    };
    let data = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let e = entropy::estimate::assess(&data, sample_bits)
        .ok_or_else(|| format!("{file}: fewer than 2 samples"))?;
    println!("samples: {}", e.samples);
    if sample_bits == 8 {
        println!("most common value (H_original): {:.6} bits/sample", e.mcv);
    }
    println!("bit string, most common value: {:.6} bits/bit", e.bit_mcv);
    println!("bit string, collision: {:.6} bits/bit", e.bit_collision);
    println!("bit string, Markov: {:.6} bits/bit", e.bit_markov);
    println!("assessed: {:.6} bits/sample", e.per_sample());
    if (e.samples as usize) < entropy::estimate::ASSESSMENT_SAMPLES {
        println!(
            "note: fewer than {} samples; SP 800-90B asks for at least that many",
            entropy::estimate::ASSESSMENT_SAMPLES
        );
    }
    Ok(())
}
