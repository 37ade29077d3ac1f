//! The configuration reference in the README, generated from the config types: every key,
//! its type, default, environment variable and description (the doc comment). The types
//! describe themselves through `schemars`; this walks that JSON Schema into one table.

use serde_json::Value;

use super::Config;

/// Markdown lines that delimit the generated table in the README.
pub const START_MARKER: &str =
    "<!-- config-reference:start (generated: m365-gateway config-reference) -->";
pub const END_MARKER: &str = "<!-- config-reference:end -->";

/// The table, between its markers.
pub fn markdown() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    let mut rows = Vec::new();
    walk(&schema, &schema, "", &mut rows, None);
    let mut out = String::new();
    out.push_str(START_MARKER);
    out.push_str(
        "\n\n| key | type | default | environment | description |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | `{}` | {} |\n",
            row.key, row.ty, row.default, row.env, row.description
        ));
    }
    out.push('\n');
    out.push_str(END_MARKER);
    out
}

struct Row {
    key: String,
    ty: String,
    default: String,
    env: String,
    description: String,
}

/// `$ref` to `$defs`, `allOf: [one]` and `Option<T>` (`anyOf: [T, null]`) unwrapped.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        if let Some(target) = root.pointer(&format!("/$defs/{name}")) {
            return resolve(root, target);
        }
    }
    for key in ["allOf", "anyOf"] {
        if let Some(Value::Array(items)) = schema.get(key) {
            let non_null: Vec<&Value> = items
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 && schema.get("properties").is_none() {
                return resolve(root, non_null[0]);
            }
        }
    }
    schema
}

fn is_struct(schema: &Value) -> bool {
    schema.get("properties").is_some()
}

fn walk(root: &Value, schema: &Value, prefix: &str, rows: &mut Vec<Row>, variant: Option<&str>) {
    let schema = resolve(root, schema);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (name, property) in properties {
            let key = format!("{prefix}{name}");
            let target = resolve(root, property);
            if is_struct(target) {
                walk(root, target, &format!("{key}."), rows, None);
                continue;
            }
            // A map of sections (`issuers.<name>`, `callers.<name>`).
            if let Some(values) = target.get("additionalProperties").filter(|v| v.is_object()) {
                let values = resolve(root, values);
                if is_struct(values) || values.get("oneOf").is_some() {
                    walk(root, values, &format!("{key}.<name>."), rows, None);
                    continue;
                }
            }
            if is_const(property) {
                continue;
            }
            rows.push(Row {
                env: env_name(&key),
                ty: type_of(root, property),
                default: match property.get("default") {
                    Some(value) => format!("`{}`", show(value)),
                    None if required.contains(&name.as_str()) => "required".to_owned(),
                    None => "—".to_owned(),
                },
                description: describe(property, target, variant),
                key,
            });
        }
    }
    // A flattened tagged enum (`[issuers.<name>] kind = "jwks"`): each variant's keys.
    if let Some(Value::Array(variants)) = schema.get("oneOf") {
        for variant in variants {
            let variant = resolve(root, variant);
            let tag = variant
                .get("properties")
                .and_then(Value::as_object)
                .and_then(|p| p.iter().find(|(_, v)| is_const(v)))
                .map(|(k, v)| format!("{k} = \"{}\"", show_plain(&v["const"])));
            if let Some(tag) = &tag {
                let name = tag.split(' ').next().unwrap_or_default();
                let key = format!("{prefix}{name}");
                if !rows.iter().any(|r| r.key == key) {
                    rows.push(Row {
                        env: env_name(&key),
                        ty: variant_tags(root, variants),
                        default: "required".to_owned(),
                        description: "Which kind of key; the keys below apply to their kind."
                            .to_owned(),
                        key,
                    });
                }
            }
            walk(root, variant, prefix, rows, tag.as_deref());
        }
    }
}

fn is_const(schema: &Value) -> bool {
    schema.get("const").is_some()
}

fn variant_tags(root: &Value, variants: &[Value]) -> String {
    variants
        .iter()
        .filter_map(|v| {
            resolve(root, v)
                .get("properties")?
                .as_object()?
                .values()
                .find(|p| is_const(p))
                .map(|p| format!("`\"{}\"`", show_plain(&p["const"])))
        })
        .collect::<Vec<_>>()
        .join(" \\| ")
}

fn describe(property: &Value, target: &Value, variant: Option<&str>) -> String {
    let text = property
        .get("description")
        .or_else(|| target.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.replace('|', "\\|");
    match variant {
        Some(tag) => format!("(with `{tag}`) {text}"),
        None => text,
    }
}

fn type_of(root: &Value, property: &Value) -> String {
    let target = resolve(root, property);
    if let Some(Value::Array(values)) = target.get("enum") {
        return values
            .iter()
            .map(|v| format!("`{}`", show(v)))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(Value::Array(variants)) = target.get("oneOf")
        && variants
            .iter()
            .all(|v| resolve(root, v).get("const").is_some())
    {
        return variants
            .iter()
            .map(|v| format!("`{}`", show(&resolve(root, v)["const"])))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    let optional = property
        .get("anyOf")
        .and_then(Value::as_array)
        .is_some_and(|items| items.iter().any(|i| i["type"] == "null"));
    let base = match target.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let items = target
                .get("items")
                .map(|i| type_of(root, i))
                .unwrap_or_default();
            format!("list of {items}")
        }
        Some(Value::String(t)) if t == "object" => "table".to_owned(),
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) if types.iter().any(|t| t == "array") => {
            let items = target
                .get("items")
                .map(|i| type_of(root, i))
                .unwrap_or_default();
            format!("list of {items}")
        }
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "value".to_owned(),
    };
    let base = match target.get("format").and_then(Value::as_str) {
        Some("duration") => "duration (`30s`, `5m`)".to_owned(),
        _ => base,
    };
    if optional
        || target
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t == "null"))
    {
        format!("{base}, optional")
    } else {
        base
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn show_plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The environment variable of a key: `M365GW_` + the path, `__` between levels.
fn env_name(key: &str) -> String {
    format!("M365GW_{}", key.replace('.', "__").to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_default_configuration_is_in_the_reference() {
        let reference = markdown();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut keys = Vec::new();
        fn collect(prefix: &str, value: &Value, keys: &mut Vec<String>) {
            if let Value::Object(map) = value {
                for (k, v) in map {
                    match v {
                        Value::Object(inner) if !inner.is_empty() => {
                            collect(&format!("{prefix}{k}."), v, keys)
                        }
                        _ => keys.push(format!("{prefix}{k}")),
                    }
                }
            }
        }
        collect("", &defaults, &mut keys);
        for key in keys {
            // An empty map (`callers`) or an unset section (`graph.certificate`) is
            // documented by the keys inside it (`callers.<name>.…`).
            let exact = reference.contains(&format!("| `{key}` |"));
            let entries = reference.contains(&format!("| `{key}."));
            assert!(exact || entries, "{key} is missing");
        }
        assert!(reference.contains("`M365GW_GRAPH__RETRY__MAX_RETRIES`"));
        assert!(
            reference.contains("| `issuers.<name>.jwks_url` |"),
            "{reference}"
        );
    }
}
