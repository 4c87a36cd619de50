//! summary.json, as a type: every field the rehearsal reports, named once.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::assumptions::Assumptions;
use crate::bill::Costs;
use crate::calibrate::Calibration;
use crate::compare::{Comparison, Fit};
use crate::faults::FailureSummary;
use crate::model::Group;
use crate::report::{Check, Slo, Totals};
use crate::rules::retry::RetryPolicy;
use crate::rules::schedule::Sizes;

/// Where the load came from and its peak.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub source: String,
    pub peak_offered_rps: f64,
}

/// The goals and how the prediction fares against each.
#[derive(Debug, Clone, Serialize)]
pub struct SloSummary {
    pub goals: Slo,
    pub checks: Vec<Check>,
}

/// What one request costs the model, and where that came from.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSummary {
    pub source: String,
    pub cpu_us_per_request_per_vcpu: f64,
    pub instance_rps_at_100_percent_cpu: f64,
    pub vcpus: u32,
    pub fixed_latency_ms: f64,
    pub store_reads_per_request: f64,
    pub store_writes_per_request: f64,
}

/// A variable as read, and where its value came from.
#[derive(Debug, Clone, Serialize)]
pub struct VariableSummary {
    pub value: Value,
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PricesSummary {
    pub region: String,
    pub as_of: String,
    pub sources: Vec<String>,
}

/// The clients' retries and what they added.
#[derive(Debug, Clone, Serialize)]
pub struct RetrySummary {
    pub policy: RetryPolicy,
    pub first_attempts: f64,
    pub retries: f64,
    /// (first attempts + retries) / first attempts.
    pub amplification: f64,
    pub failed_attempts: f64,
    pub failed_for_good: f64,
    /// Retries still waiting when the load ends (neither answered nor failed).
    pub pending_at_end: f64,
}

/// summary.json.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub slo_met: bool,
    pub max_desired: i64,
    pub instance_hours: f64,
    pub cost_usd: f64,
    pub failed_fraction: f64,
    pub warnings: Vec<String>,
    pub environment: String,
    pub scaling_mode: &'static str,
    pub instance_type: String,
    pub profile: String,
    pub start: String,
    /// Whether the start is a wall-clock time the user gave (`--start` or dated CSV rows):
    /// the chart then reads in clock time.
    pub clock_time: bool,
    pub minutes: usize,
    pub load: LoadSummary,
    pub initial: Option<Sizes>,
    pub totals: Totals,
    pub slo: SloSummary,
    pub cost: Costs,
    pub workload: WorkloadSummary,
    pub calibration: Option<Calibration>,
    pub calibration_fit: Option<Fit>,
    pub assumptions: Assumptions,
    pub group: Group,
    pub variables: BTreeMap<String, VariableSummary>,
    pub variable_files: Vec<String>,
    /// Terraform's checks the rehearsal left to a real plan (they need AWS's answers).
    pub terraform_undecided: Vec<String>,
    pub prices: PricesSummary,
    pub compare: Option<Comparison>,
    /// `--fail`, `--fail-az`: what the failures did.
    pub failures: Option<FailureSummary>,
    /// `--retries`: what the retries added.
    pub retries: Option<RetrySummary>,
    pub notes: Vec<String>,
}
