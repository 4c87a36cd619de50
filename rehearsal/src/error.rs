//! The two ways a rehearsal can stop early, and their exit statuses (in one place).

/// Why the rehearsal could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something that cannot be rehearsed: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Something outside the user's arguments failed (a file, the calibration): exit 3.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed(message.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Failed(_) => EXIT_FAILED,
        }
    }
}

pub const EXIT_SLO_MET: i32 = 0;
pub const EXIT_SLO_MISSED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_FAILED: i32 = 3;
