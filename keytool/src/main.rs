// Wired to the command line by the integrator; until then nothing calls it.
#[allow(dead_code)]
mod audit_cmd;

fn main() {}
