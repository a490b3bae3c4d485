// Wired into the CLI by the integrator; until then only its tests use it.
#[allow(dead_code)]
mod policy_cmd;

fn main() {}
