//! The scaling rehearsal: replays a load through a model of the Auto Scaling group, its
//! CloudWatch alarms and policies, the load balancer and the instances, minute by minute,
//! from the same Terraform variables `apply.sh` deploys. See docs/REHEARSAL.md.

pub mod assumptions;
pub mod error;
pub mod rules;
pub mod variables;
