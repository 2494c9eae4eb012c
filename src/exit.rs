//! Documented exit codes.

/// The run completed and no policy threshold was breached (or no policy was given).
pub const PASS: u8 = 0;
/// At least one finding breached a policy threshold (`--policy`).
pub const POLICY_BREACHED: u8 = 1;
/// Usage, input, data or model error: nothing was concluded.
pub const ERROR: u8 = 2;
