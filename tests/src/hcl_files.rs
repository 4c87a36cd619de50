//! The one reader of the project's HCL (the Terraform module in `infra/`, the Packer
//! template in `packer/`, the `.tfvars` examples) for the tests: files parsed as the tools
//! read them, blocks selected by kind and labels, and `local.*` / `var.*` references
//! followed to the values a default `terraform apply` or `packer build` would use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::expr::{ObjectKey, Operation, TemplateExpr, TraversalOperator, UnaryOperator};
use hcl::{Block, Body, Expression};

/// Parses one file, or fails the test naming it.
pub fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    hcl::parse(&text)
        .unwrap_or_else(|err| panic!("{} does not parse as HCL: {err}", path.display()))
}

/// The files directly in `dir` (not in its subfolders) whose name ends with `suffix`,
/// sorted.
pub fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *{suffix} file in {}", dir.display());
    files
}

/// The files under `dir`, in every subfolder but hidden ones, whose name ends with
/// `suffix`, sorted (possibly none).
pub fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", folder.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every top-level block of the files directly in `dir` ending with `suffix`: a
/// Terraform root module or a Packer template, as the tool itself reads them.
pub fn blocks_in(dir: &Path, suffix: &str) -> Vec<Block> {
    files_in(dir, suffix)
        .iter()
        .flat_map(|path| parse(path).into_blocks())
        .collect()
}

/// The blocks `kind "label0" "label1" ...` whose labels start with `labels`.
pub fn select<'a>(blocks: &'a [Block], kind: &str, labels: &[&str]) -> Vec<&'a Block> {
    blocks
        .iter()
        .filter(|block| {
            block.identifier() == kind
                && block.labels().len() >= labels.len()
                && block
                    .labels()
                    .iter()
                    .zip(labels)
                    .all(|(label, want)| label.as_str() == *want)
        })
        .collect()
}

/// The default value of `variable "name"` in the Terraform module at `dir`, as JSON: what
/// Terraform uses when nobody sets the variable (literal defaults only).
pub fn variable_default(dir: &Path, name: &str) -> serde_json::Value {
    variable_default_in(dir, ".tf", name)
}

/// The default value of `variable "name"` among the files of `dir` ending with `suffix`
/// (".tf" for Terraform, ".pkr.hcl" for Packer), as JSON.
pub fn variable_default_in(dir: &Path, suffix: &str, name: &str) -> serde_json::Value {
    let module = Module::load(dir, suffix);
    serde_json::to_value(hcl::Value::from(module.default_of(name).clone()))
        .expect("an HCL value converts to JSON")
}

/// A Terraform root module or a Packer template: every top-level block of the files of
/// one folder, and their locals.
#[derive(Debug)]
pub struct Module {
    dir: PathBuf,
    blocks: Vec<Block>,
    locals: BTreeMap<String, Expression>,
}

impl Module {
    /// The Terraform root module in `infra/`: every top-level block of its `.tf` files.
    pub fn infra() -> Self {
        Self::terraform(&crate::infra_dir())
    }

    /// The Terraform root module in `dir` (its `.tf` files; Terraform reads no subfolder).
    pub fn terraform(dir: &Path) -> Self {
        Self::load(dir, ".tf")
    }

    /// The Packer template in `dir` (its `.pkr.hcl` files).
    pub fn packer(dir: &Path) -> Self {
        Self::load(dir, ".pkr.hcl")
    }

    pub fn load(dir: &Path, suffix: &str) -> Self {
        let blocks = blocks_in(dir, suffix);
        let mut locals = BTreeMap::new();
        for block in select(&blocks, "locals", &[]) {
            for attribute in block.body().attributes() {
                let previous = locals.insert(attribute.key().to_owned(), attribute.expr().clone());
                assert!(
                    previous.is_none(),
                    "local.{} is defined twice in {}",
                    attribute.key(),
                    dir.display()
                );
            }
        }
        Self {
            dir: dir.to_path_buf(),
            blocks,
            locals,
        }
    }

    /// Top-level blocks `kind "label0" "label1" {}` whose labels start with `labels`.
    pub fn blocks(&self, kind: &str, labels: &[&str]) -> Vec<&Block> {
        select(&self.blocks, kind, labels)
    }

    /// The one top-level block `kind "labels..."`.
    pub fn one_block(&self, kind: &str, labels: &[&str]) -> &Block {
        let found = self.blocks(kind, labels);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one `{kind} {labels:?}` block in {}",
            self.dir.display()
        );
        found[0]
    }

    /// The body of the one top-level block `kind "labels..."`.
    pub fn one(&self, kind: &str, labels: &[&str]) -> &Body {
        self.one_block(kind, labels).body()
    }

    pub fn resource(&self, kind: &str, name: &str) -> &Body {
        self.one("resource", &[kind, name])
    }

    /// Every `resource "<kind>" "<name>"`, as (name, body).
    pub fn resources(&self, kind: &str) -> Vec<(&str, &Body)> {
        self.blocks("resource", &[kind])
            .into_iter()
            .map(|block| (block.labels()[1].as_str(), block.body()))
            .collect()
    }

    pub fn data(&self, kind: &str, name: &str) -> &Body {
        self.one("data", &[kind, name])
    }

    /// Every `variable "<name>"`, as (name, body).
    pub fn variables(&self) -> Vec<(&str, &Body)> {
        self.blocks("variable", &[])
            .into_iter()
            .map(|block| (block.labels()[0].as_str(), block.body()))
            .collect()
    }

    pub fn local(&self, name: &str) -> &Expression {
        self.locals
            .get(name)
            .unwrap_or_else(|| panic!("no local `{name}` in {}", self.dir.display()))
    }

    pub fn default_of(&self, variable: &str) -> &Expression {
        let body = self.one("variable", &[variable]);
        attr(body, "default").unwrap_or_else(|| panic!("variable `{variable}` has no default"))
    }

    /// Follows `local.x.y` and `var.x` (its default) until the expression is no reference.
    pub fn resolve(&self, expr: &Expression) -> Expression {
        match expr {
            Expression::Parenthesis(inner) => self.resolve(inner),
            Expression::Traversal(traversal) => {
                let Expression::Variable(root) = &traversal.expr else {
                    return expr.clone();
                };
                let mut path = traversal.operators.iter();
                let Some(TraversalOperator::GetAttr(first)) = path.next() else {
                    return expr.clone();
                };
                let mut value = match root.as_str() {
                    "local" => self.resolve(self.local(first.as_str())),
                    "var" => self.resolve(self.default_of(first.as_str())),
                    _ => return expr.clone(),
                };
                for operator in path {
                    let TraversalOperator::GetAttr(key) = operator else {
                        panic!("cannot resolve {expr}: only attribute access is supported");
                    };
                    value = self.resolve(
                        object_get(&value, key.as_str())
                            .unwrap_or_else(|| panic!("{expr}: no attribute `{key}`")),
                    );
                }
                value
            }
            _ => expr.clone(),
        }
    }

    /// The number an expression resolves to, or a test failure.
    pub fn number(&self, expr: &Expression) -> f64 {
        number(&self.resolve(expr)).unwrap_or_else(|| panic!("{expr} is not a number"))
    }

    /// The literal string an expression resolves to, or a test failure.
    pub fn string(&self, expr: &Expression) -> String {
        match self.resolve(expr) {
            Expression::String(text) => text,
            other => panic!("{expr} is not a literal string (it is {other})"),
        }
    }

    pub fn default_number(&self, variable: &str) -> f64 {
        self.number(self.default_of(variable))
    }

    /// An object-valued expression's entries, following `local.x` and `merge(...)`.
    pub fn object(&self, expr: &Expression) -> BTreeMap<String, Expression> {
        match expr {
            Expression::Object(object) => object
                .iter()
                .map(|(key, value)| (key.to_string(), value.clone()))
                .collect(),
            Expression::FuncCall(call) if call.name.name.as_str() == "merge" => {
                let mut merged = BTreeMap::new();
                for arg in &call.args {
                    merged.extend(self.object(arg));
                }
                merged
            }
            other => match reference(other)
                .as_deref()
                .and_then(|r| r.strip_prefix("local."))
            {
                Some(name) => self.object(self.local(name)),
                None => panic!("cannot read {other} as an object"),
            },
        }
    }

    /// A string-ish expression as text, with `local.x` references replaced by the local's
    /// own text: enough to resolve paths such as "${local.staging_dir}/candidates".
    pub fn text(&self, expr: &Expression) -> String {
        match expr {
            Expression::String(s) => s.clone(),
            Expression::TemplateExpr(template) => {
                let mut text = template.to_string();
                for (name, value) in &self.locals {
                    let placeholder = format!("${{local.{name}}}");
                    if text.contains(&placeholder) {
                        text = text.replace(&placeholder, &self.text(value));
                    }
                }
                text
            }
            other => match reference(other)
                .as_deref()
                .and_then(|r| r.strip_prefix("local."))
            {
                Some(name) => self.text(self.local(name)),
                None => other.to_string(),
            },
        }
    }
}

/// The attribute `key` of a block's body, if set.
pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|attribute| attribute.key() == key)
        .map(|attribute| attribute.expr())
}

/// The attribute `key`, or a test failure.
pub fn required<'a>(body: &'a Body, key: &str) -> &'a Expression {
    attr(body, key).unwrap_or_else(|| panic!("`{key}` is not set"))
}

/// The nested blocks `ident { }` of a body.
pub fn nested<'a>(body: &'a Body, ident: &str) -> Vec<&'a Body> {
    body.blocks()
        .filter(|block| block.identifier() == ident)
        .map(|block| block.body())
        .collect()
}

/// The one nested block `ident { }`, or a test failure.
pub fn single<'a>(body: &'a Body, ident: &str) -> &'a Body {
    let found = nested(body, ident);
    assert_eq!(found.len(), 1, "expected exactly one `{ident}` block");
    found[0]
}

/// The labels of a block, as text.
pub fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|label| label.as_str()).collect()
}

/// The value of `key` in an object expression.
pub fn object_get<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    let Expression::Object(object) = expr else {
        return None;
    };
    object.iter().find_map(|(object_key, value)| {
        let name = match object_key {
            ObjectKey::Identifier(ident) => ident.as_str().to_owned(),
            ObjectKey::Expression(Expression::String(text)) => text.clone(),
            ObjectKey::Expression(other) => other.to_string(),
            _ => return None,
        };
        (name == key).then_some(value)
    })
}

/// A literal number (negative ones included).
pub fn number(expr: &Expression) -> Option<f64> {
    match expr {
        Expression::Number(number) => number.as_f64(),
        Expression::Parenthesis(inner) => number(inner),
        Expression::Operation(operation) => match operation.as_ref() {
            Operation::Unary(unary) if unary.operator == UnaryOperator::Neg => {
                number(&unary.expr).map(|n| -n)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A literal bool, or a test failure.
pub fn boolean(expr: &Expression) -> bool {
    match expr {
        Expression::Bool(value) => *value,
        other => panic!("{other} is not a literal bool"),
    }
}

/// The raw text of a string or template (interpolations left as written).
pub fn template_text(expr: &Expression) -> String {
    match expr {
        Expression::String(text) => text.clone(),
        Expression::TemplateExpr(template) => match template.as_ref() {
            TemplateExpr::QuotedString(text) => text.clone(),
            TemplateExpr::Heredoc(heredoc) => heredoc.template.clone(),
        },
        other => panic!("{other} is not a string or template"),
    }
}

/// A reference such as `aws_security_group.alb.id` or `var.project`, as written; None for
/// any other expression.
pub fn reference(expr: &Expression) -> Option<String> {
    match expr {
        Expression::Variable(_) | Expression::Traversal(_) => Some(expr.to_string()),
        _ => None,
    }
}

/// The reference an expression must be, as written, or a test failure.
pub fn expect_reference(expr: &Expression) -> String {
    reference(expr).unwrap_or_else(|| panic!("{expr} is not a reference"))
}

/// The texts of a list of strings or templates.
pub fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(template_text).collect(),
        other => panic!("{other} is not a list"),
    }
}

/// The references of a list such as `[aws_lb_target_group.this.arn]`, as written.
pub fn references(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(expect_reference).collect(),
        other => panic!("{other} is not a list"),
    }
}
