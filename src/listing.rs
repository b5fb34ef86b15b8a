//! Directory listings: reading a directory's servable entries and rendering
//! them as an HTML page (names HTML-escaped, links percent-encoded).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use crate::fs::Root;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name, as on disk.
    pub name: OsString,
    /// Whether it is a directory (links get a trailing `/`).
    pub is_dir: bool,
    /// Size in bytes (files only).
    pub size: u64,
    /// Modification time.
    pub modified: SystemTime,
}

/// Read `dir`'s entries that would be served: regular files and directories
/// (after following symlinks) that `root` admits (see [`Root::admits`]: not
/// hidden, inside the root, unless its policy says otherwise). Sorted:
/// directories first, then by name. Blocking.
pub fn read_entries(dir: &Path, root: &Root) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let at_top = dir == root.path();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        if !root.access().hidden && crate::fs::is_hidden(&item.file_name(), at_top) {
            continue;
        }
        let path = item.path();
        let (Ok(real), Ok(meta)) = (path.canonicalize(), std::fs::metadata(&path)) else {
            continue; // dangling symlink, or vanished since read_dir
        };
        if !root.admits(&real) || !(meta.is_file() || meta.is_dir()) {
            continue;
        }
        entries.push(Entry {
            name: item.file_name(),
            is_dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    Ok(entries)
}

/// Characters left as they are in a link: RFC 3986 unreserved.
const LINK: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Escape text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a file name for use as a relative link.
pub fn encode_link(name: &std::ffi::OsStr) -> String {
    // file names may not be UTF-8: encode their bytes
    percent_encoding::percent_encode(name.as_bytes(), LINK).to_string()
}

/// `n` bytes for people: `69 B`, `9.8 KiB`, `1.0 GiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Render the listing page for the directory at (decoded) URL path `url_path`.
pub fn render(url_path: &str, entries: &[Entry]) -> String {
    let title = escape_html(url_path);
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Index of {title}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}}\n\
         h1{{font-size:1.3rem;font-weight:600;word-break:break-all}}\n\
         table{{border-collapse:collapse;width:100%}}\n\
         th,td{{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e4e4}}\n\
         th{{font-weight:600;color:#555;font-size:.85rem}}\n\
         td.size,th.size{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}\n\
         td.date{{white-space:nowrap;color:#555;font-variant-numeric:tabular-nums}}\n\
         a{{color:#0b57d0;text-decoration:none;word-break:break-all}}a:hover{{text-decoration:underline}}\n\
         footer{{margin-top:1rem;color:#888;font-size:.8rem}}\n\
         </style>\n</head>\n<body>\n<h1>Index of {title}</h1>\n<table>\n\
         <thead><tr><th>Name</th><th class=\"size\">Size</th><th>Modified</th></tr></thead>\n<tbody>\n"
    );
    if url_path != "/" {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td class=\"size\">-</td><td class=\"date\"></td></tr>\n");
    }
    for e in entries {
        let slash = if e.is_dir { "/" } else { "" };
        let href = format!("{}{slash}", encode_link(&e.name));
        let name = format!("{}{slash}", escape_html(&e.name.to_string_lossy()));
        let size = if e.is_dir {
            "-".to_string()
        } else {
            human_size(e.size)
        };
        let date = httpdate::fmt_http_date(e.modified);
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{href}\">{name}</a></td><td class=\"size\" title=\"{} bytes\">{size}</td><td class=\"date\">{date}</td></tr>",
            e.size
        );
    }
    let _ = write!(
        html,
        "</tbody>\n</table>\n<footer>{} entries &middot; served by rangeserve {}</footer>\n</body>\n</html>\n",
        entries.len(),
        env!("CARGO_PKG_VERSION")
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let e = Entry {
            name: OsString::from("<b>&\"x y\".txt"),
            is_dir: false,
            size: 5,
            modified: SystemTime::UNIX_EPOCH,
        };
        let html = render("/a<b>/", &[e]);
        assert!(
            html.contains(
                "<a href=\"%3Cb%3E%26%22x%20y%22.txt\">&lt;b&gt;&amp;&quot;x y&quot;.txt</a>"
            ),
            "{html}"
        );
        assert!(html.contains("Index of /a&lt;b&gt;/"));
        assert!(html.contains("<a href=\"../\">"));
        assert!(!render("/", &[]).contains("../"));
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }
}
