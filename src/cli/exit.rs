//! The `switchboard` command's exit codes, in one place: what each means, how an error maps to
//! one, and the text `switchboard --help` shows (docs/OPERATIONS.md lists the same).

use std::process::ExitCode;
use switchboard::app::AppError;
use switchboard::bus::BusError;
use switchboard::store::StoreError;

/// Success.
pub const OK: u8 = 0;
/// The command failed (bad input, a refused change, a failed check…); the message says why.
pub const FAILURE: u8 = 1;
/// The command line is wrong (unknown command or option, missing argument): clap's own code.
pub const USAGE: u8 = 2;
/// What the command names does not exist (a ticket, dead letter, key, user, endpoint, hold).
pub const NOT_FOUND: u8 = 3;
/// RabbitMQ or PostgreSQL cannot be reached: retrying later may succeed.
pub const UNREACHABLE: u8 = 4;

/// The `--help` footer listing the codes.
pub const HELP: &str = "Exit codes:\n  \
    0  success\n  \
    1  failure (the message says what is wrong and what to do)\n  \
    2  usage error (unknown command or option, missing argument)\n  \
    3  not found (the ticket, dead letter, key, user, webhook endpoint or hold named does not exist)\n  \
    4  RabbitMQ or PostgreSQL unreachable (retry when it is back)\n\n\
    Listings (agents list, keys list, users list, dead list, webhooks list, …) take \
    --format table|json|csv.";

/// An error for something the command names that does not exist: exits with [`NOT_FOUND`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(pub String);

/// `Err(NotFound)` as an `anyhow::Error`, for `return Err(not_found(…))`.
pub fn not_found(message: impl Into<String>) -> anyhow::Error {
    NotFound(message.into()).into()
}

fn unreachable_bus(e: &BusError) -> bool {
    matches!(
        e,
        BusError::Unreachable { .. } | BusError::ConnectTimeout { .. } | BusError::ConnectionLost
    )
}

fn unreachable_store(e: &StoreError) -> bool {
    matches!(e, StoreError::Unreachable { .. })
}

/// The exit code an error ends the command with.
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<NotFound>() {
            return NOT_FOUND;
        }
        let unreachable = match (
            cause.downcast_ref::<AppError>(),
            cause.downcast_ref::<BusError>(),
            cause.downcast_ref::<StoreError>(),
        ) {
            // `AppError` is transparent: its Display and source are the inner error's, so the
            // inner error is not a link of the chain of its own.
            (Some(AppError::Bus(b)), ..) | (_, Some(b), _) => unreachable_bus(b),
            (Some(AppError::Store(s)), ..) | (_, _, Some(s)) => unreachable_store(s),
            _ => false,
        };
        if unreachable {
            return UNREACHABLE;
        }
    }
    FAILURE
}

pub fn exit_code(code: u8) -> ExitCode {
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn not_found_is_3_even_under_context() {
        let e = Err::<(), _>(not_found("no ticket \"X\"")).context("showing the ticket");
        assert_eq!(code_of(&e.unwrap_err()), NOT_FOUND);
    }

    #[test]
    fn an_unreachable_broker_or_database_is_4_other_errors_1() {
        let lost: anyhow::Error = BusError::ConnectionLost.into();
        assert_eq!(code_of(&lost), UNREACHABLE);
        let app: anyhow::Error = AppError::Bus(BusError::ConnectionLost).into();
        assert_eq!(code_of(&app), UNREACHABLE);
        let nacked: anyhow::Error = BusError::Nacked("m1".into()).into();
        assert_eq!(code_of(&nacked), FAILURE);
        let conflict: anyhow::Error = AppError::Store(StoreError::Conflict("taken".into())).into();
        assert_eq!(code_of(&conflict), FAILURE);
        assert_eq!(code_of(&anyhow::anyhow!("bad input")), FAILURE);
    }

    #[test]
    fn the_help_lists_every_code() {
        for code in [OK, FAILURE, USAGE, NOT_FOUND, UNREACHABLE] {
            assert!(HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
