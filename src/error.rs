//! Errors the user caused, and the exit code every failure maps to
//! (0 success, 1 runtime failure, 2 bad input).

/// Exit codes, as the README documents them.
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

/// A failure caused by what the user gave us (exit code 2), as opposed to the world.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The exit code for a failed command: [`EXIT_BAD_INPUT`] when the failure is a
/// [`BadInput`], [`EXIT_RUNTIME`] otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<BadInput>().is_some() {
        EXIT_BAD_INPUT
    } else {
        EXIT_RUNTIME
    }
}
