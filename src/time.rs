//! How herald writes times: RFC 3339 (Atom, JSON Feed, logs, templates), RFC 822 (RSS) and
//! HTTP dates (`Last-Modified`).

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with an upper-case `T` and `Z`, whole seconds (Atom, JSON Feed).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 822 with a four-digit year, in UTC (RSS).
pub fn rfc822(t: DateTime<Utc>) -> String {
    t.to_rfc2822()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) as a header value.
pub fn http_date(t: DateTime<Utc>) -> http::HeaderValue {
    http::HeaderValue::from_str(&httpdate::fmt_http_date(t.into()))
        .expect("HTTP dates are valid header values")
}
