//! Terraform's expression language, evaluated as Terraform evaluates it during a plan, for
//! the expressions a root module's checks use: literals, `var.*`, `local.*`,
//! `terraform.workspace`, `path.*`, `count`/`each`, operators, conditionals, `for`
//! expressions, templates and the functions of `super::functions`.
//!
//! What only AWS can answer (data sources, resource attributes) is *unknown*, as it is in
//! a plan before apply: a check that needs it is not decided here. `can()` and `try()`
//! catch errors, not unknowns, as in Terraform.

use std::cell::RefCell;
use std::collections::BTreeMap;

use hcl::Expression;
use hcl::expr::{BinaryOperator, ObjectKey, Operation, TraversalOperator, UnaryOperator};
use hcl::template::{Directive, Element, Template};
use serde_json::{Number, Value};

use super::functions;

/// Why an expression has no value.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Known only once AWS answers (a data source, a resource attribute).
    Unknown(String),
    /// Terraform itself would stop with this error.
    Invalid(String),
}

pub type Eval = Result<Value, Failure>;

pub fn invalid(message: impl Into<String>) -> Failure {
    Failure::Invalid(message.into())
}

/// A number as a JSON value (one representation for 5 and 5.0, as Terraform has).
pub fn number(value: f64) -> Eval {
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| invalid(format!("{value} is not a finite number")))
}

/// A value as Terraform shows it in a string template: 15 not 15.0.
pub fn to_text(value: &Value) -> Result<String, Failure> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(format_number(n.as_f64().unwrap_or(f64::NAN))),
        Value::Null => Err(invalid(
            "Invalid template interpolation value: the value is null",
        )),
        _ => Err(invalid(
            "Invalid template interpolation value: a string, number or bool is required",
        )),
    }
}

pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// A number, converting a numeric string as Terraform does.
pub fn as_number(value: &Value, what: &str) -> Result<f64, Failure> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| invalid(format!("{what}: a number is required"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| invalid(format!("{what}: a number is required, not \"{s}\""))),
        Value::Null => Err(invalid(format!("{what}: a number is required, not null"))),
        _ => Err(invalid(format!("{what}: a number is required"))),
    }
}

pub fn as_bool(value: &Value, what: &str) -> Result<bool, Failure> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        Value::Null => Err(invalid(format!("{what}: a bool is required, not null"))),
        _ => Err(invalid(format!("{what}: a bool is required"))),
    }
}

/// Terraform's equality: numbers by value, collections element by element.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|other| equal(v, other)))
        }
        _ => a == b,
    }
}

/// The module's values an expression can reference.
#[derive(Debug)]
pub struct Module<'a> {
    pub vars: &'a BTreeMap<String, Value>,
    pub locals: &'a BTreeMap<String, Expression>,
    /// `terraform.workspace`: the environment.
    pub workspace: &'a str,
    /// `path.module` and `path.root`.
    pub path: &'a str,
    /// Locals already evaluated (or being evaluated: `None`, a cycle).
    memo: RefCell<BTreeMap<String, Option<Eval>>>,
}

impl<'a> Module<'a> {
    pub fn new(
        vars: &'a BTreeMap<String, Value>,
        locals: &'a BTreeMap<String, Expression>,
        workspace: &'a str,
        path: &'a str,
    ) -> Module<'a> {
        Module {
            vars,
            locals,
            workspace,
            path,
            memo: RefCell::new(BTreeMap::new()),
        }
    }

    fn local(&self, name: &str) -> Eval {
        if let Some(done) = self.memo.borrow().get(name) {
            return done.clone().unwrap_or_else(|| {
                Err(Failure::Unknown(format!("local.{name} refers to itself")))
            });
        }
        let Some(expr) = self.locals.get(name) else {
            return Err(invalid(format!(
                "Reference to undeclared local value: local.{name}"
            )));
        };
        self.memo.borrow_mut().insert(name.to_owned(), None);
        let value = Scope::root(self).eval(expr);
        self.memo
            .borrow_mut()
            .insert(name.to_owned(), Some(value.clone()));
        value
    }
}

/// Where an expression is evaluated: the module, plus names bound by `for`, `count` and
/// `each`.
#[derive(Debug, Clone)]
pub struct Scope<'m, 'a> {
    module: &'m Module<'a>,
    bindings: Vec<(String, Value)>,
}

impl<'m, 'a> Scope<'m, 'a> {
    pub fn root(module: &'m Module<'a>) -> Scope<'m, 'a> {
        Scope {
            module,
            bindings: Vec::new(),
        }
    }

    /// The same scope with `name` bound to `value` (`count`, `each`, a `for` variable).
    pub fn with(&self, name: &str, value: Value) -> Scope<'m, 'a> {
        let mut scope = self.clone();
        scope.bindings.push((name.to_owned(), value));
        scope
    }

    fn bound(&self, name: &str) -> Option<&Value> {
        self.bindings
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    pub fn eval(&self, expr: &Expression) -> Eval {
        match expr {
            Expression::Null => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b)),
            Expression::Number(n) => number(n.as_f64().unwrap_or(f64::NAN)),
            Expression::String(s) => Ok(Value::String(s.clone())),
            Expression::Array(items) => items
                .iter()
                .map(|e| self.eval(e))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Expression::Object(fields) => {
                let mut map = serde_json::Map::new();
                for (key, value) in fields {
                    let key = match key {
                        ObjectKey::Identifier(id) => id.as_str().to_owned(),
                        ObjectKey::Expression(e) => to_text(&self.eval(e)?)?,
                        _ => return Err(Failure::Unknown("an unusual object key".to_owned())),
                    };
                    map.insert(key, self.eval(value)?);
                }
                Ok(Value::Object(map))
            }
            Expression::TemplateExpr(template) => {
                let template =
                    Template::from_expr(template).map_err(|e| invalid(format!("template: {e}")))?;
                self.template(&template).map(Value::String)
            }
            Expression::Variable(v) => self.root_name(v.as_str()),
            Expression::Traversal(traversal) => {
                self.traversal(&traversal.expr, &traversal.operators)
            }
            Expression::FuncCall(call) => {
                let name = call.name.name.as_str();
                if !call.name.namespace.is_empty() {
                    return Err(Failure::Unknown(format!("provider function {name}")));
                }
                match name {
                    "can" => self.can(&call.args),
                    "try" => self.try_each(&call.args),
                    _ => {
                        let mut args = call
                            .args
                            .iter()
                            .map(|a| self.eval(a))
                            .collect::<Result<Vec<_>, _>>()?;
                        if call.expand_final {
                            match args.pop() {
                                Some(Value::Array(items)) => args.extend(items),
                                _ => {
                                    return Err(invalid(format!(
                                        "{name}(...): the expanded argument must be a list"
                                    )));
                                }
                            }
                        }
                        functions::call(name, &args)
                    }
                }
            }
            Expression::Parenthesis(inner) => self.eval(inner),
            Expression::Conditional(c) => {
                let cond = self.eval(&c.cond_expr)?;
                if as_bool(&cond, "the condition of ? :")? {
                    self.eval(&c.true_expr)
                } else {
                    self.eval(&c.false_expr)
                }
            }
            Expression::Operation(op) => self.operation(op),
            Expression::ForExpr(f) => self.for_expr(f),
            _ => Err(Failure::Unknown("an unsupported expression".to_owned())),
        }
    }

    /// `can(expr)`: whether it evaluates without error (unknown stays unknown).
    fn can(&self, args: &[Expression]) -> Eval {
        let [arg] = args else {
            return Err(invalid("can() takes exactly one argument"));
        };
        match self.eval(arg) {
            Ok(_) => Ok(Value::Bool(true)),
            Err(Failure::Invalid(_)) => Ok(Value::Bool(false)),
            Err(unknown) => Err(unknown),
        }
    }

    /// `try(a, b, ...)`: the first argument that evaluates without error.
    fn try_each(&self, args: &[Expression]) -> Eval {
        let mut last = invalid("try() needs at least one argument");
        for arg in args {
            match self.eval(arg) {
                Ok(value) => return Ok(value),
                Err(Failure::Invalid(e)) => last = invalid(e),
                Err(unknown) => return Err(unknown),
            }
        }
        Err(invalid(format!(
            "No expression in try() succeeded: {}",
            match last {
                Failure::Invalid(e) | Failure::Unknown(e) => e,
            }
        )))
    }

    fn template(&self, template: &Template) -> Result<String, Failure> {
        let mut out = String::new();
        for element in template.elements() {
            match element {
                Element::Literal(text) => out.push_str(text),
                Element::Interpolation(i) => out.push_str(&to_text(&self.eval(&i.expr)?)?),
                Element::Directive(directive) => match directive.as_ref() {
                    Directive::If(d) => {
                        let cond = as_bool(&self.eval(&d.cond_expr)?, "%{if}")?;
                        if cond {
                            out.push_str(&self.template(&d.true_template)?);
                        } else if let Some(f) = &d.false_template {
                            out.push_str(&self.template(f)?);
                        }
                    }
                    _ => return Err(Failure::Unknown("a %{for} template directive".to_owned())),
                },
            }
        }
        Ok(out)
    }

    /// A bare name: `count`, `each` or a `for` variable.
    fn root_name(&self, name: &str) -> Eval {
        self.bound(name)
            .cloned()
            .ok_or_else(|| Failure::Unknown(format!("{name} (known only in a plan)")))
    }

    fn traversal(&self, base: &Expression, operators: &[TraversalOperator]) -> Eval {
        let attr = |i: usize| match operators.get(i) {
            Some(TraversalOperator::GetAttr(id)) => Some(id.as_str()),
            _ => None,
        };
        let (value, rest) = match base {
            Expression::Variable(v) if self.bound(v.as_str()).is_none() => {
                let root = v.as_str();
                match (root, attr(0)) {
                    ("var", Some(name)) => (
                        self.module.vars.get(name).cloned().ok_or_else(|| {
                            invalid(format!(
                                "Reference to undeclared input variable: var.{name}"
                            ))
                        })?,
                        &operators[1..],
                    ),
                    ("local", Some(name)) => (self.module.local(name)?, &operators[1..]),
                    ("terraform", Some("workspace")) => (
                        Value::String(self.module.workspace.to_owned()),
                        &operators[1..],
                    ),
                    ("path", Some(_)) => {
                        (Value::String(self.module.path.to_owned()), &operators[1..])
                    }
                    (_, Some(name)) => {
                        return Err(Failure::Unknown(format!(
                            "{root}.{name} (known only once AWS answers)"
                        )));
                    }
                    _ => return Err(Failure::Unknown(format!("{root}[...]"))),
                }
            }
            other => (self.eval(other)?, operators),
        };
        rest.iter()
            .try_fold(value, |value, op| self.step(value, op))
    }

    fn step(&self, value: Value, op: &TraversalOperator) -> Eval {
        match op {
            TraversalOperator::GetAttr(id) => match value {
                Value::Object(mut map) => map.remove(id.as_str()).ok_or_else(|| {
                    invalid(format!(
                        "Unsupported attribute: this object does not have an attribute named \"{}\"",
                        id.as_str()
                    ))
                }),
                Value::Null => Err(invalid(format!(
                    "Attempt to get attribute \"{}\" from a null value",
                    id.as_str()
                ))),
                _ => Err(invalid(format!(
                    "Unsupported attribute \"{}\": not an object",
                    id.as_str()
                ))),
            },
            TraversalOperator::Index(index) => {
                let key = self.eval(index)?;
                index_into(value, &key)
            }
            TraversalOperator::LegacyIndex(i) => index_into(value, &Value::from(*i)),
            TraversalOperator::AttrSplat | TraversalOperator::FullSplat => match value {
                Value::Array(items) => Ok(Value::Array(items)),
                Value::Null => Ok(Value::Array(Vec::new())),
                other => Ok(Value::Array(vec![other])),
            },
        }
    }

    fn operation(&self, op: &Operation) -> Eval {
        match op {
            Operation::Unary(u) => {
                let value = self.eval(&u.expr)?;
                match u.operator {
                    UnaryOperator::Neg => number(-as_number(&value, "unary -")?),
                    UnaryOperator::Not => Ok(Value::Bool(!as_bool(&value, "!")?)),
                }
            }
            Operation::Binary(b) => {
                use BinaryOperator::*;
                let (left, right) = (self.eval(&b.lhs_expr), self.eval(&b.rhs_expr));
                // An unknown side decides nothing, except where the other side alone
                // decides (true || unknown, false && unknown).
                if matches!(b.operator, And | Or) {
                    let decisive = matches!(b.operator, Or);
                    let decides =
                        |side: &Eval| matches!(side, Ok(Value::Bool(v)) if *v == decisive);
                    let erroneous = |side: &Eval| matches!(side, Err(Failure::Invalid(_)));
                    if !erroneous(&left)
                        && !erroneous(&right)
                        && (decides(&left) || decides(&right))
                    {
                        return Ok(Value::Bool(decisive));
                    }
                }
                let (left, right) = (left?, right?);
                let num = |v: &Value| as_number(v, "an arithmetic or comparison operand");
                match b.operator {
                    Eq => Ok(Value::Bool(equal(&left, &right))),
                    NotEq => Ok(Value::Bool(!equal(&left, &right))),
                    Less => Ok(Value::Bool(num(&left)? < num(&right)?)),
                    LessEq => Ok(Value::Bool(num(&left)? <= num(&right)?)),
                    Greater => Ok(Value::Bool(num(&left)? > num(&right)?)),
                    GreaterEq => Ok(Value::Bool(num(&left)? >= num(&right)?)),
                    Plus => number(num(&left)? + num(&right)?),
                    Minus => number(num(&left)? - num(&right)?),
                    Mul => number(num(&left)? * num(&right)?),
                    Div => {
                        let divisor = num(&right)?;
                        if divisor == 0.0 {
                            return Err(invalid("Division by zero"));
                        }
                        number(num(&left)? / divisor)
                    }
                    Mod => {
                        let divisor = num(&right)?;
                        if divisor == 0.0 {
                            return Err(invalid("Division by zero"));
                        }
                        number(num(&left)? % divisor)
                    }
                    And => Ok(Value::Bool(as_bool(&left, "&&")? && as_bool(&right, "&&")?)),
                    Or => Ok(Value::Bool(as_bool(&left, "||")? || as_bool(&right, "||")?)),
                }
            }
        }
    }

    fn for_expr(&self, f: &hcl::expr::ForExpr) -> Eval {
        let collection = self.eval(&f.collection_expr)?;
        let items: Vec<(Value, Value)> = match collection {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i as f64), v))
                .collect(),
            Value::Object(map) => map
                .into_iter()
                .map(|(k, v)| (Value::String(k), v))
                .collect(),
            Value::Null => return Err(invalid("Iteration over null value")),
            _ => {
                return Err(invalid(
                    "A for expression needs a list, a set, a map or an object",
                ));
            }
        };
        let mut list = Vec::new();
        let mut object = serde_json::Map::new();
        for (key, value) in items {
            let mut scope = self.with(f.value_var.as_str(), value);
            if let Some(k) = &f.key_var {
                scope = scope.with(k.as_str(), key);
            }
            if let Some(cond) = &f.cond_expr
                && !as_bool(&scope.eval(cond)?, "a for expression's if")?
            {
                continue;
            }
            let value = scope.eval(&f.value_expr)?;
            match &f.key_expr {
                None => list.push(value),
                Some(key_expr) => {
                    let key = to_text(&scope.eval(key_expr)?)?;
                    if f.grouping {
                        match object
                            .entry(key)
                            .or_insert_with(|| Value::Array(Vec::new()))
                        {
                            Value::Array(group) => group.push(value),
                            _ => unreachable!("groups are lists"),
                        }
                    } else if object.insert(key.clone(), value).is_some() {
                        return Err(invalid(format!(
                            "Duplicate object key \"{key}\" in a for expression"
                        )));
                    }
                }
            }
        }
        Ok(if f.key_expr.is_some() {
            Value::Object(object)
        } else {
            Value::Array(list)
        })
    }
}

fn index_into(value: Value, key: &Value) -> Eval {
    match value {
        Value::Array(items) => {
            let i = as_number(key, "an index")?;
            if i.fract() != 0.0 || i < 0.0 || i as usize >= items.len() {
                return Err(invalid(format!(
                    "Invalid index: the collection has {} elements, index {} is out of range",
                    items.len(),
                    format_number(i)
                )));
            }
            Ok(items.into_iter().nth(i as usize).unwrap_or(Value::Null))
        }
        Value::Object(mut map) => {
            let k = to_text(key)?;
            map.remove(&k).ok_or_else(|| {
                invalid(format!(
                    "Invalid index: the given key \"{k}\" does not exist"
                ))
            })
        }
        Value::Null => Err(invalid("Attempt to index a null value")),
        _ => Err(invalid("Invalid index: this value has no elements")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_with(text: &str, vars: &[(&str, Value)]) -> Eval {
        let vars: BTreeMap<String, Value> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let locals: BTreeMap<String, Expression> = hcl::parse(
            "health = { interval = 5, unhealthy_threshold = 2 }\nname = \"${var.project}-${terraform.workspace}\"\nazs = data.aws_availability_zones.x.names\n",
        )
        .expect("locals")
        .attributes()
        .map(|a| (a.key().to_owned(), a.expr().clone()))
        .collect();
        let module = Module::new(&vars, &locals, "perf1", "infra");
        let body = hcl::parse(&format!("x = {text}")).expect("expression");
        let expr = body.attributes().next().expect("x").expr().clone();
        Scope::root(&module).eval(&expr)
    }

    #[test]
    fn validation_conditions_evaluate_as_terraform_does() {
        // (expression, variables, expected)
        // (expression, variables, expected)
        type Case = (&'static str, Vec<(&'static str, Value)>, Eval);
        let cases: Vec<Case> = vec![
            (
                "var.n >= 1 && floor(var.n) == var.n",
                vec![("n", json!(0.0))],
                Ok(json!(false)),
            ),
            (
                "var.n >= 1 && floor(var.n) == var.n",
                vec![("n", json!(3.0))],
                Ok(json!(true)),
            ),
            (
                "var.n >= 1 && floor(var.n) == var.n",
                vec![("n", json!(2.5))],
                Ok(json!(false)),
            ),
            (
                "var.p % 60 == 0",
                vec![("p", json!(90.0))],
                Ok(json!(false)),
            ),
            (
                "can(regex(\"^t[12]\\\\.\", var.t))",
                vec![("t", json!("t2.micro"))],
                Ok(json!(true)),
            ),
            (
                "!can(regex(\"^t[12]\\\\.\", var.t))",
                vec![("t", json!("t3.micro"))],
                Ok(json!(true)),
            ),
            (
                "var.r == null || can(regex(\"^[a-z]{2}-\", var.r))",
                vec![("r", Value::Null)],
                Ok(json!(true)),
            ),
            (
                "try(var.s[0].lower_bound == 0, false)",
                vec![("s", json!([]))],
                Ok(json!(false)),
            ),
            (
                "alltrue([for i, s in var.s : s.a >= 1 && (i == 0 || s.l > var.s[max(i - 1, 0)].l)])",
                vec![("s", json!([{"l": 0.0, "a": 1.0}, {"l": 20.0, "a": 2.0}]))],
                Ok(json!(true)),
            ),
            (
                "alltrue([for i, s in var.s : s.a >= 1 && (i == 0 || s.l > var.s[max(i - 1, 0)].l)])",
                vec![("s", json!([{"l": 0.0, "a": 1.0}, {"l": 0.0, "a": 2.0}]))],
                Ok(json!(false)),
            ),
            (
                "var.d >= local.health.interval * local.health.unhealthy_threshold",
                vec![("d", json!(5.0))],
                Ok(json!(false)),
            ),
            (
                "length(local.name) <= 32",
                vec![("project", json!("axum-asg"))],
                Ok(json!(true)),
            ),
            (
                "\"${var.a} s\"",
                vec![("a", json!(15.0))],
                Ok(json!("15 s")),
            ),
            (
                "contains([\"step\", \"target_tracking\"], var.m)",
                vec![("m", json!("predictive"))],
                Ok(json!(false)),
            ),
            (
                "length(local.azs) == var.az",
                vec![("az", json!(2.0))],
                Err(Failure::Unknown(String::new())),
            ),
            ("var.x >= 1", vec![("x", Value::Null)], Err(invalid(""))),
        ];
        for (text, vars, want) in cases {
            let got = eval_with(text, &vars);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert!(equal(g, w), "{text}: {got:?}, want {want:?}"),
                (Err(Failure::Unknown(_)), Err(Failure::Unknown(_)))
                | (Err(Failure::Invalid(_)), Err(Failure::Invalid(_))) => {}
                _ => panic!("{text}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_unknown_side_only_decides_nothing() {
        // true || unknown is true; false || unknown is unknown.
        assert_eq!(
            eval_with("true || length(local.azs) > 0", &[]),
            Ok(json!(true))
        );
        assert!(matches!(
            eval_with("false || length(local.azs) > 0", &[]),
            Err(Failure::Unknown(_))
        ));
    }
}
