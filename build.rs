//! Build script: notices whether Debian's Chromium and ChromeDriver are installed, so the
//! browser test runs where they are and is listed as ignored (with the reason) where not.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(herald_browser)");
    println!("cargo::rerun-if-changed=/usr/bin/chromium");
    println!("cargo::rerun-if-changed=/usr/bin/chromedriver");
    let have = |p: &str| std::path::Path::new(p).exists();
    if have("/usr/bin/chromium") && have("/usr/bin/chromedriver") {
        println!("cargo::rustc-cfg=herald_browser");
    }
}
