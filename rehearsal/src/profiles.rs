//! The load profiles, the SLO defaults and the mixed profile's split, as
//! `scripts/lib/load-profiles.env` defines them for loadtest.sh, loadreport.py and the
//! rehearsal alike (compiled in: the rehearsal never disagrees with the scripts it ships
//! with).

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The definition file, as the scripts read it.
pub const DEFINITION: &str = include_str!("../../scripts/lib/load-profiles.env");

/// One request kind: its HTTP method and path (a regular expression when it holds a class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// Everything the definition says.
#[derive(Debug, Clone, PartialEq)]
pub struct Profiles {
    /// Every profile name, in the usage texts' order.
    pub names: Vec<String>,
    /// What each single profile (all but mixed) sends.
    pub requests: BTreeMap<String, Request>,
    /// mixed: the share of reads (0-1); the rest are writes.
    pub mixed_read_share: f64,
    pub read_seed_prefix: String,
    pub read_seed_count: u32,
    /// Profiles whose requests reach the store.
    pub store_profiles: Vec<String>,
    pub slo_rps: f64,
    pub slo_mean_ms: f64,
    pub slo_success_percent: f64,
}

/// `NAME=VALUE` and `NAME="VALUE"` lines; comments and blank lines skipped.
pub fn parse_assignments(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not NAME=VALUE: {line}", number + 1))?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        values.insert(name.to_owned(), value.to_owned());
    }
    Ok(values)
}

impl Profiles {
    /// Reads a definition in the format of `load-profiles.env`.
    pub fn parse(text: &str) -> Result<Profiles, String> {
        let values = parse_assignments(text)?;
        let get = |name: &str| {
            values
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no {name}"))
        };
        let number = |name: &str| {
            get(name)?
                .parse::<f64>()
                .map_err(|_| format!("{name} is not a number"))
        };
        let words = |name: &str| -> Result<Vec<String>, String> {
            Ok(get(name)?.split_whitespace().map(str::to_owned).collect())
        };
        let names = words("LOAD_PROFILES")?;
        let mut requests = BTreeMap::new();
        for name in names.iter().filter(|n| n.as_str() != "mixed") {
            let text = get(&format!("PROFILE_{}", name.to_uppercase()))?;
            let (method, path) = text
                .split_once(' ')
                .ok_or_else(|| format!("PROFILE_{}: METHOD PATH", name.to_uppercase()))?;
            requests.insert(
                name.clone(),
                Request {
                    method: method.to_owned(),
                    path: path.to_owned(),
                },
            );
        }
        let read_percent = number("MIXED_READ_PERCENT")?;
        if !(0.0..=100.0).contains(&read_percent) {
            return Err("MIXED_READ_PERCENT must be a percentage".to_owned());
        }
        Ok(Profiles {
            names,
            requests,
            mixed_read_share: read_percent / 100.0,
            read_seed_prefix: get("READ_SEED_PREFIX")?,
            read_seed_count: number("READ_SEED_COUNT")? as u32,
            store_profiles: words("STORE_PROFILES")?,
            slo_rps: number("SLO_RPS")?,
            slo_mean_ms: number("SLO_MEAN_MS")?,
            slo_success_percent: number("SLO_SUCCESS_PERCENT")?,
        })
    }

    /// The definition the scripts ship with.
    pub fn shipped() -> &'static Profiles {
        static SHIPPED: OnceLock<Profiles> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            Profiles::parse(DEFINITION)
                .unwrap_or_else(|e| panic!("scripts/lib/load-profiles.env: {e}"))
        })
    }

    pub fn knows(&self, profile: &str) -> bool {
        self.names.iter().any(|n| n == profile)
    }

    pub fn uses_store(&self, profile: &str) -> bool {
        self.store_profiles.iter().any(|n| n == profile)
    }

    /// The share of `profile`'s requests that are reads and writes of the store.
    pub fn store_mix(&self, profile: &str) -> StoreMix {
        match profile {
            "read" => StoreMix {
                reads: 1.0,
                writes: 0.0,
            },
            "write" => StoreMix {
                reads: 0.0,
                writes: 1.0,
            },
            "mixed" => StoreMix {
                reads: self.mixed_read_share,
                writes: 1.0 - self.mixed_read_share,
            },
            _ => StoreMix::default(),
        }
    }
}

/// Store operations per request of a profile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMix {
    pub reads: f64,
    pub writes: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_definition_reads_completely() {
        let p = Profiles::shipped();
        assert_eq!(p.names.len(), 5, "{:?}", p.names);
        assert!(p.knows("mixed") && !p.knows("bogus"));
        assert_eq!(
            p.requests.len(),
            4,
            "every profile but mixed sends one kind"
        );
        assert!((0.0..=1.0).contains(&p.mixed_read_share));
        let mix = p.store_mix("mixed");
        assert!((mix.reads + mix.writes - 1.0).abs() < 1e-12);
        assert_eq!(p.store_mix("gtg"), StoreMix::default());
    }

    #[test]
    fn a_broken_definition_says_what_is_missing() {
        for (text, reason) in [
            ("LOAD_PROFILES=\"gtg\"\n", "no PROFILE_GTG"),
            ("nonsense\n", "not NAME=VALUE"),
        ] {
            let err = Profiles::parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
