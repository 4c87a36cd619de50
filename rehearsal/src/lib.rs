//! The scaling rehearsal: replays a load through a model of the Auto Scaling group, its
//! CloudWatch alarms and policies, the load balancer and the instances, minute by minute,
//! from the same Terraform variables `apply.sh` deploys. See docs/REHEARSAL.md.

pub mod assumptions;
pub mod bill;
pub mod calibrate;
pub mod cli;
pub mod compare;
pub mod error;
pub mod faults;
pub mod fleet;
pub mod load;
pub mod loadtest_command;
pub mod model;
pub mod optimize;
pub mod prices;
pub mod profiles;
pub mod report;
pub mod rules;
pub mod run;
pub mod simulate;
pub mod summary;
pub mod terraform;
pub mod traffic;
pub mod variables;
