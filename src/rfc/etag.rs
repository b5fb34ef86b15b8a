//! Entity-tags (RFC 9110 8.8.3): the [`EntityTag`] type, parsing single tags
//! and the lists of If-Match / If-None-Match, and the two comparison functions
//! of 8.8.3.2. Strong comparison is what If-Match and If-Range use; weak
//! comparison is for If-None-Match only.

use std::fmt;

/// An entity-tag: an opaque string, strong or weak (`W/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityTag {
    /// True for `W/"..."`.
    pub weak: bool,
    /// The characters between the quotes.
    /// Shared: a tag is cloned into every answer about its file.
    pub opaque: std::sync::Arc<str>,
}

impl EntityTag {
    /// A strong tag with this opaque part (which must be `etagc` characters).
    pub fn strong(opaque: impl Into<std::sync::Arc<str>>) -> Self {
        EntityTag {
            weak: false,
            opaque: opaque.into(),
        }
    }

    /// The strong tag for a SHA-256 digest: 64 lowercase hex digits.
    pub fn from_sha256(digest: &[u8; 32]) -> Self {
        // into a buffer at once: `hex::encode` builds its String char by char
        let mut hex = [0u8; 64];
        hex::encode_to_slice(digest, &mut hex).expect("64 digits for 32 bytes");
        EntityTag::strong(std::str::from_utf8(&hex).expect("hex digits"))
    }

    /// Parse exactly one entity-tag (surrounding whitespace allowed).
    pub fn parse(s: &str) -> Result<Self, EtagError> {
        match parse_one(s.trim_matches([' ', '\t']))? {
            (tag, "") => Ok(tag),
            _ => Err(EtagError),
        }
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.opaque)
    }
}

/// True when the field value `v` (OWS already trimmed) is exactly `tag` as
/// it is written: a list of that one tag, told without parsing or
/// allocating (the common case: a client echoing the tag it was sent).
pub fn written_as(v: &str, tag: &EntityTag) -> bool {
    let v = match (tag.weak, v.strip_prefix("W/")) {
        (true, Some(rest)) => rest,
        (false, None) => v,
        _ => return false,
    };
    v.len() == tag.opaque.len() + 2
        && v.starts_with('"')
        && v.ends_with('"')
        && v[1..v.len() - 1] == *tag.opaque
}

/// Strong comparison (8.8.3.2): both strong and the opaque parts equal.
pub fn strong_eq(a: &EntityTag, b: &EntityTag) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

/// Weak comparison (8.8.3.2): the opaque parts equal, weakness aside.
pub fn weak_eq(a: &EntityTag, b: &EntityTag) -> bool {
    a.opaque == b.opaque
}

/// A malformed entity-tag or entity-tag list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed entity-tag")]
pub struct EtagError;

/// The value of If-Match or If-None-Match (13.1.1, 13.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    /// `*`: any current representation.
    Any,
    /// `1#entity-tag`.
    Tags(Vec<EntityTag>),
}

impl TagList {
    /// Parse `"*" / #entity-tag`, allowing OWS and empty list elements (5.6.1.2).
    /// Note a comma inside quotes belongs to the tag (`etagc` allows it).
    pub fn parse(s: &str) -> Result<Self, EtagError> {
        let s = s.trim_matches([' ', '\t']);
        if s == "*" {
            return Ok(TagList::Any);
        }
        let mut tags = Vec::new();
        let mut rest = s;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let (tag, after) = parse_one(rest)?;
            tags.push(tag);
            let after = after.trim_start_matches([' ', '\t']);
            if !(after.is_empty() || after.starts_with(',')) {
                return Err(EtagError);
            }
            rest = after;
        }
        if tags.is_empty() {
            return Err(EtagError);
        }
        Ok(TagList::Tags(tags))
    }

    /// Whether any member matches `current` under `cmp`; `*` matches any.
    pub fn matches(&self, current: &EntityTag, cmp: fn(&EntityTag, &EntityTag) -> bool) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| cmp(t, current)),
        }
    }
}

/// Parse one tag at the start of `s`; return it and the rest.
fn parse_one(s: &str) -> Result<(EntityTag, &str), EtagError> {
    let (weak, s) = match s.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = s.strip_prefix('"').ok_or(EtagError)?;
    let end = body.find('"').ok_or(EtagError)?;
    let opaque = &body[..end];
    // etagc = %x21 / %x23-7E / obs-text
    if !opaque
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return Err(EtagError);
    }
    let tag = EntityTag {
        weak,
        opaque: opaque.into(),
    };
    Ok((tag, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(o: &str) -> EntityTag {
        EntityTag::strong(o)
    }
    fn w(o: &str) -> EntityTag {
        EntityTag {
            weak: true,
            opaque: o.into(),
        }
    }

    #[test]
    fn written_as_is_exactly_the_one_tag_and_agrees_with_parsing() {
        #[rustfmt::skip]
        let rows: [(&str, EntityTag, bool); 11] = [
            ("\"abc\"", s("abc"), true),
            ("W/\"abc\"", w("abc"), true),
            ("W/\"abc\"", s("abc"), false), // weakness differs
            ("\"abc\"", w("abc"), false),
            ("\"abd\"", s("abc"), false),
            ("\"abc\", \"x\"", s("abc"), false), // a list: parsed instead
            ("\"abc", s("abc"), false),
            ("abc\"", s("abc"), false),
            ("\"ab\"", s("abc"), false),
            ("\"\"", s(""), true),
            ("\"é\"", s("é"), true),
        ];
        for (v, tag, want) in rows {
            assert_eq!(written_as(v, &tag), want, "{v} {tag}");
            if want {
                // the fast path never says more than the parser
                assert_eq!(EntityTag::parse(v).unwrap(), tag, "{v}");
            }
        }
    }

    #[test]
    fn comparison_table_of_8_8_3_2() {
        // the RFC's own table
        #[rustfmt::skip]
        let rows = [
            (w("1"), w("1"), false, true),
            (w("1"), w("2"), false, false),
            (w("1"), s("1"), false, true),
            (s("1"), s("1"), true, true),
        ];
        for (a, b, strong, weak) in rows {
            assert_eq!(strong_eq(&a, &b), strong, "{a} {b}");
            assert_eq!(weak_eq(&a, &b), weak, "{a} {b}");
        }
    }

    #[test]
    fn parse_lists() {
        #[rustfmt::skip]
        let rows: &[(&str, Result<TagList, EtagError>)] = &[
            ("*", Ok(TagList::Any)),
            (" * ", Ok(TagList::Any)),
            ("\"xyzzy\"", Ok(TagList::Tags(vec![s("xyzzy")]))),
            // 13.1.1 examples
            ("\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\"", Ok(TagList::Tags(vec![s("xyzzy"), s("r2d2xxxx"), s("c3piozzzz")]))),
            // 13.1.2 examples
            ("W/\"xyzzy\"", Ok(TagList::Tags(vec![w("xyzzy")]))),
            ("W/\"xyzzy\", W/\"r2d2xxxx\", W/\"c3piozzzz\"", Ok(TagList::Tags(vec![w("xyzzy"), w("r2d2xxxx"), w("c3piozzzz")]))),
            ("\"a\", W/\"b\"", Ok(TagList::Tags(vec![s("a"), w("b")]))),
            ("\"\"", Ok(TagList::Tags(vec![s("")]))),
            ("\"a,b\"", Ok(TagList::Tags(vec![s("a,b")]))),
            (",\"a\",,\"b\",", Ok(TagList::Tags(vec![s("a"), s("b")]))),
            ("\"a\"\t,\t\"b\"", Ok(TagList::Tags(vec![s("a"), s("b")]))),
            ("", Err(EtagError)),
            (" , ", Err(EtagError)),
            ("xyzzy", Err(EtagError)),
            ("\"unterminated", Err(EtagError)),
            ("w/\"lowercase-weak\"", Err(EtagError)),
            ("\"a\" \"b\"", Err(EtagError)),
            ("\"a\"b", Err(EtagError)),
            ("\"sp ace\"", Err(EtagError)),
            ("*, \"a\"", Err(EtagError)),
        ];
        for (input, want) in rows {
            assert_eq!(&TagList::parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn single_tags_and_display() {
        assert_eq!(EntityTag::parse(" W/\"x\" "), Ok(w("x")));
        assert_eq!(EntityTag::parse("\"x\", \"y\""), Err(EtagError));
        assert_eq!(EntityTag::parse("x"), Err(EtagError));
        assert_eq!(w("x").to_string(), "W/\"x\"");
        let t = EntityTag::from_sha256(&[0xab; 32]);
        assert_eq!(t.to_string(), format!("\"{}\"", "ab".repeat(32)));
        let digest: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        assert_eq!(*EntityTag::from_sha256(&digest).opaque, hex::encode(digest));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any value: parsing never panics; a parsed tag prints back to a
        /// value that parses to the same tag.
        #[test]
        fn never_panics_and_round_trips(value in "\\PC{0,30}") {
            if let Ok(TagList::Tags(tags)) = TagList::parse(&value) {
                for t in tags {
                    prop_assert_eq!(EntityTag::parse(&t.to_string()), Ok(t));
                }
            }
            let _ = EntityTag::parse(&value);
        }
    }
}
