//! The fault suite at a reduced size, inside `cargo test` (and so `cargo xtask test`):
//! every scenario of `cargo xtask faults`, each smaller, in one run so the secrets
//! scenario sees every other scenario's logs.

use faults::Size;

#[test]
fn every_fault_scenario_passes_at_quick_size() {
    let outcomes = faults::run_all(Size::Quick, |outcome| eprintln!("{}", outcome.line()));
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|outcome| !outcome.passed())
        .map(|outcome| outcome.line())
        .collect();
    assert!(
        failed.is_empty(),
        "{}:\n{}",
        faults::summary(&outcomes),
        failed.join("\n")
    );
}
