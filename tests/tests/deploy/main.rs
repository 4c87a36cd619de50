//! The deploy scripts run for real with recording stand-ins for `aws`, `terraform` and
//! `packer` (the harness and fixtures: `blackbox::standins`), one module per script, and
//! one for what moto cannot follow at all: the rollout (instance refresh) and the rollback.

mod apply;
mod check_env;
mod destroy;
mod rollout;
