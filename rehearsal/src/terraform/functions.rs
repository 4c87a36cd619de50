//! Terraform's built-in functions that a module's validations and preconditions use, with
//! Terraform's semantics (Terraform language documentation, "Functions"). A function not
//! listed here makes its expression unknown: the check is then left to Terraform rather
//! than guessed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::eval::{
    Eval, Failure, as_bool, as_number, equal, format_number, invalid, number, to_text,
};

fn arity(name: &str, args: &[Value], count: usize) -> Result<(), Failure> {
    if args.len() == count {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid function argument: {name}() takes {count} argument(s), {} given",
            args.len()
        )))
    }
}

fn text(name: &str, value: &Value) -> Result<String, Failure> {
    match value {
        Value::Null => Err(invalid(format!(
            "Invalid function argument: {name}(): argument must not be null"
        ))),
        other => to_text(other),
    }
}

fn list<'v>(name: &str, value: &'v Value) -> Result<&'v Vec<Value>, Failure> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(invalid(format!(
            "Invalid function argument: {name}() needs a list"
        ))),
    }
}

/// Calls Terraform function `name`.
pub fn call(name: &str, args: &[Value]) -> Eval {
    let num = |i: usize| as_number(&args[i], &format!("{name}() argument {}", i + 1));
    match name {
        "abs" => {
            arity(name, args, 1)?;
            number(num(0)?.abs())
        }
        "ceil" => {
            arity(name, args, 1)?;
            number(num(0)?.ceil())
        }
        "floor" => {
            arity(name, args, 1)?;
            number(num(0)?.floor())
        }
        "signum" => {
            arity(name, args, 1)?;
            let v = num(0)?;
            number(if v == 0.0 { 0.0 } else { v.signum() })
        }
        "pow" => {
            arity(name, args, 2)?;
            number(num(0)?.powf(num(1)?))
        }
        "max" | "min" => {
            if args.is_empty() {
                return Err(invalid(format!("{name}() needs at least one number")));
            }
            let values = (0..args.len()).map(num).collect::<Result<Vec<_>, _>>()?;
            let pick = if name == "max" { f64::max } else { f64::min };
            number(values.into_iter().reduce(pick).unwrap_or(0.0))
        }
        "tonumber" => {
            arity(name, args, 1)?;
            match &args[0] {
                Value::Null => Ok(Value::Null),
                _ => number(num(0)?),
            }
        }
        "tostring" => {
            arity(name, args, 1)?;
            match &args[0] {
                Value::Null => Ok(Value::Null),
                v => to_text(v).map(Value::String),
            }
        }
        "tobool" => {
            arity(name, args, 1)?;
            match &args[0] {
                Value::Null => Ok(Value::Null),
                v => as_bool(v, "tobool()").map(Value::Bool),
            }
        }
        "length" => {
            arity(name, args, 1)?;
            let n = match &args[0] {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                Value::Null => {
                    return Err(invalid(
                        "Invalid function argument: length() of a null value",
                    ));
                }
                _ => {
                    return Err(invalid(
                        "Invalid function argument: length() of a primitive",
                    ));
                }
            };
            number(n as f64)
        }
        "lower" | "upper" | "trimspace" => {
            arity(name, args, 1)?;
            let s = text(name, &args[0])?;
            Ok(Value::String(match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                _ => s.trim().to_owned(),
            }))
        }
        "startswith" | "endswith" | "strcontains" => {
            arity(name, args, 2)?;
            let (s, part) = (text(name, &args[0])?, text(name, &args[1])?);
            Ok(Value::Bool(match name {
                "startswith" => s.starts_with(&part),
                "endswith" => s.ends_with(&part),
                _ => s.contains(&part),
            }))
        }
        "join" => {
            arity(name, args, 2)?;
            let separator = text(name, &args[0])?;
            let parts = list(name, &args[1])?
                .iter()
                .map(|v| text(name, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::String(parts.join(&separator)))
        }
        "split" => {
            arity(name, args, 2)?;
            let (separator, s) = (text(name, &args[0])?, text(name, &args[1])?);
            Ok(Value::Array(
                s.split(separator.as_str())
                    .map(|p| Value::String(p.to_owned()))
                    .collect(),
            ))
        }
        "regex" => {
            arity(name, args, 2)?;
            regex_match(&text(name, &args[0])?, &text(name, &args[1])?)
        }
        "regexall" => {
            arity(name, args, 2)?;
            let pattern = compile(&text(name, &args[0])?)?;
            let s = text(name, &args[1])?;
            Ok(Value::Array(
                pattern
                    .captures_iter(&s)
                    .map(|c| captures(&pattern, &c))
                    .collect(),
            ))
        }
        "contains" => {
            arity(name, args, 2)?;
            Ok(Value::Bool(
                list(name, &args[0])?.iter().any(|v| equal(v, &args[1])),
            ))
        }
        "alltrue" | "anytrue" => {
            arity(name, args, 1)?;
            let values = list(name, &args[0])?
                .iter()
                .map(|v| as_bool(v, &format!("{name}() element")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Bool(if name == "alltrue" {
                values.iter().all(|b| *b)
            } else {
                values.iter().any(|b| *b)
            }))
        }
        "keys" | "values" => {
            arity(name, args, 1)?;
            match &args[0] {
                Value::Object(map) => Ok(Value::Array(if name == "keys" {
                    map.keys().map(|k| Value::String(k.clone())).collect()
                } else {
                    map.values().cloned().collect()
                })),
                _ => Err(invalid(format!(
                    "Invalid function argument: {name}() needs a map"
                ))),
            }
        }
        "lookup" => {
            if !(2..=3).contains(&args.len()) {
                return Err(invalid("lookup() takes a map, a key and a default"));
            }
            let key = text(name, &args[1])?;
            match (&args[0], args.get(2)) {
                (Value::Object(map), default) => map
                    .get(&key)
                    .cloned()
                    .or_else(|| default.cloned())
                    .ok_or_else(|| invalid(format!("lookup(): the key \"{key}\" does not exist"))),
                _ => Err(invalid("Invalid function argument: lookup() needs a map")),
            }
        }
        "coalesce" => args
            .iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .ok_or_else(|| invalid("Invalid function arguments: no non-null, non-empty argument")),
        "concat" => Ok(Value::Array(
            args.iter()
                .map(|a| list(name, a).cloned())
                .collect::<Result<Vec<_>, _>>()?
                .concat(),
        )),
        "one" => {
            arity(name, args, 1)?;
            let items = list(name, &args[0])?;
            match items.len() {
                0 => Ok(Value::Null),
                1 => Ok(items[0].clone()),
                n => Err(invalid(format!(
                    "Invalid function argument: one() needs at most one element, not {n}"
                ))),
            }
        }
        "merge" => {
            let mut map = serde_json::Map::new();
            for arg in args {
                match arg {
                    Value::Object(m) => map.extend(m.clone()),
                    Value::Null => {}
                    _ => return Err(invalid("Invalid function argument: merge() takes maps")),
                }
            }
            Ok(Value::Object(map))
        }
        "cidrhost" => {
            arity(name, args, 2)?;
            cidr_host(&text(name, &args[0])?, num(1)?)
        }
        _ => Err(Failure::Unknown(format!(
            "{name}() (a function the rehearsal does not evaluate)"
        ))),
    }
}

fn compile(pattern: &str) -> Result<regex::Regex, Failure> {
    regex::Regex::new(pattern).map_err(|e| {
        invalid(format!(
            "Invalid function argument: invalid regular expression: {e}"
        ))
    })
}

fn captures(pattern: &regex::Regex, c: &regex::Captures) -> Value {
    let named: Vec<&str> = pattern.capture_names().flatten().collect();
    let text =
        |m: Option<regex::Match>| m.map_or(Value::Null, |m| Value::String(m.as_str().to_owned()));
    if pattern.captures_len() == 1 {
        text(c.get(0))
    } else if !named.is_empty() {
        Value::Object(
            named
                .iter()
                .map(|n| ((*n).to_owned(), text(c.name(n))))
                .collect(),
        )
    } else {
        Value::Array(
            (1..pattern.captures_len())
                .map(|i| text(c.get(i)))
                .collect(),
        )
    }
}

/// `regex()`: the first match (or its groups); an error when nothing matches.
fn regex_match(pattern: &str, s: &str) -> Eval {
    let compiled = compile(pattern)?;
    compiled
        .captures(s)
        .map(|c| captures(&compiled, &c))
        .ok_or_else(|| {
            invalid("Invalid function argument: pattern did not match any part of the given string")
        })
}

/// `cidrhost(prefix, hostnum)`: the address of host `hostnum` in the network.
fn cidr_host(prefix: &str, host: f64) -> Eval {
    let bad = || {
        invalid(format!(
            "Invalid function argument: invalid CIDR address \"{prefix}\""
        ))
    };
    let (address, bits) = prefix.split_once('/').ok_or_else(bad)?;
    let address: IpAddr = address.parse().map_err(|_| bad())?;
    let bits: u32 = bits.parse().map_err(|_| bad())?;
    if host.fract() != 0.0 {
        return Err(invalid(
            "Invalid function argument: hostnum must be a whole number",
        ));
    }
    let total = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    if bits > total {
        return Err(bad());
    }
    let host_bits = total - bits;
    let size = if host_bits >= 127 {
        u128::MAX
    } else {
        1u128 << host_bits
    };
    let offset = if host < 0.0 { size as f64 + host } else { host };
    if offset < 0.0 || offset >= size as f64 {
        return Err(invalid(format!(
            "Invalid function argument: prefix {prefix} has no host number {}",
            format_number(host)
        )));
    }
    let offset = offset as u128;
    let host_mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let address = match address {
        IpAddr::V4(a) => {
            let network = u128::from(u32::from(a)) & !host_mask;
            IpAddr::V4(Ipv4Addr::from((network | offset) as u32))
        }
        IpAddr::V6(a) => {
            let network = u128::from(a) & !host_mask;
            IpAddr::V6(Ipv6Addr::from(network | offset))
        }
    };
    Ok(Value::String(address.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn functions_answer_as_terraform_documents() {
        // (function, arguments, expected; None: an error)
        let cases: Vec<(&str, Vec<Value>, Option<Value>)> = vec![
            ("floor", vec![json!(2.7)], Some(json!(2.0))),
            ("max", vec![json!(-1.0), json!(0.0)], Some(json!(0.0))),
            ("length", vec![json!("abc")], Some(json!(3.0))),
            ("length", vec![Value::Null], None),
            (
                "regex",
                vec![json!("^t[12]\\."), json!("t2.micro")],
                Some(json!("t2.")),
            ),
            ("regex", vec![json!("^t[12]\\."), json!("t3.micro")], None),
            (
                "cidrhost",
                vec![json!("10.42.0.0/16"), json!(0.0)],
                Some(json!("10.42.0.0")),
            ),
            (
                "cidrhost",
                vec![json!("10.42.0.0/16"), json!(5.0)],
                Some(json!("10.42.0.5")),
            ),
            ("cidrhost", vec![json!("10.42.0.0/33"), json!(0.0)], None),
            ("cidrhost", vec![json!("not-a-cidr"), json!(0.0)], None),
            (
                "cidrhost",
                vec![json!("2001:db8::/32"), json!(1.0)],
                Some(json!("2001:db8::1")),
            ),
            (
                "contains",
                vec![json!(["step", "target_tracking"]), json!("step")],
                Some(json!(true)),
            ),
            ("alltrue", vec![json!([true, false])], Some(json!(false))),
            (
                "startswith",
                vec![
                    json!("ELBSecurityPolicy-TLS13"),
                    json!("ELBSecurityPolicy-"),
                ],
                Some(json!(true)),
            ),
            (
                "strcontains",
                vec![json!("::/0"), json!(":")],
                Some(json!(true)),
            ),
            ("coalesce", vec![Value::Null, json!(8.0)], Some(json!(8.0))),
            (
                "join",
                vec![json!(", "), json!(["x86_64", "arm64"])],
                Some(json!("x86_64, arm64")),
            ),
            ("one", vec![json!([])], Some(Value::Null)),
        ];
        for (name, args, want) in cases {
            let got = call(name, &args);
            match (&got, &want) {
                (Ok(g), Some(w)) => assert!(equal(g, w), "{name}{args:?} = {g}, want {w}"),
                (Err(Failure::Invalid(_)), None) => {}
                _ => panic!("{name}{args:?} = {got:?}, want {want:?}"),
            }
        }
        assert!(matches!(
            call("templatefile", &[]),
            Err(Failure::Unknown(_))
        ));
    }
}
