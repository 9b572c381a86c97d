//! Build script: notices whether Debian's Chromium and ChromeDriver are installed, so the
//! browser test runs where they are and is listed as ignored (with the reason) where not.
//!
//! Cargo treats a `rerun-if-changed` path that does not exist as always stale, which would
//! rebuild herald on every `cargo run`. So the script watches the two programs when they
//! exist, and otherwise the folder they would be installed into (its modification time
//! changes when a package adds a program there).

use std::path::Path;

const BROWSER: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(herald_browser)");
    println!("cargo::rerun-if-changed=build.rs");
    let found: Vec<&str> = [BROWSER, DRIVER]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    for p in &found {
        println!("cargo::rerun-if-changed={p}");
    }
    if found.len() == 2 {
        println!("cargo::rustc-cfg=herald_browser");
    } else if Path::new("/usr/bin").is_dir() {
        println!("cargo::rerun-if-changed=/usr/bin");
    }
}
