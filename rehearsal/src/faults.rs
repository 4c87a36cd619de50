//! The failures a rehearsal injects and when each acts on the fleet:
//!
//! - `--fail instance@MINUTE[xN]`: at the start of minute MINUTE, N InService instances (1
//!   when no `xN`) stop answering: the longest-running ones that still answer (lowest
//!   instance numbers). They neither answer requests nor health checks, and stay so.
//! - `--fail-az ZONE@FROM-TO` (or `ZONE@FROM`: to the end): zone ZONE goes dark at the start
//!   of minute FROM and comes back at the start of minute TO. ZONE is the zone's letter as
//!   the rehearsal names zones (`a`, `b`, ... in `in_service_by_zone` and the events): the
//!   group's n-th zone, which is the n-th of the region's zones in name order
//!   (infra/locals.tf `azs`), so usually the one whose name ends in that letter.
//!
//! What follows (the load balancer's verdict, the group's replacements, the launches in the
//! other zones, the rebalancing) is the rules' (`rules::health`, `rules::rebalance`,
//! `rules::alb`), composed in the minute loop.

use serde::Serialize;

use crate::error::Error;
use crate::fleet::{Fleet, zone_name};
use crate::rules::lifecycle::Timings;

/// One injected failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    Instances {
        minute: usize,
        count: usize,
    },
    Zone {
        zone: usize,
        from: usize,
        to: Option<usize>,
    },
}

fn minute(flag: &str, spec: &str, text: &str) -> Result<usize, Error> {
    text.parse::<usize>().map_err(|_| {
        Error::usage(format!(
            "{flag} {spec}: '{text}' is not a minute (a whole number from 0, counted from the load's start)"
        ))
    })
}

impl Fault {
    /// `instance@MINUTE` or `instance@MINUTExN`.
    pub fn parse_instances(spec: &str) -> Result<Fault, Error> {
        let usage = || {
            Error::usage(format!(
                "--fail takes instance@MINUTE or instance@MINUTExN (N instances stop answering at that minute), not '{spec}'"
            ))
        };
        let rest = spec.strip_prefix("instance@").ok_or_else(usage)?;
        let (at, count) = match rest.split_once('x') {
            Some((at, n)) => (
                at,
                n.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(usage)?,
            ),
            None => (rest, 1),
        };
        Ok(Fault::Instances {
            minute: minute("--fail", spec, at)?,
            count,
        })
    }

    /// `ZONE@FROM-TO` or `ZONE@FROM`, ZONE a letter.
    pub fn parse_zone(spec: &str) -> Result<Fault, Error> {
        let usage = || {
            Error::usage(format!(
                "--fail-az takes ZONE@FROM-TO or ZONE@FROM (a zone letter, a, b, ..., dark from minute FROM until minute TO), not '{spec}'"
            ))
        };
        let (zone, range) = spec.split_once('@').ok_or_else(usage)?;
        let mut letters = zone.chars();
        let zone = match (letters.next(), letters.next()) {
            (Some(c @ 'a'..='z'), None) => usize::from(c as u8 - b'a'),
            _ => return Err(usage()),
        };
        let (from, to) = match range.split_once('-') {
            Some((from, to)) => (
                minute("--fail-az", spec, from)?,
                Some(minute("--fail-az", spec, to)?),
            ),
            None => (minute("--fail-az", spec, range)?, None),
        };
        if to.is_some_and(|to| to <= from) {
            return Err(Error::usage(format!(
                "--fail-az {spec}: the zone must come back after it goes dark (TO > FROM)"
            )));
        }
        Ok(Fault::Zone { zone, from, to })
    }

    /// How the command line wrote it.
    pub fn spec(&self) -> String {
        match self {
            Fault::Instances { minute, count: 1 } => format!("--fail instance@{minute}"),
            Fault::Instances { minute, count } => format!("--fail instance@{minute}x{count}"),
            Fault::Zone { zone, from, to } => format!(
                "--fail-az {}@{from}{}",
                zone_name(*zone),
                to.map_or(String::new(), |to| format!("-{to}"))
            ),
        }
    }
}

/// Refuses failures the group or the load cannot have: a zone it does not span, a minute
/// after the load.
pub fn check(faults: &[Fault], zones: usize, minutes: usize) -> Result<(), Error> {
    for fault in faults {
        let (zone, start) = match fault {
            Fault::Instances { minute, .. } => (None, *minute),
            Fault::Zone { zone, from, .. } => (Some(*zone), *from),
        };
        if let Some(zone) = zone.filter(|z| *z >= zones) {
            return Err(Error::usage(format!(
                "{}: the group spans {zones} zones (a to {}), not {}",
                fault.spec(),
                zone_name(zones - 1),
                zone_name(zone)
            )));
        }
        if start >= minutes {
            return Err(Error::usage(format!(
                "{}: the load lasts {minutes} minutes (0 to {})",
                fault.spec(),
                minutes.saturating_sub(1)
            )));
        }
    }
    Ok(())
}

/// Applies the failures due at the start of minute `minute` (second `t`); what happened.
pub fn apply(
    faults: &[Fault],
    minute: usize,
    t: f64,
    fleet: &mut Fleet,
    timings: &Timings,
) -> Vec<String> {
    let mut events = Vec::new();
    // A zone coming back first, so that a zone dark again the same minute stays dark.
    for fault in faults {
        if let Fault::Zone {
            zone, to: Some(to), ..
        } = fault
            && *to == minute
        {
            fleet.restore(*zone, t);
            events.push(format!("zone {} is back", zone_name(*zone)));
        }
    }
    for fault in faults {
        match fault {
            Fault::Zone { zone, from, .. } if *from == minute => {
                let hit = fleet.darken(*zone, t);
                events.push(format!(
                    "zone {} goes dark: {hit} instance(s) stop answering, no launch there",
                    zone_name(*zone)
                ));
            }
            Fault::Instances { minute: at, count } if *at == minute => {
                let failed = fleet.fail_instances(*count, t, timings);
                let names: Vec<String> = failed
                    .iter()
                    .map(|(id, zone)| format!("#{id} in {}", zone_name(*zone)))
                    .collect();
                events.push(if failed.len() < *count {
                    format!(
                        "{count} instance(s) to fail, {} answering: {} stop answering",
                        failed.len(),
                        names.join(", ")
                    )
                } else {
                    format!("{} stop(s) answering", names.join(", "))
                });
            }
            _ => {}
        }
    }
    events
}

/// What the injected failures did, from the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureSummary {
    pub faults: Vec<String>,
    /// Sum over minutes of the instances in the group that did not answer.
    pub instance_minutes_not_answering: i64,
    pub replacements: usize,
    /// The first failure's minute and the last minute with an instance not answering or a
    /// zone dark.
    pub from_minute: usize,
    pub to_minute: usize,
    /// Requests that failed for good in those minutes.
    pub failed_requests: f64,
}

/// Summarizes `faults` over the rehearsed `rows`.
pub fn summarize(faults: &[Fault], rows: &[crate::simulate::MinuteRow]) -> Option<FailureSummary> {
    let from = faults
        .iter()
        .map(|f| match f {
            Fault::Instances { minute, .. } => *minute,
            Fault::Zone { from, .. } => *from,
        })
        .min()?;
    let to = rows
        .iter()
        .filter(|r| r.not_answering > 0 || !r.dark_zones.is_empty())
        .map(|r| r.minute)
        .max()
        .unwrap_or(from)
        .max(from);
    Some(FailureSummary {
        faults: faults.iter().map(Fault::spec).collect(),
        instance_minutes_not_answering: rows.iter().map(|r| r.not_answering).sum(),
        replacements: rows
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| e.starts_with("replace #"))
            .count(),
        from_minute: from,
        to_minute: to,
        failed_requests: rows
            .iter()
            .filter(|r| (from..=to).contains(&r.minute))
            .map(|r| r.failed_for_good_rps * 60.0)
            .sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_read_as_written() {
        let cases = [
            (
                "instance@12",
                Fault::Instances {
                    minute: 12,
                    count: 1,
                },
            ),
            (
                "instance@0x3",
                Fault::Instances {
                    minute: 0,
                    count: 3,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Fault::parse_instances(text).expect(text), want);
            assert_eq!(want.spec(), format!("--fail {text}"));
        }
        let cases = [
            (
                "a@10-25",
                Fault::Zone {
                    zone: 0,
                    from: 10,
                    to: Some(25),
                },
            ),
            (
                "c@5",
                Fault::Zone {
                    zone: 2,
                    from: 5,
                    to: None,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Fault::parse_zone(text).expect(text), want);
            assert_eq!(want.spec(), format!("--fail-az {text}"));
        }
    }

    #[test]
    fn bad_failures_are_usage_errors() {
        for bad in [
            "instance",
            "instance@",
            "instance@x2",
            "instance@3x0",
            "node@3",
            "instance@-1",
        ] {
            let err = Fault::parse_instances(bad).expect_err(bad);
            assert!(matches!(err, Error::Usage(_)), "{bad}");
        }
        for (bad, reason) in [
            ("a", "ZONE@FROM-TO"),
            ("ab@1-2", "ZONE@FROM-TO"),
            ("1@1-2", "ZONE@FROM-TO"),
            ("a@5-5", "TO > FROM"),
            ("a@x", "not a minute"),
        ] {
            let err = Fault::parse_zone(bad).expect_err(bad);
            assert!(err.to_string().contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn failures_must_fit_the_group_and_the_load() {
        let zone_c = [Fault::Zone {
            zone: 2,
            from: 1,
            to: None,
        }];
        let err = check(&zone_c, 2, 30).expect_err("two zones");
        assert!(
            err.to_string().contains("spans 2 zones (a to b), not c"),
            "{err}"
        );
        let late = [Fault::Instances {
            minute: 30,
            count: 1,
        }];
        let err = check(&late, 2, 30).expect_err("after the load");
        assert!(err.to_string().contains("lasts 30 minutes"), "{err}");
        assert!(check(&zone_c, 3, 30).is_ok());
    }
}
