//! What the probe saw: each step it took (which request, sent how) and the
//! response or failure it got. This is the boundary between the I/O of
//! [`super::run`] and the pure checks of [`super::analyze`]: tests build
//! observations by hand and feed them to the checks.

use super::http::Response;

/// The probe's steps, in the order it takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// HEAD without conditions.
    Head,
    /// GET without Range: the basics; at most a few KiB of the body are read.
    Get,
    /// `Range: bytes=0-4095`: the window whose delivery is timed and checked.
    Window,
    /// A second window starting inside the first, after the first was cut
    /// short or stalled: tells a per-response cut from a cut at a file offset.
    Window2,
    /// A 16-byte range in the middle of the window.
    Mid,
    /// An open range `bytes=N-` near the end.
    Open,
    /// A suffix range `bytes=-16`.
    Suffix,
    /// `bytes=0-0,-1`: two ranges, for multipart/byteranges.
    Multi,
    /// `bytes=LEN-`: unsatisfiable.
    Unsatisfiable,
    /// The mid range with `If-Range: <current ETag>`.
    IfRangeTag,
    /// The mid range with `If-Range: <Last-Modified>`.
    IfRangeDate,
    /// The mid range with `If-Range` of a tag the server never sent.
    IfRangeStale,
    /// The mid range with `If-Range: W/<current ETag>`.
    IfRangeWeak,
    /// `If-None-Match: <current ETag>`.
    IfNoneMatch,
}

/// One step: what was sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Which step.
    pub step: Step,
    /// The Range header sent, if any.
    pub range: Option<String>,
    /// The conditional header sent (`If-Range: ...`), if any.
    pub condition: Option<(&'static str, String)>,
    /// The response, or why there was none (one line).
    pub outcome: Result<Response, String>,
}

impl Exchange {
    /// The response, if there was one.
    pub fn response(&self) -> Option<&Response> {
        self.outcome.as_ref().ok()
    }
}

/// Everything the probe saw, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observations {
    /// The steps taken, in order (retried 503s excluded).
    pub exchanges: Vec<Exchange>,
    /// 503 answers with Retry-After before the first other answer.
    pub leading_503: u32,
    /// 503 answers with Retry-After after that (retried too).
    pub later_503: u32,
    /// The representation's length as the probe settled it.
    pub length: Option<u64>,
}

impl Observations {
    /// The exchange of `step`, if it was taken.
    pub fn get(&self, step: Step) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| e.step == step)
    }

    /// The response to `step`, if the step was taken and answered.
    pub fn response(&self, step: Step) -> Option<&Response> {
        self.get(step).and_then(Exchange::response)
    }
}
