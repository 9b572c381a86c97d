//! Subscribers: the signed tokens in emailed links, the confirmation worker, CSV import and
//! export. The vocabulary they share with the store (validated [`Email`], names, [`Status`],
//! [`Evidence`], the confirmation rule) lives in [`crate::audience`] and is re-exported here.
//!
//! # Layout
//! - [`tokens`]: HMAC-signed confirm and unsubscribe tokens.
//! - [`confirmations`]: the confirmation email and its sending worker.
//! - [`import`]: CSV import and export.

pub mod confirmations;
pub mod import;
pub mod tokens;

pub use crate::audience::{
    BOUNCED_CONFIRMATION_EVERY, Email, Evidence, MAX_NAME, Refusal, Status, clean_name,
    may_send_confirmation,
};
