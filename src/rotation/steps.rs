//! Counts the changes a rotation makes to the backing tree, one tick before
//! each, so a test can stop a rotation right before any one of them (as a
//! SIGKILL would) and check that the next run finishes the job.

use std::path::Path;

use super::error::RotationError;

#[derive(Debug, Default)]
pub(crate) struct Steps {
    /// Changes made so far.
    pub done: u64,
    /// Test only: fail instead of making change number `stop_at` (0-based).
    #[cfg(test)]
    pub stop_at: Option<u64>,
}

impl Steps {
    /// Call right before each change of the backing tree.
    pub fn tick(&mut self, path: &Path) -> Result<(), RotationError> {
        #[cfg(test)]
        if self.stop_at == Some(self.done) {
            return Err(RotationError::Io {
                path: path.to_path_buf(),
                op: "stopped by the test before",
                source: std::io::Error::other("a simulated crash"),
            });
        }
        let _ = path;
        self.done += 1;
        Ok(())
    }
}
