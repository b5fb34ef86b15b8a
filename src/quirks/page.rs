//! `GET /_quirks/` in quirks mode: the catalogue as HTML (with ready links
//! per quirk for each top-level file) or JSON (`Accept: application/json`).

use super::catalogue::{QuirkInfo, CATALOGUE};
use crate::listing::{encode_link, escape_html};

/// The spec that tries a quirk: `name` or `name=example`.
fn try_spec(q: &QuirkInfo) -> String {
    match q.example {
        Some(v) => format!("{}={v}", q.name),
        None => q.name.to_string(),
    }
}

/// The catalogue page; `files` are the root's top-level file names.
pub fn html(files: &[std::ffi::OsString], global: &str) -> String {
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
                    escape_html(&f.to_string_lossy())
                ));
            }
            out.push_str("</p>\n");
        }
        out.push_str("</div>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
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
}
