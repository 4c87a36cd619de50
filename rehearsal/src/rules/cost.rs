//! What a rehearsal costs, line by line.
//!
//! Sources (the prices themselves are the dated table `data/prices-us-east-1.json`):
//! - Amazon EC2 On-Demand pricing: Linux billed per second while `running`
//!   (`super::lifecycle` says when that is); "T2/T3/T4g Unlimited Mode Pricing" for the
//!   surplus credits `super::credits` charges.
//! - Elastic Load Balancing pricing: "You are charged for each hour or partial hour that an
//!   Application Load Balancer is running, and the number of Load Balancer Capacity Units
//!   (LCU) used per hour"; one LCU is 25 new connections per second, 3,000 active
//!   connections per minute, 1 GB processed per hour (EC2 targets) or 1,000 rule
//!   evaluations per second, and an hour is billed on the dimension it uses most.
//! - Amazon VPC pricing: every public IPv4 address, in use or not, per hour (since
//!   2024-02-01): the instances' (when their subnets map public addresses) from launch to
//!   termination, and the load balancer's, one per zone.
//! - Amazon EC2 pricing, "Data Transfer": data out to the internet per GB, in monthly
//!   tiers (the responses; requests in are free). No free allowance is assumed: an
//!   account's shares with everything else it runs.
//! - Amazon EBS pricing: gp3 per GB-month (3,000 IOPS and 125 MB/s included), for the root
//!   volume from launch to termination.
//! - Amazon CloudWatch pricing: detailed monitoring's metrics at the custom-metric price
//!   per metric-month (the pricing page's example: 7 metrics per instance), prorated by the
//!   hour; each standard-resolution alarm per month (target tracking's alarms too); each
//!   dashboard per month. Auto Scaling group metrics and the load balancer's are free.
//! - Amazon DynamoDB pricing, on-demand: a strongly consistent read of an item up to 4 KB
//!   is one read request unit; a write of an item up to 1 KB is one write request unit,
//!   plus one for each global secondary index the item is written to.
//!
//! Monthly prices are prorated over `hours_per_month` (AWS's calculators use 730).

use serde::{Deserialize, Serialize};

/// What an hour of load balancer traffic uses, per LCU dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LcuUsage {
    pub new_connections_per_sec: f64,
    pub active_connections_per_min: f64,
    pub gb_per_hour: f64,
    pub rule_evaluations_per_sec: f64,
}

/// One LCU's worth of each dimension.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct LcuSize {
    pub new_connections_per_sec: f64,
    pub active_connections_per_min: f64,
    pub gb_per_hour: f64,
    pub rule_evaluations_per_sec: f64,
}

/// LCUs billed for an hour: the largest dimension.
pub fn lcus(usage: LcuUsage, size: LcuSize) -> f64 {
    [
        usage.new_connections_per_sec / size.new_connections_per_sec,
        usage.active_connections_per_min / size.active_connections_per_min,
        usage.gb_per_hour / size.gb_per_hour,
        usage.rule_evaluations_per_sec / size.rule_evaluations_per_sec,
    ]
    .into_iter()
    .fold(0.0, f64::max)
}

/// The load balancer's traffic, clock hour by clock hour.
#[derive(Debug, Clone, Default)]
pub struct LcuMeter {
    /// Per hour: the sum over its minutes of each dimension's per-minute rate.
    hours: Vec<LcuUsage>,
}

impl LcuMeter {
    /// Records a minute of clock hour `hour` (0: the hour the rehearsal starts in) at these
    /// rates.
    pub fn record(&mut self, hour: usize, rates: LcuUsage) {
        if self.hours.len() <= hour {
            self.hours.resize(hour + 1, LcuUsage::default());
        }
        let h = &mut self.hours[hour];
        h.new_connections_per_sec += rates.new_connections_per_sec;
        h.active_connections_per_min += rates.active_connections_per_min;
        h.gb_per_hour += rates.gb_per_hour;
        h.rule_evaluations_per_sec += rates.rule_evaluations_per_sec;
    }

    /// LCU-hours: each hour's average rates (over all its 60 minutes: a partial hour's
    /// unused minutes count as idle), billed on the largest dimension.
    pub fn lcu_hours(&self, size: LcuSize) -> f64 {
        self.hours
            .iter()
            .map(|h| {
                let average = LcuUsage {
                    new_connections_per_sec: h.new_connections_per_sec / 60.0,
                    active_connections_per_min: h.active_connections_per_min / 60.0,
                    gb_per_hour: h.gb_per_hour / 60.0,
                    rule_evaluations_per_sec: h.rule_evaluations_per_sec / 60.0,
                };
                lcus(average, size)
            })
            .sum()
    }
}

/// Clock hours a resource running `minutes` from `minute_of_hour` past an hour touches:
/// what "each hour or partial hour" bills.
pub fn billed_hours(minute_of_hour: usize, minutes: usize) -> usize {
    if minutes == 0 {
        0
    } else {
        (minute_of_hour % 60 + minutes).div_ceil(60)
    }
}

/// Dollars for `seconds` at an hourly price.
pub fn hourly(seconds: f64, usd_per_hour: f64) -> f64 {
    seconds / 3600.0 * usd_per_hour
}

/// Dollars for `seconds` of something priced per month.
pub fn monthly(seconds: f64, usd_per_month: f64, hours_per_month: f64) -> f64 {
    hourly(seconds, usd_per_month / hours_per_month)
}

/// One tier of a tiered price: up to `up_to_gb` in the month (None: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Tier {
    pub up_to_gb: Option<f64>,
    pub usd_per_gb: f64,
}

/// Dollars for `gb` under tiers (the month's first GB at the first tier).
pub fn tiered(gb: f64, tiers: &[Tier]) -> f64 {
    let mut usd = 0.0;
    let mut from = 0.0;
    for tier in tiers {
        let to = tier.up_to_gb.unwrap_or(f64::INFINITY);
        usd += (gb.min(to) - from).max(0.0) * tier.usd_per_gb;
        if gb <= to {
            break;
        }
        from = to;
    }
    usd
}

/// DynamoDB request units a number of the store's reads and writes consume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RequestUnits {
    pub read: f64,
    pub write: f64,
}

/// Strongly consistent reads of small items and writes of small items to a table with
/// `indexes` global secondary indexes.
pub fn request_units(reads: f64, writes: f64, indexes: usize) -> RequestUnits {
    RequestUnits {
        read: reads,
        write: writes * (1 + indexes) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LCU: LcuSize = LcuSize {
        new_connections_per_sec: 25.0,
        active_connections_per_min: 3000.0,
        gb_per_hour: 1.0,
        rule_evaluations_per_sec: 1000.0,
    };

    #[test]
    fn an_hour_is_billed_on_its_largest_lcu_dimension() {
        // 1,000 rps, 10 requests a connection, 1 kB each: 100 new connections/s = 4 LCU,
        // 3.6 GB/h = 3.6 LCU: billed 4.
        let usage = LcuUsage {
            new_connections_per_sec: 100.0,
            active_connections_per_min: 600.0,
            gb_per_hour: 3.6,
            rule_evaluations_per_sec: 0.0,
        };
        assert!((lcus(usage, LCU) - 4.0).abs() < 1e-12);
        assert_eq!(lcus(LcuUsage::default(), LCU), 0.0);
    }

    #[test]
    fn the_meter_averages_each_clock_hour_and_a_partial_hour_over_sixty_minutes() {
        let busy = LcuUsage {
            new_connections_per_sec: 100.0,
            ..LcuUsage::default()
        };
        let mut meter = LcuMeter::default();
        for _ in 0..60 {
            meter.record(0, busy);
        }
        // Ten minutes of the second hour: 4 LCU for a sixth of it.
        for _ in 0..10 {
            meter.record(1, busy);
        }
        assert!((meter.lcu_hours(LCU) - (4.0 + 4.0 / 6.0)).abs() < 1e-9);
    }

    #[test]
    fn the_load_balancer_pays_every_hour_or_partial_hour() {
        // (minute of the hour at the start, minutes, billed hours)
        for (start, minutes, want) in [
            (0, 0, 0),
            (0, 10, 1),  // a 10-minute run pays a whole hour
            (55, 10, 2), // 10:55 to 11:05 touches two hours
            (0, 60, 1),
            (0, 61, 2),
            (30, 10_080, 169),
        ] {
            assert_eq!(billed_hours(start, minutes), want, "{start} + {minutes}");
        }
    }

    #[test]
    fn per_second_and_per_month_prices_prorate() {
        // Two t3.micro for an hour at $0.0104.
        assert!((hourly(2.0 * 3600.0, 0.0104) - 0.0208).abs() < 1e-12);
        // An 8 GB gp3 volume ($0.08 per GB-month) for a 730-hour month: $0.64.
        assert!((monthly(730.0 * 3600.0, 8.0 * 0.08, 730.0) - 0.64).abs() < 1e-12);
    }

    #[test]
    fn data_out_is_priced_by_tier() {
        let tiers = [
            Tier {
                up_to_gb: Some(10_240.0),
                usd_per_gb: 0.09,
            },
            Tier {
                up_to_gb: Some(51_200.0),
                usd_per_gb: 0.085,
            },
            Tier {
                up_to_gb: None,
                usd_per_gb: 0.07,
            },
        ];
        // (GB, dollars)
        for (gb, want) in [
            (0.0, 0.0),
            (100.0, 9.0),
            (10_240.0, 921.6),
            (10_250.0, 921.6 + 0.85),
            (60_000.0, 921.6 + 40_960.0 * 0.085 + 8_800.0 * 0.07),
        ] {
            assert!((tiered(gb, &tiers) - want).abs() < 1e-6, "{gb} GB");
        }
    }

    #[test]
    fn a_write_costs_a_unit_for_the_table_and_one_per_index() {
        let units = request_units(80.0, 20.0, 1);
        assert_eq!((units.read, units.write), (80.0, 40.0));
        assert_eq!(request_units(0.0, 5.0, 0).write, 5.0);
    }
}
