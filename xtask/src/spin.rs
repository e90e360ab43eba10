//! Real Spin: the binary `up` runs the app on and the tests run on too, when there is
//! one of 3.6 or newer (the harness's `Runtime::spin` asks `spin_version::check` too).

use anyhow::{Result, anyhow};

/// Names the Spin binary to use; unset, `spin` on PATH is used when it will do.
pub const VARIABLE: &str = "TICKETING_SPIN";

/// A Spin that will do: how to run it, and its `--version` line.
pub struct Spin {
    pub program: String,
    pub version: String,
}

/// The Spin `TICKETING_SPIN` names, which must then be usable (an error says why it is
/// not: a run that quietly tested less would look like one that tested all), else
/// `spin` on PATH when it is 3.6 or newer.
pub fn find() -> Result<Option<Spin>> {
    match std::env::var(VARIABLE)
        .ok()
        .filter(|named| !named.is_empty())
    {
        Some(named) => match spin_version::check(&named) {
            Ok(version) => Ok(Some(Spin {
                program: named,
                version,
            })),
            Err(why) => Err(anyhow!("{VARIABLE}={named}: {why}")),
        },
        None => Ok(spin_version::check("spin").ok().map(|version| Spin {
            program: "spin".to_owned(),
            version,
        })),
    }
}
