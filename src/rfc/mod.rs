//! Pure HTTP rules: functions from values to values, no I/O, unit-tested with
//! tables that cite RFC 9110.

pub mod conditional;
pub mod etag;
pub mod host;
pub mod multipart;
pub mod range;
