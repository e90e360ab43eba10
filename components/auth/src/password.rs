//! Password hashes: argon2id with a random salt per password, stored as a PHC string
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) that carries its own parameters, so
//! they can be raised later without invalidating stored hashes.

use anyhow::anyhow;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory in KiB, passes, lanes: OWASP's minimum for argon2id (m = 19 MiB, t = 2,
/// p = 1). Measured inside the component on a 2-core x86_64 machine: a sign-up or
/// sign-in takes about 65 ms on the host and on Spin 3.6.3 alike when the machine is
/// quiet (up to 120 ms when it is busy; the request log lines show it), nearly all of
/// it this hash: inside the 20-100 ms we aim for.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .expect("the argon2 parameters above are within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> anyhow::Result<String> {
    let hash = hasher()
        .hash_password(password.as_bytes())
        .map_err(|err| anyhow!("hashing a password: {err}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Does the work of one verification against nothing, so that signing in with an
/// unknown email takes as long as with a wrong password.
pub fn verify_nothing(password: &str) {
    let mut out = [0u8; 32];
    let _ = hasher().hash_password_into(password.as_bytes(), b"no user has this salt", &mut out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(!stored.contains("correct horse"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct horsE", &stored));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        assert_ne!(hash("pw12").unwrap(), hash("pw12").unwrap());
    }
}
