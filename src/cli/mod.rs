//! The command line: arguments in, one command run, an exit code out
//! (0 success, 1 runtime failure, 2 bad input).
//!
//! # Layout
//! One module per command: [`init`], [`check`], [`build`], [`run`], [`send`] (and preview),
//! [`status`], [`subscribers`].

pub mod build;
pub mod check;
pub mod init;
pub mod run;
pub mod send;
pub mod status;
pub mod subscribers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, Site};
use crate::error::BadInput;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Publish articles as RSS, Atom and JSON feeds and as email digests."
)]
pub struct Cli {
    /// The publication folder (holding herald.toml).
    #[arg(long, global = true, env = "HERALD_SITE", default_value = ".")]
    pub site: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new publication folder.
    Init {
        /// Where to create it (must not already hold a herald.toml).
        dir: PathBuf,
    },
    /// Validate configuration, articles and templates; exit 0 only if all is clean.
    Check,
    /// Read the articles and write the feeds.
    Build,
    /// The daemon: watch articles, rebuild feeds, serve HTTP, send confirmation emails.
    Run,
    /// Make an issue of newsletter ID now and deliver it (resumes an unfinished one).
    Send {
        id: String,
        /// Show the articles and recipients; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Send one test copy to this address; the ledger is left alone.
        #[arg(long, value_name = "ADDRESS", conflicts_with = "dry_run")]
        to: Option<String>,
    },
    /// Render the next issue of newsletter ID (HTML, or --text).
    Preview {
        id: String,
        #[arg(long)]
        text: bool,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Issues and delivery counts.
    Status,
    /// Manage the subscriber list.
    Subscribers {
        #[command(subcommand)]
        command: subscribers::Command,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(crate::error::exit_code(&e))
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init { dir } => init::run(&dir),
        Command::Check => check::run(&*open(&cli.site)?),
        Command::Build => runtime()?.block_on(build::run(open(&cli.site)?)),
        Command::Run => runtime()?.block_on(run::run(open(&cli.site)?)),
        Command::Send { id, dry_run, to } => {
            runtime()?.block_on(send::send(open(&cli.site)?, &id, dry_run, to))
        }
        Command::Preview { id, text, out } => {
            runtime()?.block_on(send::preview(open(&cli.site)?, &id, text, out))
        }
        Command::Status => runtime()?.block_on(status::run(open(&cli.site)?)),
        Command::Subscribers { command } => {
            runtime()?.block_on(subscribers::run(open(&cli.site)?, command))
        }
    }
}

/// Opens the publication; a configuration error is the user's (exit code 2).
fn open(dir: &std::path::Path) -> anyhow::Result<Arc<Site>> {
    let site = Site::open(dir).map_err(|e: ConfigError| BadInput(e.to_string()))?;
    Ok(Arc::new(site))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HERALD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lettre=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
