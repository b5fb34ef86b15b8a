//! The `rangeserve probe` command line: parse it, probe, print the report
//! (text or JSON) on stdout, and turn the outcome into the exit status:
//! 0 resume is safe, 1 it is not, 2 the probe could not run (one line on stderr).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::tls::Trust;
use super::Options;

/// Diagnose how a server handles byte ranges: PASS/WARN/FAIL per check, the
/// catalogued quirks it has, and whether resuming downloads from it is safe.
/// Exit status: 0 safe, 1 unsafe, 2 the probe could not run.
#[derive(Debug, Parser)]
#[command(name = "rangeserve probe", bin_name = "rangeserve probe", version, long_about = None)]
pub struct ProbeCli {
    /// URL of a file on the server (http:// or https://); redirects are reported, not followed.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Print the report as one JSON document (fields: README, "Probe a server").
    #[arg(long)]
    pub json: bool,
    /// Seconds one request may take; a body that stops for half of that is reported as stall-after.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// HTTPS: accept any certificate (self-signed test servers).
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// HTTPS: trust only the certificates in this PEM file (instead of the system's).
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub cacert: Option<PathBuf>,
}

impl ProbeCli {
    /// The probe options this command line asks for.
    pub fn options(&self) -> Options {
        Options {
            timeout: Duration::from_secs(self.timeout),
            trust: match (&self.cacert, self.insecure) {
                (Some(f), _) => Trust::File(f.clone()),
                (None, true) => Trust::Anything,
                (None, false) => Trust::System,
            },
        }
    }
}

/// Run `rangeserve probe ARGS...` (`args` starts with `probe`); returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let cli = ProbeCli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rangeserve probe: error: cannot start the runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(super::probe(&cli.url, &cli.options())) {
        Ok(report) => {
            if cli.json {
                println!("{:#}", report.json());
            } else {
                print!("{}", report.text());
            }
            report.exit_code()
        }
        Err(e) => {
            eprintln!("rangeserve probe: error: {e}");
            2
        }
    }
}
