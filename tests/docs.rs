//! The README's quirk table and `--list-quirks` come from the one catalogue
//! in the code; this keeps the README from drifting.

use rangeserve::quirks::catalogue;

#[test]
fn readme_quirk_table_is_the_catalogue() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start =
        "<!-- quirk-table: generated from src/quirks/catalogue.rs; tests/docs.rs checks it -->\n";
    let end = "<!-- /quirk-table -->";
    let from = readme
        .find(start)
        .expect("README has the quirk-table markers")
        + start.len();
    let to = readme[from..].find(end).expect("closing marker") + from;
    let table = catalogue::markdown_table();
    if readme[from..to] != table {
        // regenerate with: RANGESERVE_WRITE_README=1 cargo test --test docs
        if std::env::var_os("RANGESERVE_WRITE_README").is_some() {
            let new = format!("{}{}{}", &readme[..from], table, &readme[to..]);
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"), new).unwrap();
        } else {
            panic!("README quirk table is out of date; run RANGESERVE_WRITE_README=1 cargo test --test docs");
        }
    }
}

#[test]
fn list_quirks_prints_the_catalogue() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rangeserve"))
        .arg("--list-quirks")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, catalogue::text());
    for q in catalogue::CATALOGUE {
        assert!(
            text.contains(q.name) && text.contains(q.emulates),
            "{}",
            q.name
        );
    }
}

#[test]
fn a_bad_global_quirk_is_one_line_and_exit_2() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rangeserve"))
        .args(["--quirk", "no-etag,bogus", "-p", "0", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unknown quirk \"bogus\"") && err.contains("valid quirks: no-etag,"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn every_long_option_in_help_is_in_the_readme() {
    options_in_help_are_in_the_readme(&["--help"], 20);
}

/// `rangeserve probe --help` too: its options are documented in "Probe a server".
#[test]
fn every_probe_option_in_help_is_in_the_readme() {
    options_in_help_are_in_the_readme(&["probe", "--help"], 5);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## Probe a server").expect("the probe section")..];
    for option in ["--json", "--timeout", "--insecure", "--cacert"] {
        assert!(
            section.contains(option),
            "{option} is not in \"Probe a server\""
        );
    }
}

fn options_in_help_are_in_the_readme(args: &[&str], at_least: usize) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_rangeserve"))
        .args(args)
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let options: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-')))
        .collect();
    assert!(options.len() > at_least, "{help}");
    for option in options {
        assert!(
            readme.contains(option),
            "{option} is in --help but not in README.md"
        );
    }
}
