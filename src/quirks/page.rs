//! `GET /_quirks/` in quirks mode: the catalogue as HTML (with ready links
//! per quirk for the first [`PAGE_FILES`] top-level files by name, and how
//! many more there are) or JSON (`Accept: application/json`). The page's
//! size is bounded whatever the number of files.

use std::ffi::OsString;

use super::catalogue::{QuirkInfo, CATALOGUE};
use crate::fs::Root;
use crate::listing::{encode_link, escape_html};

/// Most files the page links to (the first ones by name); the others are
/// only counted.
pub const PAGE_FILES: usize = 20;

/// Most characters of a file name shown as a link's text (the link itself
/// always has the whole name).
const LINK_TEXT_MAX: usize = 60;

/// The root's top-level files as the page shows them: the first
/// [`PAGE_FILES`] by name (the order of a listing), and how many others
/// there are: a files-only page of `listing::read_page`
/// (regular files the root admits: not hidden, inside the root, unless its
/// policy says otherwise), but only [`PAGE_FILES`] names are held, whatever
/// the directory's size. Blocking; an unreadable root has no files.
pub fn top_files(root: &Root) -> (Vec<OsString>, usize) {
    let files_only = crate::listing::Cursor::files_only();
    match crate::listing::read_page(root.path(), root, Some(&files_only), PAGE_FILES) {
        Ok(page) => (
            page.entries.into_iter().map(|e| e.name).collect(),
            page.more,
        ),
        Err(_) => (Vec::new(), 0),
    }
}

/// The spec that tries a quirk: `name` or `name=example`.
fn try_spec(q: &QuirkInfo) -> String {
    match q.example {
        Some(v) => format!("{}={v}", q.name),
        None => q.name.to_string(),
    }
}

/// The catalogue page; `files` are the root's top-level file names, in
/// order. Links are made for the first [`PAGE_FILES`] of them only.
pub fn html(files: &[OsString], global: &str) -> String {
    let shown = files.len().min(PAGE_FILES);
    html_with_more(&files[..shown], files.len() - shown, global)
}

/// The catalogue page with links for `files` (the first [`PAGE_FILES`] of
/// them), saying that `more` other files are not shown (see [`top_files`]).
pub fn html_with_more(files: &[OsString], more: usize, global: &str) -> String {
    let more = more + files.len().saturating_sub(PAGE_FILES);
    let files = &files[..files.len().min(PAGE_FILES)];
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>rangeserve quirks</title>\n<style>\n\
         body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222;line-height:1.4}\n\
         h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}\n\
         code{background:#f3f3f3;padding:.05rem .3rem;border-radius:3px}\n\
         .q{margin:1rem 0 1.4rem}.q h3{font-size:1rem;margin:0 0 .3rem}.q p{margin:.2rem 0}\n\
         .meta{color:#555;font-size:.92rem}.try a{margin-right:.7rem;color:#0b57d0;text-decoration:none}\n\
         .try a:hover{text-decoration:underline}\n\
         </style>\n</head>\n<body>\n<h1>rangeserve quirks</h1>\n\
         <p>Pick quirks per request with a URL prefix <code>/_quirks/SPEC/path</code> or a header \
         <code>Rangeserve-Quirks: SPEC</code>; SPEC is <code>name</code> or <code>name=value</code>, \
         several joined by commas; <code>none</code> clears the global quirks. \
         JSON: request this page with <code>Accept: application/json</code>.</p>\n",
    );
    out.push_str(&format!(
        "<p>Global quirks of this server: <code>{}</code></p>\n",
        if global.is_empty() {
            "none".to_string()
        } else {
            escape_html(global)
        }
    ));
    if more > 0 {
        out.push_str(&format!(
            "<p class=\"more\">Links are shown for the first {} files by name; \
             {more} more not shown (use <code>/_quirks/SPEC/NAME</code> for them).</p>\n",
            files.len()
        ));
    }
    let mut group = "";
    for q in CATALOGUE {
        if q.group != group {
            group = q.group;
            out.push_str(&format!("<h2>{}</h2>\n", escape_html(group)));
        }
        let spec = try_spec(q);
        let title = match q.arg {
            Some(a) => format!("{}={a}", q.name),
            None => q.name.to_string(),
        };
        out.push_str(&format!(
            "<div class=\"q\" id=\"{}\"><h3><code>{}</code></h3>\n<p>{}</p>\n\
             <p class=\"meta\"><b>Emulates:</b> {}</p>\n<p class=\"meta\"><b>A robust client:</b> {}</p>\n",
            q.name,
            escape_html(&title),
            escape_html(q.behaviour),
            escape_html(q.emulates),
            escape_html(q.client)
        ));
        if !files.is_empty() {
            out.push_str("<p class=\"try\">Try: ");
            for f in files {
                out.push_str(&format!(
                    "<a href=\"/_quirks/{}/{}\">{}</a>",
                    encode_link(std::ffi::OsStr::new(&spec)),
                    encode_link(f),
                    escape_html(&link_text(f))
                ));
            }
            out.push_str("</p>\n");
        }
        out.push_str("</div>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A file name as a link's text: at most [`LINK_TEXT_MAX`] characters.
fn link_text(name: &std::ffi::OsStr) -> String {
    let name = name.to_string_lossy();
    match name.char_indices().nth(LINK_TEXT_MAX) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.into_owned(),
    }
}

/// The catalogue as JSON: `{"global": "...", "quirks": [{name, arg, example, group, behaviour, emulates, client}]}`.
pub fn json(global: &str) -> String {
    let opt = |v: Option<&str>| v.map_or("null".to_string(), json_str);
    let items: Vec<String> = CATALOGUE
        .iter()
        .map(|q| {
            format!(
                "{{\"name\":{},\"arg\":{},\"example\":{},\"group\":{},\"behaviour\":{},\"emulates\":{},\"client\":{}}}",
                json_str(q.name),
                opt(q.arg),
                opt(q.example),
                json_str(q.group),
                json_str(q.behaviour),
                json_str(q.emulates),
                json_str(q.client)
            )
        })
        .collect();
    format!(
        "{{\"global\":{},\"quirks\":[{}]}}\n",
        json_str(global),
        items.join(",")
    )
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let j = json("no-etag");
        assert!(
            j.starts_with("{\"global\":\"no-etag\",\"quirks\":[{\"name\":\"no-etag\",\"arg\":null")
        );
        assert!(j.contains("\"name\":\"throttle\",\"arg\":\"RATE\",\"example\":\"256k\""));
    }

    #[test]
    fn the_page_is_bounded_whatever_the_number_of_files() {
        let n_links = |html: &str| html.matches("href=\"/_quirks/").count();
        let few: Vec<OsString> = ["a.bin", "b c.txt"].map(OsString::from).to_vec();
        let html = html(&few, "");
        assert_eq!(n_links(&html), 2 * CATALOGUE.len());
        assert!(!html.contains("more not shown"));

        let many: Vec<OsString> = (0..20_000)
            .map(|i| OsString::from(format!("file-{i:05}.bin")))
            .collect();
        let page = super::html(&many, "");
        assert_eq!(n_links(&page), PAGE_FILES * CATALOGUE.len());
        assert!(page.contains(&format!("{} more not shown", 20_000 - PAGE_FILES)));
        assert!(page.contains("file-00019.bin") && !page.contains("file-00020.bin"));
        assert!(page.len() < 100_000, "{} bytes", page.len());
        assert_eq!(
            page,
            html_with_more(&many[..PAGE_FILES], 20_000 - PAGE_FILES, "")
        );

        // the longest names: still bounded, and link texts are clipped
        let long: Vec<OsString> = (0..1000)
            .map(|i| OsString::from(format!("{i:03}{}", "\"&'".repeat(84))))
            .collect();
        let page = super::html(&long, "");
        assert!(page.len() < 1_000_000, "{} bytes", page.len());
        assert!(page.contains("more not shown"));
        assert_eq!(link_text(&long[0]).chars().count(), LINK_TEXT_MAX + 1);
    }

    #[test]
    fn top_files_holds_the_first_names_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap();
        for i in (0..PAGE_FILES + 7).rev() {
            std::fs::write(path.join(format!("f{i:03}")), b"x").unwrap();
        }
        std::fs::create_dir(path.join("a-dir")).unwrap();
        std::fs::write(path.join(".hidden"), b"x").unwrap();
        let elsewhere = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), path.join("0-outside")).unwrap();
        std::os::unix::fs::symlink("missing", path.join("0-dangling")).unwrap();
        let root = Root::new(&path).unwrap();
        let (files, more) = top_files(&root);
        let want: Vec<OsString> = (0..PAGE_FILES)
            .map(|i| OsString::from(format!("f{i:03}")))
            .collect();
        assert_eq!(files, want);
        assert_eq!(more, 7);
        // the same first names as the listing gives
        let listed: Vec<OsString> = crate::listing::read_entries(root.path(), &root)
            .unwrap()
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.name)
            .take(PAGE_FILES)
            .collect();
        assert_eq!(files, listed);
        std::fs::remove_dir_all(&path).unwrap();
        assert_eq!(top_files(&root), (Vec::new(), 0));
    }
}
