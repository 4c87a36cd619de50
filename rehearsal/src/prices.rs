//! The dated price table (data/prices-us-east-1.json), or the user's own (`--prices FILE`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::rules::cost::{LcuSize, Tier};

/// The table shipped with the project.
pub const BUILT_IN: &str = include_str!("../data/prices-us-east-1.json");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Prices {
    pub region: String,
    pub as_of: String,
    pub currency: String,
    #[serde(default)]
    pub sources: Vec<String>,
    pub instances: BTreeMap<String, InstancePrice>,
    pub alb: AlbPrice,
    pub public_ipv4_usd_per_hour: f64,
    /// Monthly prices are prorated over this many hours.
    pub hours_per_month: f64,
    /// Data out to the internet, by monthly tier.
    pub data_transfer_out: Vec<Tier>,
    pub ebs_gp3_usd_per_gb_month: f64,
    pub cloudwatch: CloudWatchPrice,
    pub dynamodb: DynamoDbPrice,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct CloudWatchPrice {
    pub metric_usd_per_month: f64,
    /// Metrics detailed monitoring publishes per instance, each billed as a custom metric.
    pub detailed_monitoring_metrics_per_instance: f64,
    pub alarm_usd_per_month: f64,
    pub dashboard_usd_per_month: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct DynamoDbPrice {
    pub usd_per_million_read_units: f64,
    pub usd_per_million_write_units: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct InstancePrice {
    pub vcpus: u32,
    pub usd_per_hour: f64,
    /// Burstable types: the CPU each vCPU earns credits at.
    #[serde(default)]
    pub baseline_percent: Option<f64>,
    /// Burstable types in unlimited mode: the price of a surplus vCPU-hour.
    #[serde(default)]
    pub credit_usd_per_vcpu_hour: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct AlbPrice {
    pub usd_per_hour: f64,
    pub usd_per_lcu_hour: f64,
    pub lcu: LcuSize,
}

impl Prices {
    /// The built-in table, or `path`.
    pub fn load(path: Option<&Path>) -> Result<Prices, Error> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .map_err(|e| Error::usage(format!("--prices {}: {e}", p.display())))?,
                p.display().to_string(),
            ),
            None => (BUILT_IN.to_owned(), "the built-in price table".to_owned()),
        };
        let prices: Prices = serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("{name} is not a price table: {e}")))?;
        if prices.hours_per_month <= 0.0 || prices.data_transfer_out.is_empty() {
            return Err(Error::usage(format!(
                "{name}: hours_per_month must be positive and data_transfer_out needs a tier"
            )));
        }
        if let Some((name, _)) = prices
            .instances
            .iter()
            .find(|(_, p)| p.vcpus == 0 || p.usd_per_hour < 0.0)
        {
            return Err(Error::usage(format!(
                "price table: {name} needs vcpus >= 1 and a price >= 0"
            )));
        }
        Ok(prices)
    }

    pub fn instance(&self, instance_type: &str) -> Result<InstancePrice, Error> {
        self.instances.get(instance_type).copied().ok_or_else(|| {
            Error::usage(format!(
                "instance_type {instance_type} is not in the price table ({} as of {}): give a table that lists it with --prices FILE",
                self.region, self.as_of
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_is_dated_sourced_and_complete() {
        let prices = Prices::load(None).expect("built-in table");
        assert_eq!(prices.region, "us-east-1");
        assert!(!prices.sources.is_empty());
        for family in ["t3", "t3a", "t4g"] {
            let micro = prices.instance(&format!("{family}.micro")).expect("micro");
            assert_eq!(micro.vcpus, 2);
            assert!(micro.baseline_percent.is_some() && micro.credit_usd_per_vcpu_hour.is_some());
        }
        for fixed in ["c7i.large", "m7i.large"] {
            assert!(
                prices
                    .instance(fixed)
                    .expect(fixed)
                    .baseline_percent
                    .is_none()
            );
        }
        let err = prices.instance("x9.huge").expect_err("unknown type");
        assert!(err.to_string().contains("--prices"), "{err}");
    }
}
