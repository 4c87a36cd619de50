//! The Terraform variables `apply.sh ENV` would deploy, read the way Terraform reads them.
//!
//! Terraform (Input Variables, "Variable Definition Precedence") loads, later sources
//! winning: the `default` of each `variable` block; `TF_VAR_<name>` environment variables;
//! `terraform.tfvars`; `terraform.tfvars.json`; `*.auto.tfvars` and `*.auto.tfvars.json` in
//! lexical order (all in the root module, `infra/`, where apply.sh runs it); then every
//! `-var` and `-var-file` in command-line order. A `-var` naming an undeclared variable is
//! an error; one in a file is a warning. Values then take the variable's type: strings
//! become numbers where a number is declared, and `optional(type, default)` attributes of
//! objects get their defaults.
//!
//! Why parse HCL rather than ask Terraform (`terraform console`, a plan's JSON): a plan
//! needs the provider, credentials and a state, takes seconds to minutes, and would make a
//! rehearsal depend on an AWS account; the variables are plain literals, which `hcl-rs`
//! evaluates exactly, in milliseconds, anywhere. The module's own checks (validations,
//! preconditions) are collected here and evaluated by `crate::terraform`, with Terraform's
//! messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate};
use hcl::{Block, Body, Expression};
use serde_json::Value;

use crate::error::Error;
use crate::terraform::Checks;

/// One `-var` or `-var-file`, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    File(PathBuf),
    Var(String),
}

/// The variables in force, with where each one came from.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    pub values: BTreeMap<String, Value>,
    pub origin: BTreeMap<String, String>,
    /// Literal `locals` of the module (those that need no variable).
    pub locals: BTreeMap<String, Value>,
    /// Resources, keyed "type.name", by their literal attributes and nested blocks.
    pub resources: BTreeMap<String, Resource>,
    /// The module's validations, preconditions and checks.
    pub checks: Checks,
    /// Files read, in order.
    pub files: Vec<String>,
    pub warnings: Vec<String>,
}

impl Variables {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

/// A resource block's literals: its attributes, and its nested blocks' (one level down).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    pub attributes: BTreeMap<String, Value>,
    /// Nested blocks by kind, each by its literal attributes.
    pub blocks: BTreeMap<String, Vec<BTreeMap<String, Value>>>,
}

/// A Terraform type constraint.
#[derive(Debug, Clone, PartialEq)]
enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Map(Box<Type>),
    Object(Vec<Attribute>),
}

#[derive(Debug, Clone, PartialEq)]
struct Attribute {
    name: String,
    kind: Type,
    /// `Some` for `optional(...)`: its default (null when none is given).
    optional: Option<Value>,
}

struct Declared {
    kind: Type,
    default: Option<Value>,
}

fn evaluate(expr: &Expression) -> Result<Value, String> {
    let value = expr.evaluate(&Context::new()).map_err(|e| e.to_string())?;
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn parse_type(expr: &Expression) -> Result<Type, String> {
    match expr {
        Expression::Variable(v) => match v.as_str() {
            "string" => Ok(Type::String),
            "number" => Ok(Type::Number),
            "bool" => Ok(Type::Bool),
            "any" => Ok(Type::Any),
            other => Err(format!("unknown type '{other}'")),
        },
        Expression::FuncCall(call) => {
            let arg = |i: usize| {
                call.args
                    .get(i)
                    .ok_or_else(|| format!("{}() needs an argument", call.name.name))
            };
            match call.name.name.as_str() {
                "list" | "set" => Ok(Type::List(Box::new(parse_type(arg(0)?)?))),
                "map" => Ok(Type::Map(Box::new(parse_type(arg(0)?)?))),
                "object" => match arg(0)? {
                    Expression::Object(fields) => fields
                        .iter()
                        .map(|(key, value)| {
                            let name = key.to_string();
                            match value {
                                Expression::FuncCall(inner)
                                    if inner.name.name.as_str() == "optional" =>
                                {
                                    let kind = parse_type(
                                        inner.args.first().ok_or("optional() needs a type")?,
                                    )?;
                                    let default = match inner.args.get(1) {
                                        Some(d) => evaluate(d)?,
                                        None => Value::Null,
                                    };
                                    Ok(Attribute {
                                        name,
                                        kind,
                                        optional: Some(default),
                                    })
                                }
                                _ => Ok(Attribute {
                                    name,
                                    kind: parse_type(value)?,
                                    optional: None,
                                }),
                            }
                        })
                        .collect::<Result<Vec<_>, String>>()
                        .map(Type::Object),
                    _ => Err("object() takes { name = type, ... }".to_owned()),
                },
                // Tuples are rare in root modules; any keeps them usable.
                "tuple" => Ok(Type::Any),
                other => Err(format!("unknown type constructor '{other}'")),
            }
        }
        _ => Err("unsupported type expression".to_owned()),
    }
}

/// Converts a value to a type as Terraform does for input variables.
fn convert(value: &Value, kind: &Type, at: &str) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        Type::Any => Ok(value.clone()),
        Type::String => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(format!("{at}: a string is required")),
        },
        Type::Number => match value {
            // One representation for every number (5 and 5.0 alike), as Terraform has.
            Value::Number(n) => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{at}: a finite number is required")),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{at}: a number is required, not \"{s}\"")),
            _ => Err(format!("{at}: a number is required")),
        },
        Type::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err(format!("{at}: a bool is required")),
        },
        Type::List(item) => match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| convert(v, item, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(format!("{at}: a list is required")),
        },
        Type::Map(item) => match value {
            Value::Object(entries) => entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), convert(v, item, &format!("{at}[\"{k}\"]"))?)))
                .collect::<Result<serde_json::Map<_, _>, String>>()
                .map(Value::Object),
            _ => Err(format!("{at}: a map is required")),
        },
        Type::Object(attributes) => match value {
            Value::Object(entries) => {
                let mut out = serde_json::Map::new();
                for attribute in attributes {
                    let path = format!("{at}.{}", attribute.name);
                    let converted = match (entries.get(&attribute.name), &attribute.optional) {
                        (Some(v), Some(default)) if v.is_null() => {
                            convert(default, &attribute.kind, &path)?
                        }
                        (Some(v), _) => convert(v, &attribute.kind, &path)?,
                        (None, Some(default)) => convert(default, &attribute.kind, &path)?,
                        (None, None) => return Err(format!("{path}: attribute is required")),
                    };
                    out.insert(attribute.name.clone(), converted);
                }
                Ok(Value::Object(out))
            }
            _ => Err(format!("{at}: an object is required")),
        },
    }
}

fn parse_file(path: &Path) -> Result<Body, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    hcl::parse(&text).map_err(|e| Error::usage(format!("{} is not valid HCL: {e}", path.display())))
}

/// Reads a tfvars file (HCL, or JSON when it ends with .json) into raw values.
fn read_tfvars(path: &Path) -> Result<Vec<(String, Value)>, Error> {
    if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
        return match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map.into_iter().collect()),
            Ok(_) => Err(Error::usage(format!(
                "{} must hold a JSON object",
                path.display()
            ))),
            Err(e) => Err(Error::usage(format!(
                "{} is not valid JSON: {e}",
                path.display()
            ))),
        };
    }
    let body = parse_file(path)?;
    if let Some(block) = body.blocks().next() {
        return Err(Error::usage(format!(
            "{}: a variables file holds only NAME = VALUE lines, not a '{}' block",
            path.display(),
            block.identifier()
        )));
    }
    body.attributes()
        .map(|a| {
            evaluate(a.expr())
                .map(|v| (a.key().to_owned(), v))
                .map_err(|e| Error::usage(format!("{}: {}: {e}", path.display(), a.key())))
        })
        .collect()
}

/// A value given as text (`-var`, `TF_VAR_`): primitives as they are, other types as HCL.
fn parse_text(text: &str, kind: &Type, name: &str) -> Result<Value, String> {
    match kind {
        Type::String | Type::Number | Type::Bool => Ok(Value::String(text.to_owned())),
        _ => {
            let body = hcl::parse(&format!("value = {text}"))
                .map_err(|e| format!("the value of {name} is not valid HCL: {e}"))?;
            let attr = body.attributes().next().ok_or("empty value")?;
            evaluate(attr.expr()).map_err(|e| format!("the value of {name}: {e}"))
        }
    }
}

fn tf_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::usage(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn ends_with(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(suffix))
}

fn literal_attributes(block: &Block) -> BTreeMap<String, Value> {
    block
        .body()
        .attributes()
        .filter_map(|a| evaluate(a.expr()).ok().map(|v| (a.key().to_owned(), v)))
        .collect()
}

fn resource(block: &Block) -> Resource {
    let mut blocks: BTreeMap<String, Vec<BTreeMap<String, Value>>> = BTreeMap::new();
    for nested in block.body().blocks() {
        blocks
            .entry(nested.identifier().to_owned())
            .or_default()
            .push(literal_attributes(nested));
    }
    Resource {
        attributes: literal_attributes(block),
        blocks,
    }
}

/// The default of Packer variable `name` in the template beside `infra` (`../packer`), when
/// it is a literal.
pub fn packer_default(infra: &Path, name: &str) -> Option<Value> {
    let packer = infra.join("../packer");
    tf_files(&packer)
        .ok()?
        .iter()
        .filter(|p| ends_with(p, ".pkr.hcl"))
        .filter_map(|p| parse_file(p).ok())
        .flat_map(Body::into_blocks)
        .find(|b| {
            b.identifier() == "variable" && b.labels().first().is_some_and(|l| l.as_str() == name)
        })
        .and_then(|b| {
            b.body()
                .attributes()
                .find(|a| a.key() == "default")
                .and_then(|a| evaluate(a.expr()).ok())
        })
}

/// Loads the variables of the root module in `infra`, as Terraform would with `env` (the
/// process environment, for `TF_VAR_*`) and the command line's `assignments`.
pub fn load(
    infra: &Path,
    assignments: &[Assignment],
    env: &[(String, String)],
) -> Result<Variables, Error> {
    let mut declared: BTreeMap<String, Declared> = BTreeMap::new();
    let mut vars = Variables::default();
    for path in tf_files(infra)?.iter().filter(|p| ends_with(p, ".tf")) {
        let file = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for block in parse_file(path)?.into_blocks() {
            vars.checks.collect(&file, &block);
            match (block.identifier(), block.labels()) {
                ("variable", [label]) => {
                    let name = label.as_str().to_owned();
                    let attr = |key: &str| block.body().attributes().find(|a| a.key() == key);
                    let kind = match attr("type") {
                        Some(t) => parse_type(t.expr()).map_err(|e| {
                            Error::failed(format!("{}: variable {name}: {e}", path.display()))
                        })?,
                        None => Type::Any,
                    };
                    let default = match attr("default") {
                        Some(d) => Some(evaluate(d.expr()).map_err(|e| {
                            Error::failed(format!("{}: default of {name}: {e}", path.display()))
                        })?),
                        None => None,
                    };
                    declared.insert(name, Declared { kind, default });
                }
                ("locals", _) => vars.locals.extend(literal_attributes(&block)),
                ("resource", [kind, name]) => {
                    vars.resources.insert(
                        format!("{}.{}", kind.as_str(), name.as_str()),
                        resource(&block),
                    );
                }
                _ => {}
            }
        }
    }
    let mut raw: BTreeMap<String, Value> = BTreeMap::new();
    for (name, d) in &declared {
        if let Some(default) = &d.default {
            raw.insert(name.clone(), default.clone());
            vars.origin.insert(name.clone(), "default".to_owned());
        }
    }
    let mut sorted_env = env.to_vec();
    sorted_env.sort();
    for (key, text) in &sorted_env {
        let Some(name) = key.strip_prefix("TF_VAR_") else {
            continue;
        };
        let Some(d) = declared.get(name) else {
            continue;
        };
        let value = parse_text(text, &d.kind, key).map_err(Error::usage)?;
        raw.insert(name.to_owned(), value);
        vars.origin.insert(name.to_owned(), key.clone());
    }
    let assign_file = |path: &Path, vars: &mut Variables, raw: &mut BTreeMap<String, Value>| {
        let shown = path.display().to_string();
        for (name, value) in read_tfvars(path)? {
            if declared.contains_key(&name) {
                raw.insert(name.clone(), value);
                vars.origin.insert(name, shown.clone());
            } else {
                vars.warnings.push(format!(
                    "{shown} sets '{name}', which infra/ does not declare: Terraform ignores it with a warning"
                ));
            }
        }
        vars.files.push(shown);
        Ok::<(), Error>(())
    };
    let auto: Vec<PathBuf> = tf_files(infra)?
        .into_iter()
        .filter(|p| ends_with(p, ".auto.tfvars") || ends_with(p, ".auto.tfvars.json"))
        .collect();
    for name in ["terraform.tfvars", "terraform.tfvars.json"] {
        let path = infra.join(name);
        if path.is_file() {
            assign_file(&path, &mut vars, &mut raw)?;
        }
    }
    for path in &auto {
        assign_file(path, &mut vars, &mut raw)?;
    }
    for assignment in assignments {
        match assignment {
            Assignment::File(path) => {
                if !path.is_file() {
                    return Err(Error::usage(format!(
                        "-var-file={}: no such file",
                        path.display()
                    )));
                }
                assign_file(path, &mut vars, &mut raw)?;
            }
            Assignment::Var(text) => {
                let (name, value) = text
                    .split_once('=')
                    .ok_or_else(|| Error::usage(format!("-var takes NAME=VALUE, not '{text}'")))?;
                let name = name.trim();
                let d = declared.get(name).ok_or_else(|| {
                    Error::usage(format!(
                        "-var {name}: infra/ declares no variable '{name}' (see infra/variables.tf)"
                    ))
                })?;
                raw.insert(
                    name.to_owned(),
                    parse_text(value, &d.kind, name).map_err(Error::usage)?,
                );
                vars.origin.insert(name.to_owned(), format!("-var {name}"));
            }
        }
    }
    for (name, value) in raw {
        let d = &declared[&name];
        let converted = convert(&value, &d.kind, &name).map_err(|e| {
            Error::usage(format!(
                "invalid value for variable {e} (set by {})",
                vars.origin[&name]
            ))
        })?;
        vars.values.insert(name, converted);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn module(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    const VARIABLES: &str = r#"
        variable "min_size" {
          type    = number
          default = 2
        }
        variable "mode" {
          type    = string
          default = "step"
        }
        variable "schedules" {
          type = map(object({
            recurrence = string
            time_zone  = optional(string, "Etc/UTC")
            min_size   = optional(number, -1)
          }))
          default = {}
        }
        variable "ami_id" {
          type = string
        }
        locals {
          health_check = { interval = 5, healthy_threshold = 2 }
          name         = "${var.mode}-x"
        }
    "#;

    #[test]
    fn later_sources_win_in_terraform_order() {
        let dir = module(&[
            ("variables.tf", VARIABLES),
            ("terraform.tfvars", "min_size = 3\n"),
            ("b.auto.tfvars", "min_size = 5\n"),
            ("a.auto.tfvars", "min_size = 4\n"),
        ]);
        let file = dir.path().join("extra.tfvars");
        std::fs::write(&file, "min_size = 6\nmode = \"target_tracking\"\n").expect("write");
        let env = vec![("TF_VAR_min_size".to_owned(), "9".to_owned())];
        // Environment < terraform.tfvars < *.auto.tfvars (lexical: b after a).
        let v = load(dir.path(), &[], &env).expect("load");
        assert_eq!(v.get("min_size"), Some(&json!(5.0)));
        // Then the command line, in its order: the last one wins.
        let cli = [
            Assignment::Var("min_size=7".into()),
            Assignment::File(file.clone()),
        ];
        let v = load(dir.path(), &cli, &env).expect("load");
        assert_eq!(v.get("min_size"), Some(&json!(6.0)));
        assert_eq!(v.get("mode"), Some(&json!("target_tracking")));
        let cli = [Assignment::File(file), Assignment::Var("min_size=7".into())];
        let v = load(dir.path(), &cli, &env).expect("load");
        assert_eq!(v.get("min_size"), Some(&json!(7.0)));
        assert_eq!(v.origin["min_size"], "-var min_size");
    }

    #[test]
    fn the_environment_applies_when_nothing_else_sets_a_variable() {
        let dir = module(&[("variables.tf", VARIABLES)]);
        let env = vec![("TF_VAR_min_size".to_owned(), "9".to_owned())];
        let v = load(dir.path(), &[], &env).expect("load");
        assert_eq!(v.get("min_size"), Some(&json!(9.0)));
        assert_eq!(v.get("mode"), Some(&json!("step")));
        assert!(v.get("ami_id").is_none(), "no default, not set");
    }

    #[test]
    fn optional_attributes_get_their_defaults() {
        let dir = module(&[("variables.tf", VARIABLES)]);
        let cli = [Assignment::Var(
            r#"schedules={ a = { recurrence = "0 7 * * *" }, b = { recurrence = "0 9 * * *", time_zone = "Europe/Paris", min_size = "4" } }"#.into(),
        )];
        let v = load(dir.path(), &cli, &[]).expect("load");
        assert_eq!(
            v.get("schedules"),
            Some(&json!({
                "a": { "recurrence": "0 7 * * *", "time_zone": "Etc/UTC", "min_size": -1.0 },
                "b": { "recurrence": "0 9 * * *", "time_zone": "Europe/Paris", "min_size": 4.0 },
            }))
        );
        assert_eq!(
            v.locals["health_check"],
            json!({ "interval": 5, "healthy_threshold": 2 })
        );
        assert!(
            !v.locals.contains_key("name"),
            "a local that needs a variable is skipped"
        );
    }

    #[test]
    fn bad_assignments_are_usage_errors_naming_the_variable() {
        let dir = module(&[("variables.tf", VARIABLES)]);
        let cases = [
            (
                Assignment::Var("max_sise=4".into()),
                "declares no variable 'max_sise'",
            ),
            (
                Assignment::Var("min_size=two".into()),
                "min_size: a number is required",
            ),
            (Assignment::Var("min_size".into()), "NAME=VALUE"),
            (Assignment::File("no/such.tfvars".into()), "no such file"),
            (
                Assignment::Var("schedules={ a = {} }".into()),
                "recurrence: attribute is required",
            ),
        ];
        for (assignment, reason) in cases {
            let err =
                load(dir.path(), std::slice::from_ref(&assignment), &[]).expect_err("refused");
            assert!(matches!(err, Error::Usage(_)), "{assignment:?}");
            assert!(err.to_string().contains(reason), "{assignment:?}: {err}");
        }
    }

    #[test]
    fn an_undeclared_variable_in_a_file_is_a_warning() {
        let dir = module(&[
            ("variables.tf", VARIABLES),
            ("x.auto.tfvars", "colour = \"blue\"\n"),
        ]);
        let v = load(dir.path(), &[], &[]).expect("load");
        assert!(
            v.warnings.iter().any(|w| w.contains("'colour'")),
            "{:?}",
            v.warnings
        );
    }

    #[test]
    fn json_variable_files_are_read() {
        let dir = module(&[
            ("variables.tf", VARIABLES),
            ("terraform.tfvars.json", r#"{"min_size": 8}"#),
        ]);
        let v = load(dir.path(), &[], &[]).expect("load");
        assert_eq!(v.get("min_size"), Some(&json!(8.0)));
    }
}
