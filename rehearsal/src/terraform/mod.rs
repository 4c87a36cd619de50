//! What Terraform itself refuses before it changes anything, read from the module: every
//! variable's `validation` blocks, every resource's, data source's and output's
//! `precondition` blocks, and `check` blocks' assertions (which Terraform only warns
//! about). They are evaluated the way `terraform plan` evaluates them (Terraform language
//! documentation, "Custom Conditions"): the validations first, and when one fails the plan
//! stops there with every failing validation's `error_message`; then the preconditions of
//! the resources the plan would create (`count` and `for_each` decide which).
//!
//! A condition that needs what only AWS can tell (a data source, a resource's attribute) is
//! left undecided, as it is before a plan reads AWS: the rehearsal then neither refuses nor
//! accepts on its account, and says so.

pub mod eval;
pub mod functions;

use std::collections::BTreeMap;

use hcl::{Block, Expression};
use serde_json::Value;

use eval::{Failure, Module, Scope};

/// One `validation`, `precondition` or `assert` block.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What it belongs to: "variable min_size", "resource aws_lb_target_group.this".
    pub owner: String,
    /// The variable a validation checks.
    pub variable: Option<String>,
    /// The file it is written in, relative to the module.
    pub file: String,
    pub condition: Expression,
    pub error_message: Expression,
    /// The owner's `count` and `for_each`.
    pub count: Option<Expression>,
    pub for_each: Option<Expression>,
}

/// The module's checks and the locals they may reference.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub validations: Vec<Condition>,
    pub preconditions: Vec<Condition>,
    pub assertions: Vec<Condition>,
    pub locals: BTreeMap<String, Expression>,
    /// Resources by "type.name", with their `count` and `for_each` (for counting them).
    pub resources: BTreeMap<String, Instances>,
}

/// How many of a resource Terraform would create.
#[derive(Debug, Clone, Default)]
pub struct Instances {
    pub count: Option<Expression>,
    pub for_each: Option<Expression>,
}

fn attribute<'b>(body: &'b hcl::Body, key: &str) -> Option<&'b Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn conditions(
    body: &hcl::Body,
    kind: &str,
    owner: &str,
    file: &str,
    instances: &Instances,
    variable: Option<&str>,
) -> Vec<Condition> {
    body.blocks()
        .filter(|b| b.identifier() == kind)
        .filter_map(|b| {
            Some(Condition {
                owner: owner.to_owned(),
                variable: variable.map(str::to_owned),
                file: file.to_owned(),
                condition: attribute(b.body(), "condition")?.clone(),
                error_message: attribute(b.body(), "error_message")?.clone(),
                count: instances.count.clone(),
                for_each: instances.for_each.clone(),
            })
        })
        .collect()
}

impl Checks {
    /// Takes in one top-level block of the module's file `file`.
    pub fn collect(&mut self, file: &str, block: &Block) {
        let body = block.body();
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        match (block.identifier(), labels.as_slice()) {
            ("variable", [name]) => self.validations.extend(conditions(
                body,
                "validation",
                &format!("variable {name}"),
                file,
                &Instances::default(),
                Some(name),
            )),
            ("locals", _) => self.locals.extend(
                body.attributes()
                    .map(|a| (a.key().to_owned(), a.expr().clone())),
            ),
            (kind @ ("resource" | "data"), [kind_name, name]) => {
                let instances = Instances {
                    count: attribute(body, "count").cloned(),
                    for_each: attribute(body, "for_each").cloned(),
                };
                let owner = if kind == "data" {
                    format!("data.{kind_name}.{name}")
                } else {
                    format!("{kind_name}.{name}")
                };
                for lifecycle in body.blocks().filter(|b| b.identifier() == "lifecycle") {
                    self.preconditions.extend(conditions(
                        lifecycle.body(),
                        "precondition",
                        &owner,
                        file,
                        &instances,
                        None,
                    ));
                }
                if kind == "resource" {
                    self.resources.insert(owner, instances);
                }
            }
            ("output", [name]) => self.preconditions.extend(conditions(
                body,
                "precondition",
                &format!("output {name}"),
                file,
                &Instances::default(),
                None,
            )),
            ("check", [name]) => self.assertions.extend(conditions(
                body,
                "assert",
                &format!("check {name}"),
                file,
                &Instances::default(),
                None,
            )),
            _ => {}
        }
    }
}

/// One refusal, with Terraform's own message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub owner: String,
    pub variable: Option<String>,
    pub file: String,
    /// The block's `error_message`, or the error Terraform meets evaluating its condition.
    pub message: String,
}

/// What Terraform would say about the variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub refusals: Vec<Refusal>,
    /// Failed `check` assertions: Terraform warns and goes on.
    pub warnings: Vec<String>,
    /// Conditions that need AWS's answers, so only a real plan decides them.
    pub undecided: Vec<String>,
}

/// The module's values for the checks: the variables and the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The variables that have a value (set or defaulted). The others are not validated:
    /// Terraform asks for them instead.
    pub values: &'a BTreeMap<String, Value>,
    pub workspace: &'a str,
    pub path: &'a str,
}

/// The bindings of each instance of a condition's owner (`count.index`, `each.key`), or
/// why they are not known.
fn instances(scope: &Scope, condition: &Condition) -> Result<Vec<Vec<(String, Value)>>, Failure> {
    if let Some(count) = &condition.count {
        let n = eval::as_number(&scope.eval(count)?, "count")?;
        return Ok((0..n.max(0.0) as usize)
            .map(|i| vec![("count".to_owned(), serde_json::json!({ "index": i as f64 }))])
            .collect());
    }
    if let Some(for_each) = &condition.for_each {
        let items: Vec<(String, Value)> = match scope.eval(for_each)? {
            Value::Object(map) => map.into_iter().collect(),
            Value::Array(items) => items
                .into_iter()
                .map(|v| (eval::to_text(&v).unwrap_or_default(), v))
                .collect(),
            _ => return Err(eval::invalid("for_each needs a map or a set")),
        };
        return Ok(items
            .into_iter()
            .map(|(key, value)| {
                vec![(
                    "each".to_owned(),
                    serde_json::json!({ "key": key, "value": value }),
                )]
            })
            .collect());
    }
    Ok(vec![Vec::new()])
}

enum Outcome {
    Holds,
    Fails(String),
    Undecided(String),
}

fn judge(scope: &Scope, condition: &Condition) -> Outcome {
    match scope.eval(&condition.condition) {
        Ok(Value::Bool(true)) => Outcome::Holds,
        Ok(Value::Bool(false)) => Outcome::Fails(match scope.eval(&condition.error_message) {
            Ok(Value::String(message)) => message,
            // The message itself needs AWS's answers: its text as written.
            _ => condition.error_message.to_string(),
        }),
        Ok(other) => Outcome::Fails(format!(
            "Invalid condition result: a bool is required, not {other}"
        )),
        Err(Failure::Invalid(error)) => Outcome::Fails(error),
        Err(Failure::Unknown(why)) => Outcome::Undecided(why),
    }
}

/// Evaluates `checks` against the variables, in Terraform's order.
pub fn verify(checks: &Checks, context: &Context) -> Verdict {
    let module = Module::new(
        context.values,
        &checks.locals,
        context.workspace,
        context.path,
    );
    let root = Scope::root(&module);
    let mut verdict = Verdict::default();
    let run = |condition: &Condition, verdict: &mut Verdict, assertion: bool| {
        let bindings = match instances(&root, condition) {
            Ok(b) => b,
            Err(Failure::Unknown(why)) | Err(Failure::Invalid(why)) => {
                verdict.undecided.push(format!(
                    "{} ({}): how many: {why}",
                    condition.owner, condition.file
                ));
                return;
            }
        };
        for binding in bindings {
            let scope = binding
                .into_iter()
                .fold(root.clone(), |s, (name, value)| s.with(&name, value));
            match judge(&scope, condition) {
                Outcome::Holds => {}
                Outcome::Fails(message) if assertion => verdict.warnings.push(format!(
                    "{} ({}): {message} (Terraform warns and goes on)",
                    condition.owner, condition.file
                )),
                Outcome::Fails(message) => verdict.refusals.push(Refusal {
                    owner: condition.owner.clone(),
                    variable: condition.variable.clone(),
                    file: condition.file.clone(),
                    message,
                }),
                Outcome::Undecided(why) => verdict
                    .undecided
                    .push(format!("{} ({}): {why}", condition.owner, condition.file)),
            }
        }
    };
    for validation in &checks.validations {
        if validation
            .variable
            .as_deref()
            .is_some_and(|v| context.values.contains_key(v))
        {
            run(validation, &mut verdict, false);
        }
    }
    if !verdict.refusals.is_empty() {
        return verdict;
    }
    for precondition in &checks.preconditions {
        run(precondition, &mut verdict, false);
    }
    for assertion in &checks.assertions {
        run(assertion, &mut verdict, true);
    }
    verdict
}

/// How many instances of resource `name` ("type.name") the plan would create: `None` when
/// the module has no such resource or it depends on what only AWS knows.
pub fn instance_count(checks: &Checks, context: &Context, name: &str) -> Option<usize> {
    let instances = checks.resources.get(name)?;
    let module = Module::new(
        context.values,
        &checks.locals,
        context.workspace,
        context.path,
    );
    let probe = Condition {
        owner: name.to_owned(),
        variable: None,
        file: String::new(),
        condition: Expression::Bool(true),
        error_message: Expression::Null,
        count: instances.count.clone(),
        for_each: instances.for_each.clone(),
    };
    instances_of(&Scope::root(&module), &probe)
}

fn instances_of(scope: &Scope, probe: &Condition) -> Option<usize> {
    instances(scope, probe).ok().map(|b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MODULE: &str = r#"
        variable "min_size" {
          type = number
          validation {
            condition     = var.min_size >= 1 && floor(var.min_size) == var.min_size
            error_message = "min_size must be a whole number of at least 1."
          }
        }
        variable "max_size" {
          type = number
        }
        variable "mode" {
          type = string
        }
        locals {
          step = var.mode == "step"
        }
        resource "aws_autoscaling_group" "this" {
          lifecycle {
            precondition {
              condition     = var.min_size <= var.max_size
              error_message = "min_size (${var.min_size}) must not exceed max_size (${var.max_size})."
            }
          }
        }
        resource "aws_cloudwatch_metric_alarm" "low" {
          count = local.step ? 1 : 0
          lifecycle {
            precondition {
              condition     = var.max_size < 50
              error_message = "step mode allows at most 49."
            }
          }
        }
        data "aws_ami" "x" {}
        resource "aws_launch_template" "this" {
          lifecycle {
            precondition {
              condition     = data.aws_ami.x.architecture == "x86_64"
              error_message = "wrong architecture"
            }
          }
        }
        check "odd" {
          assert {
            condition     = var.max_size % 2 == 0
            error_message = "max_size is odd."
          }
        }
    "#;

    fn verdict(min: f64, max: f64, mode: &str) -> Verdict {
        let mut checks = Checks::default();
        for block in hcl::parse(MODULE).expect("module").into_blocks() {
            checks.collect("main.tf", &block);
        }
        let values: BTreeMap<String, Value> = [
            ("min_size".to_owned(), json!(min)),
            ("max_size".to_owned(), json!(max)),
            ("mode".to_owned(), json!(mode)),
        ]
        .into_iter()
        .collect();
        verify(
            &checks,
            &Context {
                values: &values,
                workspace: "dev",
                path: ".",
            },
        )
    }

    #[test]
    fn validations_then_preconditions_then_assertions_in_terraforms_order() {
        // (min, max, mode, refusal messages, warnings)
        let cases: Vec<(f64, f64, &str, Vec<&str>, usize)> = vec![
            (2.0, 4.0, "step", vec![], 0),
            // A failing validation stops the plan: the precondition is not reached.
            (
                0.0,
                -1.0,
                "step",
                vec!["min_size must be a whole number of at least 1."],
                0,
            ),
            (
                5.0,
                4.0,
                "tt",
                vec!["min_size (5) must not exceed max_size (4)."],
                0,
            ),
            // count = 0 in target tracking: the alarm's precondition does not apply.
            (2.0, 60.0, "tt", vec![], 0),
            (2.0, 60.0, "step", vec!["step mode allows at most 49."], 0),
            (2.0, 5.0, "step", vec![], 1),
        ];
        for (min, max, mode, refusals, warnings) in cases {
            let v = verdict(min, max, mode);
            let got: Vec<&str> = v.refusals.iter().map(|r| r.message.as_str()).collect();
            assert_eq!(got, refusals, "{min} {max} {mode}");
            assert_eq!(
                v.warnings.len(),
                warnings,
                "{min} {max} {mode}: {:?}",
                v.warnings
            );
            // Past the validations, a precondition on a data source's answer is left to
            // Terraform.
            assert_eq!(
                v.undecided
                    .iter()
                    .any(|u| u.contains("aws_launch_template.this")),
                min >= 1.0,
                "{min} {max} {mode}: {:?}",
                v.undecided
            );
        }
    }
}
