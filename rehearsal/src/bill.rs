//! The bill of a rehearsal: what the minute loop measured (`Usage`), priced line by line
//! with `rules::cost` and `rules::credits` and the price table.

use serde::Serialize;

use crate::model::Group;
use crate::prices::{InstancePrice, Prices};
use crate::rules::cost::{self, LcuMeter, RequestUnits};
use crate::rules::credits;

/// What the rehearsal used, accumulated minute by minute.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub minutes: usize,
    /// Clock hours the load balancer ran (each hour or partial hour).
    pub alb_hours: usize,
    /// Instance-seconds EC2 bills (`running`).
    pub running_secs: f64,
    /// Instance-seconds from launch to termination (volumes, public addresses).
    pub present_secs: f64,
    pub lcu: LcuMeter,
    /// Bytes of responses sent to the internet.
    pub bytes_out: f64,
    /// The store's reads and writes.
    pub store_reads: f64,
    pub store_writes: f64,
    /// Surplus CPU credits charged, and still owed at the end by the instances running.
    pub credits_charged: f64,
    pub credits_outstanding: f64,
}

/// The bill, line by line (dollars unless named otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Costs {
    pub instances_usd: f64,
    pub surplus_credits_usd: f64,
    /// Surplus credits the running instances still owe at the end: charged only if they stop
    /// before repaying them (./destroy.sh right after a test does that). Not in the total.
    pub surplus_credits_outstanding_usd: f64,
    pub alb_hours_usd: f64,
    pub alb_lcu_usd: f64,
    pub public_ipv4_usd: f64,
    pub data_transfer_usd: f64,
    pub ebs_usd: f64,
    pub cloudwatch_usd: f64,
    pub dynamodb_usd: f64,
    pub total_usd: f64,
    pub instance_hours: f64,
    pub alb_hours: f64,
    pub lcu_hours: f64,
    pub data_out_gb: f64,
    pub dynamodb_read_units: f64,
    pub dynamodb_write_units: f64,
}

/// Prices `usage` for `group` on instances priced `instance`.
pub fn bill(usage: &Usage, group: &Group, instance: &InstancePrice, prices: &Prices) -> Costs {
    let month = prices.hours_per_month;
    let secs = usage.minutes as f64 * 60.0;
    let instances_usd = cost::hourly(usage.running_secs, instance.usd_per_hour);
    let credit_price = instance.credit_usd_per_vcpu_hour.unwrap_or(0.0);
    let surplus_credits_usd = credits::charge_usd(usage.credits_charged, credit_price);
    let surplus_credits_outstanding_usd =
        credits::charge_usd(usage.credits_outstanding, credit_price);
    let alb_hours = usage.alb_hours as f64;
    let alb_hours_usd = alb_hours * prices.alb.usd_per_hour;
    let lcu_hours = usage.lcu.lcu_hours(prices.alb.lcu);
    let alb_lcu_usd = lcu_hours * prices.alb.usd_per_lcu_hour;
    let instance_addresses = if group.public_ip_per_instance {
        usage.present_secs
    } else {
        0.0
    };
    let public_ipv4_usd = cost::hourly(
        group.az_count as f64 * secs + instance_addresses,
        prices.public_ipv4_usd_per_hour,
    );
    let data_out_gb = usage.bytes_out / 1e9;
    let data_transfer_usd = cost::tiered(data_out_gb, &prices.data_transfer_out);
    let ebs_usd = cost::monthly(
        usage.present_secs,
        group.root_volume_gib * prices.ebs_gp3_usd_per_gb_month,
        month,
    );
    let cw = &prices.cloudwatch;
    let metrics_usd = if group.detailed_monitoring {
        cost::monthly(
            usage.running_secs,
            cw.detailed_monitoring_metrics_per_instance * cw.metric_usd_per_month,
            month,
        )
    } else {
        0.0
    };
    let cloudwatch_usd = metrics_usd
        + cost::monthly(secs, group.alarms as f64 * cw.alarm_usd_per_month, month)
        + cost::monthly(
            secs,
            group.dashboards as f64 * cw.dashboard_usd_per_month,
            month,
        );
    let RequestUnits { read, write } =
        cost::request_units(usage.store_reads, usage.store_writes, group.table_indexes);
    let dynamodb_usd = read / 1e6 * prices.dynamodb.usd_per_million_read_units
        + write / 1e6 * prices.dynamodb.usd_per_million_write_units;
    let total_usd = instances_usd
        + surplus_credits_usd
        + alb_hours_usd
        + alb_lcu_usd
        + public_ipv4_usd
        + data_transfer_usd
        + ebs_usd
        + cloudwatch_usd
        + dynamodb_usd;
    Costs {
        instances_usd,
        surplus_credits_usd,
        surplus_credits_outstanding_usd,
        alb_hours_usd,
        alb_lcu_usd,
        public_ipv4_usd,
        data_transfer_usd,
        ebs_usd,
        cloudwatch_usd,
        dynamodb_usd,
        total_usd,
        instance_hours: usage.running_secs / 3600.0,
        alb_hours,
        lcu_hours,
        data_out_gb,
        dynamodb_read_units: read,
        dynamodb_write_units: write,
    }
}
