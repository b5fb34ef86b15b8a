//! Directory listings: reading a directory's servable entries and rendering
//! them as an HTML page (names HTML-escaped, links percent-encoded).

use std::collections::BinaryHeap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
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
    /// Modification time (`UNIX_EPOCH` when unknown: an object store's
    /// "directories" have none, and the page shows no date for them).
    pub modified: SystemTime,
}

/// Entries per listing page: what one listing request holds in memory,
/// whatever the directory's size.
pub const PAGE_ENTRIES: usize = 1000;

/// Where a listing page starts: after this entry, in listing order
/// (directories first, then by name bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Directories sort before files.
    is_file: bool,
    name: OsString,
}

impl Cursor {
    /// The `after=` query value that resumes a listing after this entry.
    pub fn encode(&self) -> String {
        let kind = if self.is_file { 'f' } else { 'd' };
        format!("{kind}/{}", encode_link(&self.name))
    }

    /// Parse an `after=` value (percent-decoded here). Pure.
    pub fn decode(value: &str) -> Option<Cursor> {
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
        let (is_file, name) = match bytes.split_first_chunk::<2>()? {
            (b"d/", name) => (false, name),
            (b"f/", name) => (true, name),
            _ => return None,
        };
        Some(Cursor {
            is_file,
            name: OsString::from_vec(name.to_vec()),
        })
    }

    /// The cursor of the `after` parameter of a query string, if any.
    pub fn from_query(query: Option<&str>) -> Option<Cursor> {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("after="))
            .and_then(Cursor::decode)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// At most the page size, in listing order.
    pub entries: Vec<Entry>,
    /// Where the next page starts, if there are more entries.
    pub next: Option<Cursor>,
    /// How many entries come after this page.
    pub more: usize,
}

impl Cursor {
    /// A cursor before every file and after every directory: a page read
    /// after it holds files only.
    pub fn files_only() -> Cursor {
        Cursor {
            is_file: true,
            name: OsString::new(),
        }
    }
}

/// Read one page of `dir`'s entries that would be served: regular files and
/// directories (after following symlinks) that `root` admits (see
/// [`Root::admits`]: not hidden, inside the root, unless its policy says
/// otherwise), in listing order (directories first, then by name), the
/// first `limit` after `after`.
///
/// Memory is bounded by `limit` whatever the directory's size: one pass
/// over the directory keeps only the `limit + 1` smallest names (a heap),
/// and only entries of the page are stat'ed. Names come with their type
/// from the directory itself; only symlinks are resolved during the pass.
/// Blocking.
pub fn read_page(
    dir: &Path,
    root: &Root,
    after: Option<&Cursor>,
    limit: usize,
) -> io::Result<Page> {
    let at_top = dir == root.path();
    let mut smallest: BinaryHeap<Cursor> = BinaryHeap::new();
    let mut admitted = 0usize;
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        if !root.access().hidden && crate::fs::is_hidden(&name, at_top) {
            continue;
        }
        let is_file = match item.file_type() {
            Ok(t) if t.is_dir() => false,
            Ok(t) if t.is_file() => true,
            Ok(t) if t.is_symlink() => {
                let path = item.path();
                let (Ok(real), Ok(meta)) = (path.canonicalize(), std::fs::metadata(&path)) else {
                    continue; // dangling symlink, or vanished since read_dir
                };
                if !root.admits(&real) || !(meta.is_file() || meta.is_dir()) {
                    continue;
                }
                meta.is_file()
            }
            _ => continue, // FIFOs, sockets, devices are never served
        };
        let key = Cursor { is_file, name };
        if after.is_some_and(|a| &key <= a) {
            continue;
        }
        admitted += 1;
        if smallest.len() <= limit {
            smallest.push(key);
        } else if smallest.peek().is_some_and(|top| &key < top) {
            smallest.pop();
            smallest.push(key);
        }
    }
    let mut keys = smallest.into_sorted_vec();
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next = if more { keys.last().cloned() } else { None };
    let entries = keys
        .into_iter()
        .filter_map(|k| {
            let meta = std::fs::metadata(dir.join(&k.name)).ok()?;
            Some(Entry {
                is_dir: !k.is_file,
                size: if k.is_file { meta.len() } else { 0 },
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                name: k.name,
            })
        })
        .collect();
    Ok(Page {
        entries,
        next,
        more: admitted.saturating_sub(limit),
    })
}

/// One page of `entries` (all of a directory's, in any order): sorted in
/// listing order, the first `limit` after `after`. Pure; for listings that
/// arrive whole (an object store's).
pub fn page_of(entries: Vec<Entry>, after: Option<&Cursor>, limit: usize) -> Page {
    let key = |e: &Entry| Cursor {
        is_file: !e.is_dir,
        name: e.name.clone(),
    };
    let mut entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| after.is_none_or(|a| &key(e) > a))
        .collect();
    entries.sort_by_cached_key(key);
    let more = entries.len().saturating_sub(limit);
    entries.truncate(limit);
    let next = if more > 0 {
        entries.last().map(key)
    } else {
        None
    };
    Page {
        entries,
        next,
        more,
    }
}

/// All of `dir`'s servable entries, in listing order (see [`read_page`]).
/// Blocking; memory grows with the directory. (Tests only: the server pages.)
#[cfg(test)]
pub fn read_entries(dir: &Path, root: &Root) -> io::Result<Vec<Entry>> {
    read_page(dir, root, None, usize::MAX - 1).map(|p| p.entries)
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
pub fn render(
    url_path: &str,
    entries: &[Entry],
    after: Option<&Cursor>,
    next: Option<&Cursor>,
) -> String {
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
         nav{{margin-top:1rem;display:flex;gap:1.5rem}}\n\
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
        let date = if e.is_dir && e.modified == SystemTime::UNIX_EPOCH {
            String::new()
        } else {
            httpdate::fmt_http_date(e.modified)
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{href}\">{name}</a></td><td class=\"size\" title=\"{} bytes\">{size}</td><td class=\"date\">{date}</td></tr>",
            e.size
        );
    }
    html.push_str("</tbody>\n</table>\n");
    if after.is_some() || next.is_some() {
        html.push_str("<nav id=\"pages\">");
        if after.is_some() {
            html.push_str("<a href=\"./\">&larr; First page</a> ");
        }
        if let Some(next) = next {
            let _ = write!(
                html,
                "<a rel=\"next\" href=\"?after={}\">Next {PAGE_ENTRIES} entries &rarr;</a>",
                escape_html(&next.encode())
            );
        }
        html.push_str("</nav>\n");
    }
    let _ = write!(
        html,
        "<footer>{} entries{} &middot; served by rangeserve {}</footer>\n</body>\n</html>\n",
        entries.len(),
        if next.is_some() { " on this page" } else { "" },
        env!("CARGO_PKG_VERSION")
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_through_the_query() {
        for (is_file, name) in [
            (false, &b"dir"[..]),
            (true, b"a b&c=d.txt"),
            (true, b"\xff\xfe not utf-8"),
            (true, b""),
        ] {
            let c = Cursor {
                is_file,
                name: OsString::from_vec(name.to_vec()),
            };
            let query = format!("x=1&after={}&y=2", c.encode());
            assert_eq!(Cursor::from_query(Some(&query)), Some(c));
        }
        for bad in ["after=", "after=x/a", "after=f", "other=f/a"] {
            assert_eq!(Cursor::from_query(Some(bad)), None, "{bad}");
        }
        assert_eq!(Cursor::from_query(None), None);
    }

    #[test]
    fn pages_cover_every_entry_once_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let mut want = Vec::new();
        for i in 0..7 {
            std::fs::create_dir(dir.join(format!("d{i}"))).unwrap();
            want.push(format!("d{i}/"));
        }
        for i in 0..25 {
            std::fs::write(dir.join(format!("f{i:02}")), b"x").unwrap();
            want.push(format!("f{i:02}"));
        }
        std::fs::write(dir.join(".hidden"), b"x").unwrap();
        let root = Root::new(&dir).unwrap();
        let mut got = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = read_page(&dir, &root, after.as_ref(), 10).unwrap();
            assert!(page.entries.len() <= 10);
            pages += 1;
            for e in &page.entries {
                let slash = if e.is_dir { "/" } else { "" };
                got.push(format!("{}{slash}", e.name.to_string_lossy()));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(got, want, "directories first, then names, each once");
        assert_eq!(pages, 4);
        let first = read_page(&dir, &root, None, 10).unwrap();
        assert_eq!(first.more, 22);
        let files = read_page(&dir, &root, Some(&Cursor::files_only()), 5).unwrap();
        assert!(files.entries.iter().all(|e| !e.is_dir));
        assert_eq!(files.entries[0].name, "f00");
        assert_eq!(files.more, 20);
        assert_eq!(read_entries(&dir, &root).unwrap().len(), 32);
    }

    #[test]
    fn pages_of_a_whole_listing_match_read_page_order() {
        let entry = |name: &str, is_dir| Entry {
            name: OsString::from(name),
            is_dir,
            size: 1,
            modified: SystemTime::UNIX_EPOCH,
        };
        let all = vec![
            entry("b", false),
            entry("z", true),
            entry("a", false),
            entry("c", false),
            entry("y", true),
        ];
        let first = page_of(all.clone(), None, 3);
        let names: Vec<_> = first.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["y", "z", "a"]);
        assert_eq!(first.more, 2);
        let second = page_of(all, first.next.as_ref(), 3);
        let names: Vec<_> = second.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!((second.more, second.next), (0, None));
    }

    #[test]
    fn names_are_escaped_and_links_encoded() {
        let e = Entry {
            name: OsString::from("<b>&\"x y\".txt"),
            is_dir: false,
            size: 5,
            modified: SystemTime::UNIX_EPOCH,
        };
        let html = render("/a<b>/", &[e], None, None);
        assert!(
            html.contains(
                "<a href=\"%3Cb%3E%26%22x%20y%22.txt\">&lt;b&gt;&amp;&quot;x y&quot;.txt</a>"
            ),
            "{html}"
        );
        assert!(html.contains("Index of /a&lt;b&gt;/"));
        assert!(html.contains("<a href=\"../\">"));
        assert!(!render("/", &[], None, None).contains("../"));
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }
}
