//! What auth accepts: emails and passwords, parsed into types that can only hold valid
//! values (the messages are API.md's).

/// An email address as its owner typed it (trimmed), known to be well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: Option<&str>) -> Result<Email, &'static str> {
        let email = input.map(str::trim).unwrap_or_default();
        if is_valid_email(email) {
            Ok(Email(email.to_owned()))
        } else {
            Err("Email must be valid")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What uniqueness and sign-in compare: emails are the same ignoring case.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A password for a new account: 4 to 20 characters after trimming.
#[derive(Debug)]
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(input: Option<&str>) -> Result<NewPassword, &'static str> {
        let password = input.map(str::trim).unwrap_or_default();
        if (4..=20).contains(&password.chars().count()) {
            Ok(NewPassword(password.to_owned()))
        } else {
            Err("Password must be between 4 and 20 characters")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password given to sign in: anything but blank, trimmed as at sign-up.
#[derive(Debug)]
pub struct GivenPassword(String);

impl GivenPassword {
    pub fn parse(input: Option<&str>) -> Result<GivenPassword, &'static str> {
        let password = common::required(input, "You must supply a password")?;
        Ok(GivenPassword(password.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `local@domain`: a dot-atom local part (letters of any script, digits and
/// `!#$%&'*+-/=?^_`{|}~`, dots only between them) of at most 64 characters, and a
/// domain of at least two labels (letters, digits, inner hyphens; at most 63
/// characters each) whose last one is at least two letters; 254 characters at most.
fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let is_atom_char = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let local_ok = (1..=64).contains(&local.chars().count())
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atom_char));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.chars().count())
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let top_level_ok = labels.last().is_some_and(|top| {
        top.chars().count() >= 2
            && (top.chars().all(char::is_alphabetic) || top.starts_with("xn--"))
    });
    email.chars().count() <= 254
        && local_ok
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && top_level_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for email in [
            "test@test.com",
            "first.last+tag@mail.example.org",
            "o'brien@example.ie",
            "jürgen@müller.de",
            "a@xn--mller-kva.de",
            "  padded@example.com  ",
        ] {
            assert!(Email::parse(Some(email)).is_ok(), "{email}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        for email in [
            "",
            "plainaddress",
            "@example.com",
            "user@",
            "user@localhost",
            "user@example.c",
            "user@example.123",
            "us er@example.com",
            "user@exa mple.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@-example.com",
            "user@example-.com",
            "user@example..com",
            "user@@example.com",
            "user(comment)@example.com",
            &long_local,
            &long_label,
        ] {
            assert_eq!(
                Email::parse(Some(email)),
                Err("Email must be valid"),
                "{email}"
            );
        }
        assert_eq!(Email::parse(None), Err("Email must be valid"));
    }

    #[test]
    fn emails_compare_ignoring_case_but_keep_their_spelling() {
        let email = Email::parse(Some(" Alice@Example.COM ")).unwrap();
        assert_eq!(email.as_str(), "Alice@Example.COM");
        assert_eq!(email.key(), "alice@example.com");
    }

    #[test]
    fn new_passwords_have_4_to_20_characters_after_trimming() {
        for ok in ["abcd", "a".repeat(20).as_str(), "  abcd  ", "ünïcødé✓"] {
            assert!(NewPassword::parse(Some(ok)).is_ok(), "{ok:?}");
        }
        let long = "a".repeat(21);
        for bad in ["", "abc", "  abc  ", long.as_str()] {
            assert!(NewPassword::parse(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(NewPassword::parse(None).is_err());
        assert_eq!(NewPassword::parse(Some(" pass ")).unwrap().as_str(), "pass");
    }

    #[test]
    fn a_sign_in_password_must_not_be_blank() {
        assert_eq!(GivenPassword::parse(Some(" pw ")).unwrap().as_str(), "pw");
        for blank in [Some(""), Some("   "), None] {
            assert_eq!(
                GivenPassword::parse(blank).unwrap_err(),
                "You must supply a password"
            );
        }
    }
}
