//! Conditional requests (RFC 9110 section 13): [`evaluate`] applies the
//! preconditions in the order of 13.2.2 and decides whether a Range may be
//! honoured (If-Range, 13.1.5). Pure: the caller passes the header values,
//! the representation's validators and the response's Date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::etag::{strong_eq, weak_eq, written_as, EntityTag, TagList};

/// The method, as far as preconditions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondMethod {
    /// GET: range and 304 semantics.
    Get,
    /// HEAD: 304 semantics.
    Head,
    /// Any other method: a failed If-None-Match is 412, not 304.
    Other,
}

/// The conditional header fields of a request, as received (None = absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// If-Match (13.1.1).
    pub if_match: Option<&'a str>,
    /// If-None-Match (13.1.2).
    pub if_none_match: Option<&'a str>,
    /// If-Modified-Since (13.1.3).
    pub if_modified_since: Option<&'a str>,
    /// If-Unmodified-Since (13.1.4).
    pub if_unmodified_since: Option<&'a str>,
    /// If-Range (13.1.5).
    pub if_range: Option<&'a str>,
}

/// The validators of the selected representation, as this response sends them.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The entity-tag, if one is sent.
    pub etag: Option<&'a EntityTag>,
    /// Last-Modified, if sent (whole seconds, as on the wire).
    pub last_modified: Option<SystemTime>,
    /// The response's Date.
    pub date: SystemTime,
}

/// The result of evaluating a request's preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go on; `use_range` says whether a Range header may be honoured
    /// (false when If-Range did not match: send the full representation).
    Proceed {
        /// Whether Range applies.
        use_range: bool,
    },
    /// 304 Not Modified (15.4.5).
    NotModified,
    /// 412 Precondition Failed (15.5.13).
    PreconditionFailed,
}

/// Evaluate preconditions in the order of RFC 9110 13.2.2:
///
/// 1. If-Match present: false (no strong match; `*` matches the existing file) -> 412.
/// 2. Else If-Unmodified-Since (a valid date, Last-Modified known): Last-Modified later -> 412.
/// 3. If-None-Match present: true (weak match, or `*`) -> 304 for GET/HEAD, else 412.
/// 4. Else, GET/HEAD with a valid If-Modified-Since: Last-Modified not later -> 304.
/// 5. GET with Range and If-Range: no match -> ignore Range (If-Range without Range is ignored).
///
/// A malformed entity-tag list never matches; an invalid date is ignored.
/// `has_range` is whether the request carries a Range header.
pub fn evaluate(
    method: CondMethod,
    has_range: bool,
    c: &Conditions<'_>,
    v: &Validators<'_>,
) -> Outcome {
    // step 1
    if let Some(value) = c.if_match {
        if !list_matches(value, v.etag, strong_eq) {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(date), Some(lm)) =
        (c.if_unmodified_since.and_then(parse_date), v.last_modified)
    {
        // step 2
        if secs(lm) > secs(date) {
            return Outcome::PreconditionFailed;
        }
    }
    // step 3
    if let Some(value) = c.if_none_match {
        if list_matches(value, v.etag, weak_eq) {
            return match method {
                CondMethod::Get | CondMethod::Head => Outcome::NotModified,
                CondMethod::Other => Outcome::PreconditionFailed,
            };
        }
    } else if method != CondMethod::Other {
        // step 4
        if let (Some(date), Some(lm)) = (c.if_modified_since.and_then(parse_date), v.last_modified)
        {
            if secs(lm) <= secs(date) {
                return Outcome::NotModified;
            }
        }
    }
    // step 5
    let use_range = match (method, has_range, c.if_range) {
        (CondMethod::Get, true, Some(value)) => if_range_matches(value, v),
        _ => true,
    };
    Outcome::Proceed { use_range }
}

/// If-Range (13.1.5): an entity-tag must match strongly (a weak tag never
/// does); a date must equal Last-Modified exactly, and only counts when
/// Last-Modified is a strong validator: at least one second before Date (8.8.2.2).
pub fn if_range_matches(value: &str, v: &Validators<'_>) -> bool {
    let value = value.trim_matches([' ', '\t']);
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), v.etag) {
            (Ok(tag), Some(current)) => strong_eq(&tag, current),
            _ => false,
        };
    }
    match (parse_date(value), v.last_modified) {
        (Some(date), Some(lm)) => secs(date) == secs(lm) && secs(lm) < secs(v.date),
        _ => false,
    }
}

fn list_matches(
    value: &str,
    current: Option<&EntityTag>,
    cmp: fn(&EntityTag, &EntityTag) -> bool,
) -> bool {
    if let Some(current) = current {
        if written_as(value.trim_matches([' ', '\t']), current) {
            // the one tag in the list is `current` itself
            return cmp(current, current);
        }
    }
    match (TagList::parse(value), current) {
        (Ok(TagList::Any), _) => true, // the file exists, whether or not it has a tag
        (Ok(list), Some(current)) => list.matches(current, cmp),
        _ => false, // malformed, or no tag to compare with
    }
}

/// An HTTP-date in any of the three accepted forms (5.6.7).
pub fn parse_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim_matches([' ', '\t'])).ok()
}

/// Whole seconds since the epoch: HTTP dates have one-second resolution.
pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use CondMethod::*;
    use Outcome::*;

    const TAG: &str = "\"abc\"";
    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT"; // Last-Modified
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const RANGE: Outcome = Proceed { use_range: true };
    const FULL: Outcome = Proceed { use_range: false };

    #[derive(Default, Clone, Copy)]
    struct Row {
        im: Option<&'static str>,
        inm: Option<&'static str>,
        ims: Option<&'static str>,
        ius: Option<&'static str>,
        ir: Option<&'static str>,
    }

    #[test]
    fn precondition_table_13_2_2() {
        let none = Row::default();
        #[rustfmt::skip]
        let rows: Vec<(&str, CondMethod, bool, Row, Outcome)> = vec![
            ("no conditions", Get, true, none, RANGE),
            // 13.1.1 If-Match: strong comparison
            ("13.1.1 If-Match same tag", Get, false, Row { im: Some(TAG), ..none }, RANGE),
            ("13.1.1 If-Match other tag -> 412", Get, false, Row { im: Some("\"zzz\""), ..none }, PreconditionFailed),
            ("13.1.1 If-Match weak tag never matches -> 412", Get, false, Row { im: Some("W/\"abc\""), ..none }, PreconditionFailed),
            ("13.1.1 If-Match * with the file -> true", Get, false, Row { im: Some("*"), ..none }, RANGE),
            ("13.1.1 If-Match list with a match", Get, false, Row { im: Some("\"x\", \"abc\""), ..none }, RANGE),
            ("13.1.1 If-Match malformed -> no match -> 412", Get, false, Row { im: Some("abc"), ..none }, PreconditionFailed),
            ("13.2.2 If-Match failure wins over Range", Get, true, Row { im: Some("\"zzz\""), ..none }, PreconditionFailed),
            ("13.2.2 If-Match failure wins over If-None-Match", Get, false, Row { im: Some("\"zzz\""), inm: Some(TAG), ..none }, PreconditionFailed),
            // 13.1.4 If-Unmodified-Since
            ("13.1.4 IUS equal -> pass", Get, false, Row { ius: Some(LM), ..none }, RANGE),
            ("13.1.4 IUS after -> pass", Get, false, Row { ius: Some(AFTER), ..none }, RANGE),
            ("13.1.4 IUS before -> 412", Get, false, Row { ius: Some(BEFORE), ..none }, PreconditionFailed),
            ("13.1.4 IUS invalid date ignored", Get, false, Row { ius: Some("yesterday"), ..none }, RANGE),
            ("13.1.4 IUS ignored when If-Match present", Get, false, Row { im: Some(TAG), ius: Some(BEFORE), ..none }, RANGE),
            ("13.1.4 IUS rfc850 form", Get, false, Row { ius: Some("Sunday, 06-Nov-94 08:49:36 GMT"), ..none }, PreconditionFailed),
            ("13.1.4 IUS asctime form", Get, false, Row { ius: Some("Sun Nov  6 08:49:36 1994"), ..none }, PreconditionFailed),
            // 13.1.2 If-None-Match: weak comparison
            ("13.1.2 INM same tag GET -> 304", Get, false, Row { inm: Some(TAG), ..none }, NotModified),
            ("13.1.2 INM same tag HEAD -> 304", Head, false, Row { inm: Some(TAG), ..none }, NotModified),
            ("13.1.2 INM same tag other method -> 412", Other, false, Row { inm: Some(TAG), ..none }, PreconditionFailed),
            ("13.1.2 INM weak form matches (weak comparison)", Get, false, Row { inm: Some("W/\"abc\""), ..none }, NotModified),
            ("13.1.2 INM * -> 304", Get, false, Row { inm: Some("*"), ..none }, NotModified),
            ("13.1.2 INM other tag -> proceed", Get, true, Row { inm: Some("\"zzz\""), ..none }, RANGE),
            ("13.1.2 INM list with a match", Get, false, Row { inm: Some("\"x\", W/\"abc\""), ..none }, NotModified),
            ("13.1.2 INM malformed -> no match", Get, false, Row { inm: Some("abc"), ..none }, RANGE),
            ("13.2.2 304 wins over Range", Get, true, Row { inm: Some(TAG), ..none }, NotModified),
            // 13.1.3 If-Modified-Since
            ("13.1.3 IMS equal -> 304", Get, false, Row { ims: Some(LM), ..none }, NotModified),
            ("13.1.3 IMS after -> 304", Head, false, Row { ims: Some(AFTER), ..none }, NotModified),
            ("13.1.3 IMS before -> 200", Get, false, Row { ims: Some(BEFORE), ..none }, RANGE),
            ("13.1.3 IMS invalid date ignored", Get, false, Row { ims: Some("not a date"), ..none }, RANGE),
            ("13.1.3 IMS two members invalid", Get, false, Row { ims: Some("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT"), ..none }, RANGE),
            ("13.1.3 IMS ignored when INM present", Get, false, Row { inm: Some("\"zzz\""), ims: Some(AFTER), ..none }, RANGE),
            ("13.1.3 IMS ignored for other methods", Other, false, Row { ims: Some(AFTER), ..none }, RANGE),
            ("13.2.2 IUS 412 wins over IMS 304", Get, false, Row { ius: Some(BEFORE), ims: Some(AFTER), ..none }, PreconditionFailed),
            // 13.1.5 If-Range
            ("13.1.5 If-Range current tag -> range", Get, true, Row { ir: Some(TAG), ..none }, RANGE),
            ("13.1.5 If-Range old tag -> full", Get, true, Row { ir: Some("\"old\""), ..none }, FULL),
            ("13.1.5 If-Range weak tag never matches", Get, true, Row { ir: Some("W/\"abc\""), ..none }, FULL),
            ("13.1.5 If-Range malformed -> full", Get, true, Row { ir: Some("\"abc"), ..none }, FULL),
            ("13.1.5 If-Range exact date -> range", Get, true, Row { ir: Some(LM), ..none }, RANGE),
            ("13.1.5 If-Range later date -> full (exact match only)", Get, true, Row { ir: Some(AFTER), ..none }, FULL),
            ("13.1.5 If-Range earlier date -> full", Get, true, Row { ir: Some(BEFORE), ..none }, FULL),
            ("13.1.5 If-Range garbage -> full", Get, true, Row { ir: Some("whenever"), ..none }, FULL),
            ("13.1.5 If-Range without Range is ignored", Get, false, Row { ir: Some("\"old\""), ..none }, RANGE),
            ("13.1.5 If-Range only for GET", Head, true, Row { ir: Some("\"old\""), ..none }, RANGE),
            ("13.2.2 If-Match pass then If-Range mismatch -> full", Get, true, Row { im: Some(TAG), ir: Some("\"old\""), ..none }, FULL),
            ("13.2.2 INM mismatch then If-Range match -> range", Get, true, Row { inm: Some("\"zzz\""), ir: Some(TAG), ..none }, RANGE),
        ];
        let etag = EntityTag::strong("abc");
        let lm = httpdate::parse_http_date(LM).unwrap();
        let v = Validators {
            etag: Some(&etag),
            last_modified: Some(lm),
            date: lm + Duration::from_secs(3600),
        };
        assert!(rows.len() >= 25);
        for (name, method, has_range, r, want) in rows {
            let c = Conditions {
                if_match: r.im,
                if_none_match: r.inm,
                if_modified_since: r.ims,
                if_unmodified_since: r.ius,
                if_range: r.ir,
            };
            assert_eq!(evaluate(method, has_range, &c, &v), want, "{name}");
        }
    }

    #[test]
    fn if_range_date_needs_a_strong_last_modified() {
        // 8.8.2.2: Last-Modified is only strong when at least 1 s before Date
        let etag = EntityTag::strong("abc");
        let lm = httpdate::parse_http_date(LM).unwrap();
        let at = |date: SystemTime| Validators {
            etag: Some(&etag),
            last_modified: Some(lm),
            date,
        };
        assert!(!if_range_matches(LM, &at(lm)));
        assert!(if_range_matches(LM, &at(lm + Duration::from_secs(1))));
    }

    #[test]
    fn without_validators() {
        let v = Validators {
            etag: None,
            last_modified: None,
            date: UNIX_EPOCH,
        };
        let c = Conditions {
            if_match: Some(TAG),
            ..Default::default()
        };
        assert_eq!(evaluate(Get, false, &c, &v), PreconditionFailed);
        let c = Conditions {
            if_match: Some("*"),
            ..Default::default()
        };
        assert_eq!(evaluate(Get, false, &c, &v), RANGE);
        let c = Conditions {
            if_range: Some(TAG),
            ..Default::default()
        };
        assert_eq!(evaluate(Get, true, &c, &v), FULL);
        let c = Conditions {
            if_modified_since: Some(LM),
            ..Default::default()
        };
        assert_eq!(evaluate(Get, false, &c, &v), RANGE);
    }
}
