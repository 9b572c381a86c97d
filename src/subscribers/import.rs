//! CSV import and export of subscribers.
//!
//! Import reads a header row with `email` and optionally `name`, `newsletters` (ids separated
//! by spaces, commas, `;` or `|`) and `status`; rows stream through in batches, so a file of
//! millions of rows never sits in memory. Every bad row is reported as `line N: reason` and
//! the good ones are imported. Suppressed addresses stay suppressed whatever the file says;
//! a row can add a suppression but never lift one. Importing the same file twice changes
//! nothing the second time. Export writes the same four columns, so `import` reads it back
//! unchanged; a cell a spreadsheet would run as a formula (`=HYPERLINK(…)` typed into the
//! public form as a name) is written with a leading `'`, which import takes off again.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, Read, Write};

use chrono::{DateTime, Utc};

use super::{Email, Status, clean_name};
use crate::store::Store;
use crate::store::subscribers::{Existing, ImportRow};

/// Rows per database transaction.
const BATCH: usize = 1000;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub rows: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rows for addresses that are unsubscribed, bounced or complained: left as they are.
    pub kept_suppressed: u64,
    /// `line N: reason`, one per rejected row.
    pub bad: Vec<String>,
    /// What rows got that the file did not say.
    pub defaults: Defaults,
}

/// What to do with one row, given what the store has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Insert,
    Update {
        status: Option<Status>,
        name: Option<String>,
        add: Vec<String>,
    },
    Unchanged,
    KeptSuppressed,
}

/// The import rule for one row (pure; the store applies it inside its transaction).
pub fn decide(existing: Option<&Existing>, row: &ImportRow) -> Decision {
    let Some(e) = existing else {
        return Decision::Insert;
    };
    if e.status.is_suppressed() {
        return if row.status == e.status {
            Decision::Unchanged
        } else {
            Decision::KeptSuppressed
        };
    }
    let status = match (e.status, row.status) {
        // A row may suppress, and may confirm a pending address; it never demotes.
        (_, s) if s.is_suppressed() => Some(s),
        (Status::Pending, Status::Confirmed) => Some(Status::Confirmed),
        _ => None,
    };
    let name = (!row.name.is_empty() && row.name != e.name).then(|| row.name.clone());
    let add: Vec<String> = if status.is_some_and(Status::is_suppressed) {
        Vec::new()
    } else {
        row.newsletters
            .iter()
            .filter(|n| !e.newsletters.contains(n))
            .cloned()
            .collect()
    };
    if status.is_none() && name.is_none() && add.is_empty() {
        Decision::Unchanged
    } else {
        Decision::Update { status, name, add }
    }
}

impl crate::store::subscribers::AsImportDecision for Decision {
    fn is_insert(&self) -> bool {
        matches!(self, Decision::Insert)
    }
    fn update(&self) -> Option<(Option<Status>, Option<&str>, &[String])> {
        match self {
            Decision::Update { status, name, add } => Some((*status, name.as_deref(), add)),
            _ => None,
        }
    }
}

/// The columns an import reads.
const COLUMNS: [&str; 4] = ["email", "name", "newsletters", "status"];

/// What a row did not hold in the file: the default newsletters, said once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Defaults {
    /// There was no `newsletters` column: every row gets these (every newsletter, as
    /// `subscribers add` does).
    pub newsletters: Option<Vec<String>>,
}

/// Imports `input` (named `source` in messages and consent evidence). `progress` is called
/// with the number of bytes read so far after each batch.
///
/// Every row is one line: none of the four columns may hold a line break, so a line is
/// parsed on its own (with the csv crate) and a quote left open on line 11 is reported as
/// `line 11: unterminated quoted field` instead of swallowing every row after it.
pub async fn import(
    store: &Store,
    input: impl Read,
    source: &str,
    newsletters: &[String],
    now: DateTime<Utc>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Report> {
    let mut lines = std::io::BufReader::new(input);
    let mut raw = Vec::new();
    let mut read_bytes = 0u64;
    let mut line_no = 0u64;
    // The header: the first line that is not blank.
    let headers = loop {
        raw.clear();
        let n = lines.read_until(b'\n', &mut raw)?;
        if n == 0 {
            anyhow::bail!(
                "{source}: the file is empty (expected a header row: email,name,newsletters,status)"
            );
        }
        read_bytes += n as u64;
        line_no += 1;
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            continue;
        }
        break split_line(text).map_err(|e| anyhow::anyhow!("{source}: line {line_no}: {e}"))?;
    };
    let header_line = line_no;
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    for (i, h) in headers.iter().enumerate() {
        if !COLUMNS.iter().any(|k| h.eq_ignore_ascii_case(k)) {
            anyhow::bail!(
                "{source}: line {header_line}: unknown column {h:?} (columns: email, name, newsletters, status)"
            );
        }
        if headers[..i].iter().any(|e| e.eq_ignore_ascii_case(h)) {
            anyhow::bail!(
                "{source}: line {header_line}: the column {h:?} appears twice (columns {} and {})",
                headers
                    .iter()
                    .position(|e| e.eq_ignore_ascii_case(h))
                    .unwrap_or(0)
                    + 1,
                i + 1
            );
        }
    }
    let Some(email_col) = col("email") else {
        anyhow::bail!(
            "{source}: line {header_line}: the header row has no `email` column (columns: email, name, newsletters, status)"
        );
    };
    let (name_col, news_col, status_col) = (col("name"), col("newsletters"), col("status"));
    let default_newsletters = news_col.is_none().then(|| newsletters.join(" "));

    let mut report = Report {
        defaults: Defaults {
            newsletters: news_col.is_none().then(|| newsletters.to_vec()),
        },
        ..Report::default()
    };
    // Addresses seen so far, as 64-bit hashes with their line: a million rows cost ~24 MB.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut batch: Vec<ImportRow> = Vec::with_capacity(BATCH);
    let evidence = format!("import:{source}");
    loop {
        raw.clear();
        let n = lines.read_until(b'\n', &mut raw)?;
        if n == 0 {
            break;
        }
        read_bytes += n as u64;
        line_no += 1;
        let line = line_no;
        let Ok(text) = std::str::from_utf8(&raw) else {
            report.rows += 1;
            report.bad.push(format!(
                "line {line}: not valid UTF-8; save the file as UTF-8"
            ));
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        let fields = match split_line(text) {
            Ok(f) => f,
            Err(e) => {
                report.bad.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let field = |i: Option<usize>| {
            i.and_then(|i| fields.get(i))
                .map(String::as_str)
                .unwrap_or("")
        };
        let news = match &default_newsletters {
            Some(all) => all.as_str(),
            None => field(news_col),
        };
        match parse_row(
            &unguard(field(Some(email_col))),
            &unguard(field(name_col)),
            news,
            field(status_col),
            newsletters,
        ) {
            Err(reason) => report.bad.push(format!("line {line}: {reason}")),
            Ok(row) => {
                let mut h = DefaultHasher::new();
                row.email.key().hash(&mut h);
                match seen.insert(h.finish(), line) {
                    Some(first) => {
                        seen.insert(h.finish(), first);
                        report.bad.push(format!(
                            "line {line}: {} is a duplicate of line {first}; skipped",
                            row.email
                        ));
                    }
                    None => batch.push(row),
                }
            }
        }
        if batch.len() >= BATCH {
            flush(store, &mut batch, &evidence, now, &mut report).await?;
            progress(read_bytes);
        }
    }
    flush(store, &mut batch, &evidence, now, &mut report).await?;
    progress(read_bytes);
    Ok(report)
}

/// The fields of one CSV line (RFC 4180 quoting; spaces around fields trimmed). A field
/// that opens a quote and never closes it is an error: the csv crate would read the rest of
/// the line (and, across lines, the rest of the file) into it.
fn split_line(line: &str) -> Result<Vec<String>, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(column) = unterminated_quote(line) {
        return Err(format!(
            "unterminated quoted field (the quote in column {column} is never closed)"
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(line.len() + 1)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(_) => Ok(record.iter().map(str::to_string).collect()),
        Err(e) => Err(e.to_string()),
    }
}

/// The 1-based column of a quoted field left open, if any. Only quote balance is checked
/// here (a quote opens a field, `""` inside it is a literal quote, the next lone quote
/// closes it); the csv crate does the parsing.
fn unterminated_quote(line: &str) -> Option<usize> {
    let mut column = 1;
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Some(column),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some(_) => {}
                }
            }
        }
        // The rest of the field, up to the next comma.
        loop {
            match chars.next() {
                None => return None,
                Some(',') => break,
                Some(_) => {}
            }
        }
        column += 1;
    }
}

/// Whether a spreadsheet would run `s` as a formula (OWASP "CSV injection"): it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return — or with `'` followed by such a cell, so
/// that [`guard`] and [`unguard`] undo each other exactly.
fn needs_guard(s: &str) -> bool {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => true,
        Some('\'') => needs_guard(&s[1..]),
        _ => false,
    }
}

/// An exported cell: a `'` in front of anything a spreadsheet would run as a formula.
pub fn guard(s: &str) -> std::borrow::Cow<'_, str> {
    if needs_guard(s) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// An imported cell: the `'` that [`guard`] added taken off again.
pub fn unguard(s: &str) -> std::borrow::Cow<'_, str> {
    match s.strip_prefix('\'') {
        Some(rest) if needs_guard(rest) => rest.into(),
        _ => s.into(),
    }
}

async fn flush(
    store: &Store,
    batch: &mut Vec<ImportRow>,
    evidence: &str,
    now: DateTime<Utc>,
    report: &mut Report,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let decisions = store.import_batch(batch, evidence, now, decide).await?;
    for d in decisions {
        match d {
            Decision::Insert => report.added += 1,
            Decision::Update { .. } => report.updated += 1,
            Decision::Unchanged => report.unchanged += 1,
            Decision::KeptSuppressed => report.kept_suppressed += 1,
        }
    }
    batch.clear();
    Ok(())
}

fn parse_row(
    email: &str,
    name: &str,
    newsletters: &str,
    status: &str,
    configured: &[String],
) -> Result<ImportRow, String> {
    let email = Email::parse(email)?;
    let name = clean_name(name)?;
    let status = if status.is_empty() {
        Status::Confirmed
    } else {
        status.parse()?
    };
    let mut chosen: Vec<String> = Vec::new();
    for id in newsletters
        .split([' ', ',', ';', '|'])
        .filter(|s| !s.is_empty())
    {
        if !configured.iter().any(|c| c == id) {
            return Err(format!(
                "unknown newsletter {id:?} (configured: {})",
                configured.join(", ")
            ));
        }
        if !chosen.iter().any(|c| c == id) {
            chosen.push(id.to_string());
        }
    }
    chosen.sort();
    Ok(ImportRow {
        email,
        name,
        newsletters: chosen,
        status,
    })
}

/// Writes every subscriber as CSV (`email,name,newsletters,status`); returns the row count.
pub async fn export(store: &Store, out: impl Write) -> anyhow::Result<u64> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(["email", "name", "newsletters", "status"])?;
    let mut rows = 0u64;
    store
        .for_each_subscriber(|email, name, newsletters, status| {
            rows += 1;
            writer.write_record([
                &*guard(email),
                &*guard(name),
                &newsletters.join(" "),
                status.as_str(),
            ])
        })
        .await?;
    writer.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Any line is split or refused with a reason, and every row gets a result.
        #[test]
        fn any_line_is_answered(line in "[a-z@.,\"' =+\\-\t]{0,60}|.{0,60}") {
            if let Ok(fields) = split_line(&line) {
                let get = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
                let _ = parse_row(get(0), get(1), get(2), get(3), &["weekly".to_string()]);
            }
        }

        /// guard and unguard undo each other for any text.
        #[test]
        fn guarding_is_reversible(cell in ".{0,30}") {
            let guarded = guard(&cell);
            let back = unguard(&guarded);
            prop_assert_eq!(back.as_ref(), cell.as_str());
            prop_assert!(!guard(&cell).starts_with(['=', '+', '-', '@', '\t', '\r']));
        }
    }

    #[test]
    fn quotes_are_balanced_or_named() {
        assert_eq!(split_line("a,\"b, c\",d\n").unwrap(), ["a", "b, c", "d"]);
        assert_eq!(
            split_line("\"say \"\"hi\"\"\",x").unwrap(),
            ["say \"hi\"", "x"]
        );
        assert!(split_line("a,\"open\r\n").unwrap_err().contains("column 2"));
        assert_eq!(split_line("O'Brien,ab\"c").unwrap(), ["O'Brien", "ab\"c"]);
    }

    fn row(status: Status, name: &str, news: &[&str]) -> ImportRow {
        ImportRow {
            email: Email::parse("a@example.org").unwrap(),
            name: name.into(),
            newsletters: news.iter().map(|s| s.to_string()).collect(),
            status,
        }
    }

    fn existing(status: Status, name: &str, news: &[&str]) -> Existing {
        Existing {
            id: 1,
            status,
            name: name.into(),
            newsletters: news.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn suppressed_addresses_are_never_lifted() {
        for s in [Status::Unsubscribed, Status::Bounced, Status::Complained] {
            let e = existing(s, "A", &[]);
            assert_eq!(
                decide(Some(&e), &row(Status::Confirmed, "A", &["w"])),
                Decision::KeptSuppressed
            );
            assert_eq!(decide(Some(&e), &row(s, "A", &[])), Decision::Unchanged);
        }
    }

    #[test]
    fn rows_can_suppress_confirm_rename_and_add() {
        let e = existing(Status::Confirmed, "A", &["w"]);
        assert_eq!(
            decide(Some(&e), &row(Status::Unsubscribed, "", &["w"])),
            Decision::Update {
                status: Some(Status::Unsubscribed),
                name: None,
                add: vec![]
            }
        );
        assert_eq!(
            decide(Some(&e), &row(Status::Pending, "A", &["w"])),
            Decision::Unchanged,
            "never demoted"
        );
        assert_eq!(
            decide(Some(&e), &row(Status::Confirmed, "B", &["w", "d"])),
            Decision::Update {
                status: None,
                name: Some("B".into()),
                add: vec!["d".into()]
            }
        );
        let p = existing(Status::Pending, "A", &[]);
        assert_eq!(
            decide(Some(&p), &row(Status::Confirmed, "", &[])),
            Decision::Update {
                status: Some(Status::Confirmed),
                name: None,
                add: vec![]
            }
        );
        assert_eq!(
            decide(None, &row(Status::Confirmed, "", &[])),
            Decision::Insert
        );
    }

    #[test]
    fn rows_are_validated_with_reasons() {
        let conf = vec!["weekly".to_string()];
        assert!(
            parse_row("bad", "", "", "", &conf)
                .unwrap_err()
                .contains("no @")
        );
        assert!(
            parse_row("a@example.org", "", "monthly", "", &conf)
                .unwrap_err()
                .contains("unknown newsletter")
        );
        assert!(
            parse_row("a@example.org", "", "", "gone", &conf)
                .unwrap_err()
                .contains("unknown status")
        );
        let r = parse_row("A@Example.org", "Ann", "weekly;weekly", "", &conf).unwrap();
        assert_eq!(
            (r.email.as_str(), r.status, r.newsletters.len()),
            ("A@example.org", Status::Confirmed, 1)
        );
    }
}
