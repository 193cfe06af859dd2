//! Checking an Objective-C method's type encoding before sending it a message.
//!
//! Private classes change between OS releases; a selector whose arguments or return type
//! changed must not be called with the old signature. [`Signature`] states what this code
//! passes and expects; [`encoding_matches`] compares it with what the runtime reports
//! (`method_getTypeEncoding` spellings: `@` object, `I` unsigned int, `q` long long, `B`
//! bool, `^…` pointer, with optional qualifiers such as `r` for const).

/// How a method is called: is it a class method, and the type encodings of its return
/// value and arguments (after `self` and `_cmd`), as `method_getTypeEncoding` spells them
/// (`@` object, `I` unsigned int, `q` long long, `B` bool, `^v` pointer, ...).
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// Class method (`+`) or instance method (`-`).
    pub class_method: bool,
    /// Accepted return encodings (several spellings of the same ABI type are allowed:
    /// `B` and `c` for `BOOL`, `^v` and `^{…}` for pointers).
    pub returns: &'static [&'static str],
    /// Accepted encodings per argument.
    pub args: &'static [&'static [&'static str]],
}

/// Whether a runtime encoding is one of the accepted spellings.
pub fn encoding_matches(actual: &str, accepted: &[&str]) -> bool {
    // Encodings may carry qualifiers (`r` const, `n`/`o`/`N` in/out) and, for objects, a
    // class name (`@"NSString"`): compare the bare type.
    let bare = actual.trim_start_matches(['r', 'n', 'N', 'o', 'O', 'R', 'V']);
    accepted.iter().any(|a| {
        bare == *a
            || (a.starts_with('@') && bare.starts_with('@'))
            || (*a == "^" && bare.starts_with('^'))
    })
}

/// An object (`id`).
pub const OBJ: &[&str] = &["@"];
/// `BOOL` (`B` on arm64, `c` where BOOL is a signed char).
pub const BOOL: &[&str] = &["B", "c"];
/// `unsigned int`.
pub const UINT: &[&str] = &["I"];
/// `long long` / `NSInteger` on 64-bit.
pub const INT64: &[&str] = &["q", "l"];
/// Any pointer.
pub const PTR: &[&str] = &["^"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_compare_bare_types() {
        assert!(encoding_matches("@", OBJ));
        assert!(encoding_matches("@\"NSString\"", OBJ));
        assert!(encoding_matches("rI", UINT));
        assert!(encoding_matches("B", BOOL));
        assert!(encoding_matches("c", BOOL));
        assert!(!encoding_matches("I", BOOL));
        assert!(encoding_matches("^{__IOSurface=}", PTR));
        assert!(encoding_matches("r^v", PTR));
        assert!(!encoding_matches("q", UINT));
    }
}
