//! A small, independent JSON Schema (draft 2020-12) validator for the tests: it reads the
//! published schema as plain JSON and checks documents against it without phiprobe's types.
//! Supported keywords: type, properties, required, additionalProperties, items, prefixItems,
//! minItems, maxItems, enum, const, $ref (local), $defs, anyOf, oneOf, allOf, minimum, maximum,
//! format (uint/int formats checked, others ignored).

use serde_json::Value;

/// Every violation, as `<json pointer>: <what>`.
pub fn validate(schema: &Value, doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, doc, "", &mut errors);
    errors
}

fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let path = r.strip_prefix("#")?;
    root.pointer(path)
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0),
        _ => false,
    }
}

fn check(root: &Value, s: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let here = if at.is_empty() { "/" } else { at };
    match s {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{here}: not allowed here"));
            return;
        }
        Value::Object(_) => {}
        _ => {
            errors.push(format!("{here}: schema is not an object"));
            return;
        }
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match resolve(root, r) {
            Some(target) => check(root, target, v, at, errors),
            None => errors.push(format!("{here}: unresolvable $ref {r}")),
        }
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)),
            _ => true,
        };
        if !ok {
            errors.push(format!("{here}: expected type {t}, found {v}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errors.push(format!("{here}: {v} is not one of {e:?}"));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errors.push(format!("{here}: {v} is not {c}"));
    }
    if let Some(x) = v.as_f64() {
        if let Some(m) = s.get("minimum").and_then(Value::as_f64)
            && x < m
        {
            errors.push(format!("{here}: {x} < minimum {m}"));
        }
        if let Some(m) = s.get("maximum").and_then(Value::as_f64)
            && x > m
        {
            errors.push(format!("{here}: {x} > maximum {m}"));
        }
        if let Some(fmt) = s.get("format").and_then(Value::as_str)
            && fmt.starts_with("uint")
            && (x < 0.0 || x.fract() != 0.0)
        {
            errors.push(format!("{here}: {x} is not a {fmt}"));
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        let Some(subs) = s.get(key).and_then(Value::as_array) else {
            continue;
        };
        let passing = subs
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                check(root, sub, v, at, &mut e);
                e.is_empty()
            })
            .count();
        let ok = match key {
            "allOf" => passing == subs.len(),
            "anyOf" => passing >= 1,
            _ => passing == 1,
        };
        if !ok {
            // Report the nested errors of the closest alternative for a useful message.
            let mut best: Option<Vec<String>> = None;
            for sub in subs {
                let mut e = Vec::new();
                check(root, sub, v, at, &mut e);
                if !e.is_empty() && best.as_ref().is_none_or(|b| e.len() < b.len()) {
                    best = Some(e);
                }
            }
            errors.push(format!(
                "{here}: {key} not satisfied ({passing} of {} match)",
                subs.len()
            ));
            errors.extend(best.unwrap_or_default());
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{here}: missing required property '{r}'"));
                }
            }
        }
        for (k, val) in obj {
            let child = format!("{at}/{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(root, ps, val, &child, errors),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{here}: property '{k}' is not allowed"))
                    }
                    Some(extra) => check(root, extra, val, &child, errors),
                    None => {}
                },
            }
        }
    }
    if let Some(arr) = v.as_array() {
        let prefix = s.get("prefixItems").and_then(Value::as_array);
        if let Some(p) = prefix {
            for (i, (ps, val)) in p.iter().zip(arr).enumerate() {
                check(root, ps, val, &format!("{at}/{i}"), errors);
            }
        }
        let skip = prefix.map_or(0, Vec::len);
        if let Some(items) = s.get("items") {
            for (i, val) in arr.iter().enumerate().skip(skip) {
                check(root, items, val, &format!("{at}/{i}"), errors);
            }
        }
        if let Some(m) = s.get("minItems").and_then(Value::as_u64)
            && (arr.len() as u64) < m
        {
            errors.push(format!("{here}: fewer than {m} items"));
        }
        if let Some(m) = s.get("maxItems").and_then(Value::as_u64)
            && (arr.len() as u64) > m
        {
            errors.push(format!("{here}: more than {m} items"));
        }
    }
}

#[test]
fn the_validator_checks_what_it_claims() {
    let schema = serde_json::json!({
        "type": "object",
        "required": ["a", "b"],
        "properties": {
            "a": {"type": "integer", "format": "uint64", "minimum": 0},
            "b": {"$ref": "#/$defs/B"},
            "c": {"type": ["string", "null"]},
            "t": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "string"}], "minItems": 2, "maxItems": 2}
        },
        "additionalProperties": false,
        "$defs": {"B": {"oneOf": [{"const": "x"}, {"enum": ["y", "z"]}]}}
    });
    assert!(
        validate(
            &schema,
            &serde_json::json!({"a": 1, "b": "y", "c": null, "t": [1, "s"]})
        )
        .is_empty()
    );
    let e = validate(
        &schema,
        &serde_json::json!({"a": -1.5, "b": "q", "d": 1, "t": ["s", 1]}),
    );
    for needle in [
        "/a: expected type",
        "/b: oneOf",
        "'d' is not allowed",
        "/t/0",
        "/t/1",
    ] {
        assert!(e.iter().any(|x| x.contains(needle)), "{needle}: {e:#?}");
    }
    assert!(
        validate(&schema, &serde_json::json!({"a": 1}))
            .iter()
            .any(|x| x.contains("'b'"))
    );
}
