//! The AWS rules the rehearsal follows: one module per rule, each a small pure function with
//! the documentation it follows and a table of cases. The minute loop (`crate::simulate`)
//! only composes them, in the spirit of the Kubernetes HPA's `replica_calculator.go`.

pub mod alarm;
pub mod alb;
pub mod capacity;
pub mod cost;
pub mod cpu;
pub mod credits;
pub mod cron;
pub mod health;
pub mod lifecycle;
pub mod metric;
pub mod placement;
pub mod queueing;
pub mod rebalance;
pub mod retry;
pub mod schedule;
pub mod step;
pub mod target_tracking;
pub mod termination;
