//! `herald init DIR`: write a new, working publication folder.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::error::BadInput;

const GITIGNORE: &str = "/feeds/\n/subscribers/\n/outbox/\n";

pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    if dir.join("herald.toml").exists() {
        return Err(BadInput(format!(
            "{} already holds a herald.toml; not overwriting it",
            dir.display()
        ))
        .into());
    }
    let name = dir
        .canonicalize()
        .ok()
        .or_else(|| Some(dir.to_path_buf()))
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty() && n != ".")
        .unwrap_or_else(|| "My publication".into());
    let toml = format!(
        r#"# herald configuration. Every key and its default is listed in the README.

[site]
title = "{title}"
description = "News and notes from {title}"
base_url = "http://127.0.0.1:8080/"   # the public address readers reach
language = "en"
timezone = "UTC"                      # dates written without an offset are in this zone
author = {{ name = "{title}" }}

[feeds]
items = 50
formats = ["rss", "atom", "json"]
per_tag = true

[http]
bind = "127.0.0.1:8080"
"#,
        title = name.replace(['"', '\\'], "")
    );
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let article = format!(
        "---\ntitle: Hello, world\ndate: {today}\ntags: [news]\n---\n\nThis is the first article of this publication. Edit or delete `articles/hello.md`,\nadd more files, and run `herald build` or `herald run`.\n"
    );
    for sub in ["articles", "templates"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    write_new(&dir.join("herald.toml"), &toml)?;
    write_new(&dir.join("articles/hello.md"), &article)?;
    write_new(&dir.join(".gitignore"), GITIGNORE)?;
    write_new(
        &dir.join("templates/README.md"),
        "Templates placed here override herald's built-in ones by name (NAME.html.hbs, NAME.txt.hbs).\n",
    )?;
    println!("created a publication in {}", dir.display());
    println!("next: cd {} && herald check && herald run", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
