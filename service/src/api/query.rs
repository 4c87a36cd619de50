//! Query strings, read strictly.
//!
//! `+` is a space and `%XX` a byte, as in HTML forms (how the original Flask service read
//! them), but a value whose bytes are not UTF-8 once decoded is refused rather than
//! quietly repaired with U+FFFD, and a parameter given twice is refused rather than one
//! of its values picked. Parameters a route does not know are ignored.

use std::borrow::Cow;

use crate::error::ApiError;

/// The values of the parameters a route knows, in the order of `known`.
#[derive(Debug)]
pub struct QueryParams<'q, const N: usize> {
    known: [&'static str; N],
    values: [Option<Cow<'q, str>>; N],
}

impl<'q, const N: usize> QueryParams<'q, N> {
    /// Reads the parameters named in `known` from a raw query string (without `?`).
    pub fn parse(raw: Option<&'q str>, known: [&'static str; N]) -> Result<Self, ApiError> {
        let mut values: [Option<Cow<'q, str>>; N] = std::array::from_fn(|_| None);
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(index) = decode(key)
                .ok()
                .and_then(|key| known.iter().position(|k| *k == key))
            else {
                continue;
            };
            let name = known[index];
            if values[index].is_some() {
                return Err(ApiError::bad_request(format!(
                    "invalid query string: {name} is given more than once"
                )));
            }
            let value = decode(value).map_err(|()| {
                ApiError::bad_request(format!(
                    "invalid query string: {name} is not UTF-8 once percent-decoded"
                ))
            })?;
            values[index] = Some(value);
        }
        Ok(Self { known, values })
    }

    /// The decoded value of `name` (one of the known names), if the query had it.
    pub fn get(&self, name: &str) -> Option<&str> {
        let index = self.known.iter().position(|k| *k == name)?;
        self.values[index].as_deref()
    }
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8. A `%` not
/// followed by two hex digits stays as it is, as browsers and Flask do.
fn decode(raw: &str) -> Result<Cow<'_, str>, ()> {
    if !raw.bytes().any(|b| b == b'+' || b == b'%') {
        return Ok(Cow::Borrowed(raw));
    }
    let spaced: Vec<u8> = raw
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).map(Cow::Owned).map_err(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Result<QueryParams<'_, 2>, ApiError> {
        QueryParams::parse(Some(raw), ["seed", "iterations"])
    }

    #[test]
    fn form_encoding_is_decoded() {
        let p = params("seed=a+b%20c%C3%A9&iterations=3").expect("valid");
        assert_eq!(p.get("seed"), Some("a b cé"));
        assert_eq!(p.get("iterations"), Some("3"));
        // A stray % stays as it is.
        assert_eq!(
            params("seed=100%").expect("valid").get("seed"),
            Some("100%")
        );
        // Percent-encoded keys are keys too.
        assert_eq!(params("se%65d=x").expect("valid").get("seed"), Some("x"));
    }

    #[test]
    fn absent_empty_and_unknown_parameters() {
        let p = params("other=1&other=2&&seed").expect("valid");
        assert_eq!(p.get("seed"), Some(""));
        assert_eq!(p.get("iterations"), None);
        let none = QueryParams::parse(None, ["seed"]).expect("no query");
        assert_eq!(none.get("seed"), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_not_replaced() {
        for bad in ["seed=%FF", "seed=%C0%AF", "seed=%ED%A0%80", "seed=a%E2%82"] {
            let err = params(bad).expect_err(bad);
            assert!(err.to_string().contains("UTF-8"), "{bad}: {err}");
        }
        // Unknown parameters are not looked at.
        assert!(params("other=%FF").is_ok());
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let err = params("iterations=1&iterations=2").expect_err("repeated");
        assert!(err.to_string().contains("more than once"), "{err}");
    }
}
