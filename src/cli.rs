//! The command line (clap), turned into a [`Config`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::Config;

/// rangeserve: an HTTP file server that gets byte ranges exactly right.
#[derive(Debug, Parser)]
#[command(name = "rangeserve", version, about, long_about = None)]
pub struct Cli {
    /// Directory to serve.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Address to bind.
    #[arg(
        short = 'b',
        long = "bind",
        value_name = "ADDR",
        default_value = "127.0.0.1"
    )]
    pub bind: IpAddr,
    /// Port to listen on; 0 picks any free port (the real one is printed).
    #[arg(short = 'p', long = "port", value_name = "N", default_value_t = 8080)]
    pub port: u16,
    /// Answer 404 for directories without index.html instead of listing them.
    #[arg(long)]
    pub no_listing: bool,
    /// Log only warnings and errors (no per-request lines).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Most ranges served in one response, after coalescing; more and the Range header is ignored (200).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_ranges: u16,
    /// Cache-Control value sent with files.
    #[arg(long, value_name = "VALUE", default_value = crate::config::DEFAULT_CACHE_CONTROL)]
    pub cache_control: String,
    /// Keep content hashes (ETags) in FILE so they survive restarts.
    #[arg(long, value_name = "FILE")]
    pub etag_cache: Option<PathBuf>,
    /// Hash every file at start-up, in the background, with progress on stderr.
    #[arg(long)]
    pub prehash: bool,
}

impl Cli {
    /// The server options this command line asks for.
    pub fn config(&self) -> Config {
        Config {
            root: self.dir.clone(),
            bind: self.bind,
            port: self.port,
            listing: !self.no_listing,
            max_ranges: usize::from(self.max_ranges),
            cache_control: self.cache_control.clone(),
            etag_cache: self.etag_cache.clone(),
            prehash: self.prehash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let cli = Cli::try_parse_from(["rangeserve"]).unwrap();
        assert_eq!(cli.config(), Config::default());
        let cli = Cli::try_parse_from([
            "rangeserve",
            "-b",
            "::1",
            "-p",
            "0",
            "--no-listing",
            "-q",
            "--max-ranges",
            "3",
            "dir",
        ])
        .unwrap();
        let c = cli.config();
        assert_eq!(
            (c.bind.to_string(), c.port, c.listing, c.max_ranges),
            ("::1".into(), 0, false, 3)
        );
        assert_eq!(c.root, PathBuf::from("dir"));
        assert!(cli.quiet);
        assert!(Cli::try_parse_from(["rangeserve", "-b", "nonsense"]).is_err());
        assert!(Cli::try_parse_from(["rangeserve", "--max-ranges", "0"]).is_err());
    }
}
