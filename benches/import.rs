//! Import benchmark: a 1,000,000-row subscriber CSV imported into a fresh store, imported
//! again (every row unchanged), and exported; next to a baseline in the same process (the
//! csv crate reading the same file). Peak memory is the kernel's high-water mark.
//!
//! `cargo bench --bench import` (env `ROWS=n` for another size).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use herald::config::Site;
use herald::store::Store;
use herald::subscribers::import;

#[path = "support/mod.rs"]
mod support;
use support::{peak_mb, ratio, reset_peak, secs};

fn main() {
    let rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[site]\ntitle = \"Bench\"\nbase_url = \"https://bench.example.com/\"\n\n[[newsletter]]\nid = \"weekly\"\ntitle = \"Weekly\"\nschedule = \"0 7 * * Fri\"\n\n[[newsletter]]\nid = \"daily\"\ntitle = \"Daily\"\nschedule = \"0 7 * * *\"\n",
    )
    .unwrap();
    let csv = dir.path().join("subscribers.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(f, "email,name,newsletters,status").unwrap();
    for i in 0..rows {
        let news = match i % 3 {
            0 => "weekly",
            1 => "daily",
            _ => "weekly daily",
        };
        let status = if i % 50 == 0 {
            "unsubscribed"
        } else {
            "confirmed"
        };
        writeln!(
            f,
            "reader{i}@example{}.org,Reader Number {i},{news},{status}",
            i % 97
        )
        .unwrap();
    }
    drop(f);
    let size = std::fs::metadata(&csv).unwrap().len();
    println!("file: {rows} rows, {:.1} MB", size as f64 / 1e6);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let site = Arc::new(
            Site::open_with_env(dir.path(), std::iter::empty::<(String, String)>()).unwrap(),
        );
        let store = Store::open(&site.store_location().unwrap()).await.unwrap();
        let ids = vec!["weekly".to_string(), "daily".to_string()];

        let t = Instant::now();
        let mut reader = csv::Reader::from_path(&csv).unwrap();
        let mut n = 0usize;
        for r in reader.records() {
            n += r.unwrap().len();
        }
        assert!(n > 0);
        let baseline = t.elapsed();
        println!("baseline (csv crate reads the file): {}", secs(baseline));

        reset_peak();
        let t = Instant::now();
        let file = std::io::BufReader::new(std::fs::File::open(&csv).unwrap());
        let report = import::import(&store, file, "subscribers.csv", &ids, Utc::now(), |_| {})
            .await
            .unwrap();
        let first = t.elapsed();
        assert_eq!(report.added as usize, rows);
        println!(
            "import into an empty store: {}  = {:.1}x baseline, {:.0} rows/s, peak RSS {:.0} MB",
            secs(first),
            ratio(first, baseline),
            rows as f64 / first.as_secs_f64(),
            peak_mb()
        );

        reset_peak();
        let t = Instant::now();
        let file = std::io::BufReader::new(std::fs::File::open(&csv).unwrap());
        let report = import::import(&store, file, "subscribers.csv", &ids, Utc::now(), |_| {})
            .await
            .unwrap();
        let again = t.elapsed();
        assert_eq!(
            report.unchanged as usize + report.kept_suppressed as usize,
            rows
        );
        println!(
            "the same file again (nothing changes): {}  = {:.1}x baseline, peak RSS {:.0} MB",
            secs(again),
            ratio(again, baseline),
            peak_mb()
        );

        reset_peak();
        let out = dir.path().join("export.csv");
        let t = Instant::now();
        let n = import::export(
            &store,
            std::io::BufWriter::new(std::fs::File::create(&out).unwrap()),
        )
        .await
        .unwrap();
        let export = t.elapsed();
        assert_eq!(n as usize, rows);
        println!(
            "export: {}  = {:.1}x baseline, peak RSS {:.0} MB",
            secs(export),
            ratio(export, baseline),
            peak_mb()
        );
        store.close().await;
    });
}
