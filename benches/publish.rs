//! Build benchmark: a synthetic publication of 10,000 Markdown articles of about 5 KB with
//! 20 tags. Measures a cold full build (empty store), a warm full build (as a second
//! `herald build`), and the daemon's rebuild after one article changes, each next to a
//! baseline in the same process (reading every article file), plus peak memory.
//!
//! Two corpora, each measured against its own baseline: `ascii` (the original one: English
//! filler words, Markdown only) and `multilingual` (German, French, Greek, Russian, Arabic,
//! Hebrew, Japanese, Chinese and emoji text, HTML entities, inline HTML, footnotes, images
//! and front-matter summaries with markup), the text real publications hold.
//!
//! `cargo bench --bench publish` (env `ARTICLES=n` for another size, `CORPUS=ascii` or
//! `CORPUS=multilingual` for one corpus only, `BENCH_DIR=dir` to keep the publications
//! in `dir/<corpus>`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use herald::config::Site;
use herald::publish::Publisher;
use herald::store::Store;

#[path = "support/mod.rs"]
mod support;
use support::{ms, peak_mb, ratio, reset_peak};

const TAGS: usize = 20;

fn main() {
    let n: usize = std::env::var("ARTICLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let corpora: Vec<Corpus> = match std::env::var("CORPUS").as_deref() {
        Ok("ascii") => vec![Corpus::Ascii],
        Ok("multilingual") => vec![Corpus::Multilingual],
        _ => vec![Corpus::Ascii, Corpus::Multilingual],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for corpus in corpora {
        // BENCH_DIR keeps the generated publication (for timing `herald build` on it).
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("BENCH_DIR")
            .map(|d| std::path::PathBuf::from(d).join(corpus.name()))
            .unwrap_or_else(|| tmp.path().to_path_buf());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = generate(&dir, n, corpus);
        println!(
            "\n== corpus {}: {n} articles, {:.1} MB of Markdown, {TAGS} tags, in {}",
            corpus.name(),
            bytes as f64 / 1e6,
            dir.display()
        );
        rt.block_on(run(&dir, n));
    }
}

#[derive(Clone, Copy)]
enum Corpus {
    Ascii,
    Multilingual,
}

impl Corpus {
    fn name(self) -> &'static str {
        match self {
            Corpus::Ascii => "ascii",
            Corpus::Multilingual => "multilingual",
        }
    }
}

async fn run(dir: &Path, n: usize) {
    let site = Arc::new(Site::open_with_env(dir, std::iter::empty::<(String, String)>()).unwrap());

    let baseline = median(3, || {
        let t = Instant::now();
        let mut total = 0;
        for e in walk(&dir.join("articles")) {
            total += std::fs::read(e).unwrap().len();
        }
        assert!(total > 0);
        t.elapsed()
    });
    println!("baseline (read every article file): {}", ms(baseline));

    reset_peak();
    let store = Store::open(&site.store_location().unwrap()).await.unwrap();
    let t = Instant::now();
    let build = Publisher::new(site.clone(), store.clone())
        .build(Utc::now())
        .await
        .unwrap();
    let cold = t.elapsed();
    let cold_peak = peak_mb();
    assert!(build.problems.is_empty());
    assert_eq!(build.published, n);
    println!(
        "cold full build (empty store, {} feed files written): {}  = {:.1}x baseline, peak RSS {cold_peak:.0} MB",
        build.changed.len(),
        ms(cold),
        ratio(cold, baseline)
    );
    drop(build);

    let mut warm = Vec::new();
    for _ in 0..3 {
        reset_peak();
        let t = Instant::now();
        let b = Publisher::new(site.clone(), store.clone())
            .build(Utc::now())
            .await
            .unwrap();
        warm.push((t.elapsed(), peak_mb()));
        assert!(b.changed.is_empty());
    }
    warm.sort_by_key(|a| a.0);
    let (warm_t, warm_peak) = warm[1];
    println!(
        "warm full build (as a second `herald build`): {}  = {:.1}x baseline, peak RSS {warm_peak:.0} MB",
        ms(warm_t),
        ratio(warm_t, baseline)
    );

    // The daemon's case: one long-lived publisher, one article edited.
    let mut publisher = Publisher::new(site.clone(), store.clone());
    publisher.build(Utc::now()).await.unwrap();
    let mut times = Vec::new();
    let mut rewritten = 0;
    for round in 0..5 {
        // The newest articles are in the main feed and their tag feeds: the expensive case.
        let path = dir.join(format!("articles/{:05}.md", n - 1 - round));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("Lorem", &format!("Edited{round}"), 1)).unwrap();
        let t = Instant::now();
        let b = publisher.build(Utc::now()).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(b.reread, 1);
        assert!(!b.changed.is_empty());
        rewritten = b.changed.len();
    }
    times.sort();
    println!(
        "rebuild after one article changes (daemon, median of 5): {}  = {:.2}x baseline, {} feed files rewritten",
        ms(times[2]),
        ratio(times[2], baseline),
        rewritten
    );
    let peak = peak_mb();
    println!("peak RSS over the daemon rebuilds: {peak:.0} MB");
    store.close().await;
}

fn generate(dir: &Path, n: usize, corpus: Corpus) -> usize {
    std::fs::write(
        dir.join("herald.toml"),
        "[site]\ntitle = \"Bench\"\nbase_url = \"https://bench.example.com/\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("articles")).unwrap();
    let ascii = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "harbour",
        "council",
        "market",
        "weather",
        "ferry",
        "library",
        "budget",
        "storm",
        "tide",
        "bakery",
        "regatta",
        "lighthouse",
        "quay",
        "road",
        "bus",
    ];
    // Words and fragments as real multilingual text has them: accents, ligatures, other
    // scripts, right-to-left text, emoji, entities (named, decimal, hex) and inline HTML.
    let multilingual = [
        "Straße",
        "Größe",
        "Bürgermeister",
        "déjà",
        "œuvre",
        "façade",
        "Ελλάδα",
        "θάλασσα",
        "Москва",
        "погода",
        "مرحبا",
        "السوق",
        "שלום",
        "ירושלים",
        "東京",
        "天気予報",
        "北京",
        "图书馆",
        "🌊",
        "⛴️",
        "&amp;",
        "&lt;b&gt;",
        "&eacute;t&eacute;",
        "&#8212;",
        "&#x1F600;",
        "<em>wichtig</em>",
        "<b>Nachricht</b>",
        "<a href=\"/ort/\">Ort</a>",
        "Vec<T>",
        "a < b",
        "naïve",
        "ﬁne",
    ];
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut total = 0;
    for i in 0..n {
        let t1 = next() as usize % TAGS;
        let t2 = (t1 + 1 + next() as usize % (TAGS - 1)) % TAGS;
        let day = i % 28 + 1;
        let month = (i / 28) % 12 + 1;
        let year = 1990 + i / (28 * 12);
        let time = format!("{:02}:{:02}", i % 24, i % 60);
        let mut body = match corpus {
            Corpus::Ascii => format!(
                "---\ntitle: \"Article {i}: the {} and the {}\"\ndate: {year}-{month:02}-{day:02} {time}\ntags: [\"Topic {t1}\", \"Topic {t2}\"]\n---\n\nLorem intro paragraph for article {i}.\n\n## A heading\n\n",
                ascii[next() as usize % ascii.len()],
                ascii[next() as usize % ascii.len()],
            ),
            Corpus::Multilingual => {
                let w = |k: u64| multilingual[k as usize % multilingual.len()].replace('"', "'");
                format!(
                    "---\ntitle: \"Artikel {i}: {} & {} <3\"\ndate: {year}-{month:02}-{day:02} {time}\ntags: [\"Thema {t1}\", \"話題 {t2}\"]\nsummary: \"Die <b>{}</b> und {} &amp; mehr\"\nimage: /images/{i}.jpg\nauthors: [\"Zoë Ångström\", \"李明\"]\n---\n\nLorem intro — für Artikel {i}, «{}» et „{}“.[^1]\n\n## Überschrift {}\n\n",
                    w(next()),
                    w(next()),
                    w(next()),
                    w(next()),
                    w(next()),
                    w(next()),
                    w(next()),
                )
            }
        };
        while body.len() < 5000 {
            for _ in 0..60 {
                match corpus {
                    Corpus::Ascii => body.push_str(ascii[next() as usize % ascii.len()]),
                    Corpus::Multilingual => {
                        body.push_str(multilingual[next() as usize % multilingual.len()])
                    }
                }
                body.push(' ');
            }
            body.push_str("with a [link](/some/where/) and **bold** text.\n\n- one\n- two\n\n");
        }
        if let Corpus::Multilingual = corpus {
            body.push_str("\n[^1]: Quelle: Stadtarchiv, S.&nbsp;12 — 資料.\n");
        }
        total += body.len();
        std::fs::write(dir.join(format!("articles/{i:05}.md")), body).unwrap();
    }
    total
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[runs / 2]
}
