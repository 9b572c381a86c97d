//! Build script: notices whether Debian's Chromium and ChromeDriver, and newsboat, are
//! installed, so the browser test and the feed reader test run where they are and are
//! listed as ignored (with the reason) where not.
//!
//! Cargo treats a `rerun-if-changed` path that does not exist as always stale, which would
//! rebuild herald on every `cargo run`. So the script watches the programs that exist, and
//! otherwise the folder they would be installed into (its modification time changes when a
//! package adds a program there).

use std::path::Path;

const BROWSER: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";
const NEWSBOAT: &str = "/usr/bin/newsboat";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(herald_browser)");
    println!("cargo::rustc-check-cfg=cfg(herald_newsboat)");
    println!("cargo::rerun-if-changed=build.rs");
    let exists = |p: &str| Path::new(p).exists();
    let mut missing = false;
    for p in [BROWSER, DRIVER, NEWSBOAT] {
        if exists(p) {
            println!("cargo::rerun-if-changed={p}");
        } else {
            missing = true;
        }
    }
    if exists(BROWSER) && exists(DRIVER) {
        println!("cargo::rustc-cfg=herald_browser");
    }
    if exists(NEWSBOAT) {
        println!("cargo::rustc-cfg=herald_newsboat");
    }
    if missing && Path::new("/usr/bin").is_dir() {
        println!("cargo::rerun-if-changed=/usr/bin");
    }
}
