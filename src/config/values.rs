//! Validated configuration values: each newtype's `Deserialize` refuses bad input, so toml
//! reports the error at the offending value's line.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use chrono_tz::Tz;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use url::Url;

/// How many proxies in front of herald append to `X-Forwarded-For`: `false` (none, the
/// default: the header is ignored), `true` (one) or a number up to 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrustedHops(pub usize);

impl<'de> Deserialize<'de> for TrustedHops {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Count(i64),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "trust_proxy must be true, false or a number of proxies (0 to 10)",
            )
        })? {
            Raw::Flag(b) => Ok(TrustedHops(b as usize)),
            Raw::Count(n) if (0..=10).contains(&n) => Ok(TrustedHops(n as usize)),
            Raw::Count(n) => Err(serde::de::Error::custom(format!(
                "trust_proxy = {n}: give the number of proxies in front of herald, 0 to 10"
            ))),
        }
    }
}

/// The default of `[[newsletter]] max_articles`.
pub const DEFAULT_MAX_ARTICLES: usize = 30;

/// Between 1 and 200 articles per digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxArticles(pub usize);

impl<'de> Deserialize<'de> for MaxArticles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=200).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "{n} is out of range: a digest shows 1 to 200 articles"
            )));
        }
        Ok(MaxArticles(n as usize))
    }
}

/// A string that must not be blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s.trim().to_string()))
    }
}

impl std::ops::Deref for NonEmpty {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A newsletter id: lower-case letters, digits, `-` and `_` (it appears in URLs and List-Id).
/// Its place in the file is kept, so a duplicate id can be shown where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(pub String, pub At);

impl<'de> Deserialize<'de> for Ident {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<String>::deserialize(d)?;
        let at = At(Some(spanned.span()));
        let s = spanned.into_inner();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a valid id: use 1 to 64 lower-case letters, digits, '-' or '_'"
            )));
        }
        Ok(Ident(s, at))
    }
}

impl std::ops::Deref for Ident {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// An absolute http(s) URL ending in `/`, under which the publication lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(pub Url);

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut url = parse_http_url(&s).map_err(serde::de::Error::custom)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(serde::de::Error::custom(
                "base_url must not have a query or fragment",
            ));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(BaseUrl(url))
    }
}

/// Any absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsoluteUrl(pub Url);

impl<'de> Deserialize<'de> for AbsoluteUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_http_url(&s)
            .map(AbsoluteUrl)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{s:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// An IANA time zone name such as `Europe/Berlin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone(pub Tz);

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Tz>().map(Zone).map_err(|_| {
            serde::de::Error::custom(format!(
                "{s:?} is not an IANA time zone name (such as \"UTC\" or \"Europe/Berlin\")"
            ))
        })
    }
}

/// Between 1 and 1000 feed entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemCount(pub usize);

impl<'de> Deserialize<'de> for ItemCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=1000).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "{n} is out of range: feeds hold 1 to 1000 items"
            )));
        }
        Ok(ItemCount(n as usize))
    }
}

/// A duration written like `90s`, `15m`, `6h`, `3d` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("{s:?} is not a duration such as \"90s\", \"15m\", \"6h\" or \"3d\"")
        })?;
        let secs = match unit.trim() {
            "ms" => return Ok(Duration::from_millis(n)),
            "" | "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?}: use ms, s, m, h or d"
                ));
            }
        };
        Ok(Duration::from_secs(secs))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(HumanDuration(Duration::from_secs(n))),
            Raw::Text(s) => HumanDuration::parse(&s)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_millis() != 0 {
            return write!(f, "{}ms", self.0.as_millis());
        }
        let s = self.0.as_secs();
        match s {
            s if s % 86400 == 0 && s > 0 => write!(f, "{}d", s / 86400),
            s if s % 3600 == 0 && s > 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 && s > 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// A size written like `2 MB`, `500kB`, `1.5MiB` (or a bare number of bytes). `kB`, `MB`
/// and `GB` are powers of 1000, `KiB`, `MiB` and `GiB` powers of 1024; case does not matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl HumanSize {
    pub fn parse(s: &str) -> Result<u64, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("{s:?} is not a size such as \"2 MB\", \"500 kB\" or \"1 MiB\"");
        let n: f64 = num.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "m" | "mb" => 1_000_000,
            "g" | "gb" => 1_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in {s:?}: use B, kB, MB, GB, KiB, MiB or GiB"
                ));
            }
        };
        let bytes = n * factor as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(bytes.round() as u64)
    }
}

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        let n = match Raw::deserialize(d)? {
            Raw::Bytes(n) => n,
            Raw::Text(s) => HumanSize::parse(&s).map_err(serde::de::Error::custom)?,
        };
        if n == 0 {
            return Err(serde::de::Error::custom("a size must be more than 0 bytes"));
        }
        Ok(HumanSize(n))
    }
}

impl fmt::Display for HumanSize {
    /// `2 MB`, `1.5 MB`, `512 kB`, `300 bytes`: decimal units, at most one decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0 as f64;
        let (value, unit) = match self.0 {
            0..1_000 => return write!(f, "{} bytes", self.0),
            1_000..1_000_000 => (n / 1e3, "kB"),
            1_000_000..1_000_000_000 => (n / 1e6, "MB"),
            _ => (n / 1e9, "GB"),
        };
        let shown = format!("{value:.1}");
        write!(f, "{} {unit}", shown.trim_end_matches(".0"))
    }
}

/// A positive, finite rate such as `mail.rate_per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub f64);

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = f64::deserialize(d)?;
        if !n.is_finite() || n <= 0.0 {
            return Err(D::Error::custom(format!(
                "{n} is not a rate: give a number of messages per second, more than 0"
            )));
        }
        Ok(Rate(n))
    }
}

/// An integer between `lo` and `hi`, for `deserialize_with` helpers.
pub(super) fn int_in<'de, D: Deserializer<'de>>(
    d: D,
    lo: i64,
    hi: i64,
    why: &str,
) -> Result<i64, D::Error> {
    let n = i64::deserialize(d)?;
    if !(lo..=hi).contains(&n) {
        return Err(D::Error::custom(format!(
            "{n} is out of range: {why} ({lo} to {hi})"
        )));
    }
    Ok(n)
}

/// A duration that must be more than zero.
pub(super) fn positive_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<HumanDuration, D::Error> {
    let v = HumanDuration::deserialize(d)?;
    if v.0.is_zero() {
        return Err(D::Error::custom("must be more than 0"));
    }
    Ok(v)
}

/// Where a value sat in `herald.toml` (a byte range), for errors found after parsing.
/// Equal whatever the span: two values are the same value wherever they are written.
#[derive(Debug, Clone, Default)]
pub struct At(pub Option<Range<usize>>);

impl PartialEq for At {
    fn eq(&self, _: &At) -> bool {
        true
    }
}
impl Eq for At {}
impl std::hash::Hash for At {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}
