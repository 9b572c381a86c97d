//! `herald subscribers ...` through the binary: CSV import with bad, duplicate and
//! suppressed rows; idempotent re-import; export that import reads back unchanged.

use super::helpers::*;

const NEWSLETTERS: &str = "
[[newsletter]]
id = \"weekly\"
title = \"Weekly\"
schedule = \"0 7 * * Fri\"

[[newsletter]]
id = \"daily\"
title = \"Daily\"
schedule = \"0 7 * * *\"
";

fn import(p: &Publication, csv: &str) -> std::process::Output {
    let file = p.path().join("subscribers.csv");
    std::fs::write(&file, csv).unwrap();
    p.herald(&["subscribers", "import", file.to_str().unwrap()])
}

#[test]
fn import_reports_bad_rows_by_line_and_keeps_the_good_ones() {
    let p = Publication::with_config(NEWSLETTERS);
    let o = p.herald(&["subscribers", "add", "gone@example.org", "--confirmed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        p.herald(&["subscribers", "remove", "gone@example.org"])
            .status
            .success()
    );

    let csv = "email,name,newsletters,status\n\
               ann@example.org,Ann,weekly,confirmed\n\
               not-an-address,Bad,,\n\
               bob@example.org,Bob,weekly daily,\n\
               ANN@example.org,Ann again,,\n\
               gone@example.org,Back?,weekly,confirmed\n\
               cat@example.org,Cat,monthly,\n\
               dan@example.org,Dan,,sleeping\n\
               \"eve@example.org\",\"Eve, \"\"the\"\" editor\",daily,pending\n\
               fay@example.org,Fay,,unsubscribed\n";
    let o = import(&p, csv);
    assert_eq!(o.status.code(), Some(2), "bad rows make the exit status 2");
    let err = stderr(&o);
    assert!(err.contains(":3: "), "{err}");
    assert!(
        err.contains(":5: ANN@example.org is a duplicate of line 2"),
        "{err}"
    );
    assert!(err.contains(":7: unknown newsletter \"monthly\""), "{err}");
    assert!(err.contains(":8: unknown status \"sleeping\""), "{err}");
    let out = stdout(&o);
    assert!(
        out.contains("9 rows: 4 added, 0 updated, 0 unchanged, 1 left suppressed, 4 rejected"),
        "{out}"
    );

    let list = stdout(&p.herald(&["subscribers", "list"]));
    for (email, status) in [
        ("ann@example.org", "confirmed"),
        ("bob@example.org", "confirmed"),
        ("gone@example.org", "unsubscribed"),
        ("eve@example.org", "pending"),
        ("fay@example.org", "unsubscribed"),
    ] {
        let line = list
            .lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("{email} in\n{list}"));
        assert!(line.contains(status), "{line}");
    }
    assert!(list.contains("Eve, \"the\" editor"));
    // The rejected rows were not imported, and the duplicate did not overwrite Ann.
    assert!(list.contains("5 in all"), "{list}");
    for absent in [
        "cat@example.org",
        "dan@example.org",
        "not-an-address",
        "Ann again",
    ] {
        assert!(!list.contains(absent), "{absent} in\n{list}");
    }

    // The same file again changes nothing.
    let o = import(&p, csv);
    assert!(
        stdout(&o).contains("0 added, 0 updated, 4 unchanged, 1 left suppressed, 4 rejected"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn export_is_what_import_reads_back_unchanged() {
    let p = Publication::with_config(NEWSLETTERS);
    let o = import(
        &p,
        "email,name,newsletters,status\na@example.org,\"Ann, A.\",weekly daily,\nb@example.org,,daily,pending\nc@example.org,Cé,,bounced\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = p.path().join("out.csv");
    let o = p.herald(&["subscribers", "export", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        exported,
        "email,name,newsletters,status\na@example.org,\"Ann, A.\",daily weekly,confirmed\nb@example.org,,daily,pending\nc@example.org,Cé,,bounced\n"
    );
    let o = p.herald(&["subscribers", "import", out.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("3 rows: 0 added, 0 updated, 3 unchanged"),
        "{}",
        stdout(&o)
    );
    // Standard output works too.
    let o = p.herald(&["subscribers", "export"]);
    assert_eq!(stdout(&o), exported);
}

#[test]
fn add_and_remove_from_the_command_line() {
    let p = Publication::with_config(NEWSLETTERS);
    let o = p.herald(&[
        "subscribers",
        "add",
        "x@example.org",
        "--name",
        "X",
        "--newsletter",
        "daily",
        "--confirmed",
    ]);
    assert!(
        stdout(&o).contains("added x@example.org (confirmed)"),
        "{}",
        stdout(&o)
    );
    let o = p.herald(&[
        "subscribers",
        "add",
        "y@example.org",
        "--newsletter",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("there is no newsletter \"nope\""));
    let o = p.herald(&["subscribers", "add", "not an address"]);
    assert_eq!(o.status.code(), Some(2));
    // Without --confirmed: pending, and the confirmation email goes out (to outbox/ here).
    let o = p.herald(&["subscribers", "add", "z@example.org"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let outbox: Vec<_> = std::fs::read_dir(p.path().join("outbox"))
        .unwrap()
        .collect();
    assert_eq!(outbox.len(), 1);
    let list = stdout(&p.herald(&["subscribers", "list", "--status", "pending"]));
    assert!(
        list.contains("z@example.org") && !list.contains("x@example.org"),
        "{list}"
    );
    assert!(
        p.herald(&["subscribers", "remove", "x@example.org"])
            .status
            .success()
    );
    let o = p.herald(&["subscribers", "add", "x@example.org", "--confirmed"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unsubscribed: only the person can subscribe again"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        p.herald(&["subscribers", "remove", "nobody@example.org"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn export_neutralises_spreadsheet_formulas_and_import_restores_them() {
    let p = Publication::with_config(NEWSLETTERS);
    let o = import(
        &p,
        "email,name,newsletters\n\
         -dash@example.org,\"=HYPERLINK(\"\"https://evil.example\"\",\"\"click\"\")\",weekly\n\
         plus@example.org,+1 555,weekly\n\
         at@example.org,@handle,weekly\n\
         quote@example.org,'=already quoted,weekly\n\
         plain@example.org,O'Brien,weekly\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = p.path().join("out.csv");
    assert!(
        p.herald(&["subscribers", "export", out.to_str().unwrap()])
            .status
            .success()
    );
    let csv = std::fs::read_to_string(&out).unwrap();
    // No cell a spreadsheet would evaluate: each starts with a quote mark instead.
    for line in csv.lines().skip(1) {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        for cell in rec.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {line}"
            );
        }
    }
    assert!(csv.contains("'-dash@example.org"), "{csv}");
    assert!(csv.contains("O'Brien"), "{csv}");
    // Importing the export into a fresh store gives back exactly the same people.
    let q = Publication::with_config(NEWSLETTERS);
    let o = import(&q, &csv);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = q.path().join("back.csv");
    assert!(
        q.herald(&["subscribers", "export", back.to_str().unwrap()])
            .status
            .success()
    );
    assert_eq!(std::fs::read_to_string(&back).unwrap(), csv);
    let list = stdout(&q.herald(&["subscribers", "list"]));
    assert!(
        list.contains("=HYPERLINK(\"https://evil.example\",\"click\")"),
        "{list}"
    );
    assert!(list.contains("-dash@example.org"), "{list}");
}

#[test]
fn an_unterminated_quote_is_reported_on_its_line_and_later_rows_still_count() {
    let p = Publication::with_config(NEWSLETTERS);
    let mut csv = String::from("email,name,newsletters\n");
    for i in 1..=9 {
        csv.push_str(&format!("p{i}@example.org,P{i},weekly\n"));
    }
    csv.push_str("broken@example.org,\"Unclosed name,weekly\n"); // line 11
    for i in 12..=15 {
        csv.push_str(&format!("p{i}@example.org,P{i},weekly\n"));
    }
    let o = import(&p, &csv);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(":11: unterminated quoted field"), "{err}");
    assert!(
        stdout(&o)
            .contains("14 rows: 13 added, 0 updated, 0 unchanged, 0 left suppressed, 1 rejected"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn duplicate_columns_are_named_and_a_file_without_newsletters_gets_them_all() {
    let p = Publication::with_config(NEWSLETTERS);
    let o = import(&p, "email,name,Email\na@example.org,A,b@example.org\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("line 1: the column \"Email\" appears twice"),
        "{}",
        stderr(&o)
    );

    let o = import(&p, "email,name\nall@example.org,All\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("every newsletter (weekly, daily)"),
        "{}",
        stdout(&o)
    );
    let list = stdout(&p.herald(&["subscribers", "list", "--newsletter", "daily"]));
    assert!(list.contains("all@example.org"), "{list}");
}
