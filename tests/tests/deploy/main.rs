//! The deploy scripts run for real with recording stand-ins for `aws`, `terraform` and
//! `packer` (the harness and fixtures: `blackbox::standins`), one module per script.

mod apply;
mod check_env;
mod destroy;
