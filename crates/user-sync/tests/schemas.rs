//! The JSON Schemas in `schemas/` describe exactly what the Rust types write
//! and read: samples validate against them, and every field the types write
//! is a documented property.

use serde_json::{Value, json};
use tessera_event_bus::{Envelope, Event, JsonCodec};
use tessera_user_sync::{
    events::{SCHEMA_BASE, UserDeleted, UserProfileUpdated, UserRegistered},
    snapshot::{SnapshotPage, SnapshotUser},
};
use time::macros::datetime;

fn schema(name: &str) -> Value {
    let path = format!("{}/schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect("schema is JSON")
}

/// Validates `value` against the subset of JSON Schema 2020-12 the schemas
/// use: type, properties, required, items, minLength, minimum, maximum,
/// format date-time. Returns the violations.
fn violations(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type in schema"),
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "null" => value.is_null(),
            other => panic!("unhandled type {other}"),
        });
        if !ok {
            out.push(format!("{path}: {value} is not {types:?}"));
            return out;
        }
    }
    if let (Some(min), Some(s)) = (schema.get("minLength"), value.as_str())
        && (s.chars().count() as u64) < min.as_u64().unwrap()
    {
        out.push(format!("{path}: shorter than {min}"));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum"), value.as_i64())
        && n < min.as_i64().unwrap()
    {
        out.push(format!("{path}: below {min}"));
    }
    if let (Some(max), Some(n)) = (schema.get("maximum"), value.as_u64())
        && n > max.as_u64().unwrap()
    {
        out.push(format!("{path}: above {max}"));
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && let Some(s) = value.as_str()
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_err()
    {
        out.push(format!("{path}: `{s}` is not rfc 3339"));
    }
    if let Some(obj) = value.as_object() {
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap();
            if !obj.contains_key(req) {
                out.push(format!("{path}: missing required `{req}`"));
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in obj {
                if let Some(s) = props.get(k) {
                    out.extend(violations(s, v, &format!("{path}.{k}")));
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            out.extend(violations(items, v, &format!("{path}[{i}]")));
        }
    }
    out
}

/// Every key the Rust type wrote is a documented property.
fn all_documented(schema: &Value, value: &Value) {
    let props = schema["properties"].as_object().unwrap();
    for key in value.as_object().unwrap().keys() {
        assert!(
            props.contains_key(key),
            "`{key}` is written but not in the schema"
        );
    }
}

fn full_registered() -> UserRegistered {
    UserRegistered::new("u1", 1, "Ada Lovelace")
        .username("ada")
        .email("ada@example.com")
        .avatar_url("https://example.com/ada.png")
        .occurred_at(datetime!(2026-11-28 12:00:00.123 +01:00))
}

#[test]
fn serialized_events_validate_against_their_schemas() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "user-registered.v1.json",
            serde_json::to_value(full_registered()).unwrap(),
        ),
        (
            "user-registered.v1.json",
            serde_json::to_value(UserRegistered::new("u1", 1, "Ada")).unwrap(),
        ),
        (
            "user-profile-updated.v1.json",
            serde_json::to_value(UserProfileUpdated::new("u1", 2, "Ada").email("a@b.c")).unwrap(),
        ),
        (
            "user-deleted.v1.json",
            serde_json::to_value(UserDeleted::new("u1", 3)).unwrap(),
        ),
    ];
    for (name, value) in cases {
        let schema = schema(name);
        assert_eq!(
            violations(&schema, &value, "$"),
            Vec::<String>::new(),
            "{name}: {value}"
        );
        all_documented(&schema, &value);
    }
}

#[test]
fn the_documented_shape_field_by_field() {
    let value = serde_json::to_value(full_registered()).unwrap();
    assert_eq!(
        value,
        json!({
            "user_id": "u1",
            "version": 1,
            "display_name": "Ada Lovelace",
            "username": "ada",
            "email": "ada@example.com",
            "avatar_url": "https://example.com/ada.png",
            "occurred_at": "2026-11-28T12:00:00.123+01:00",
        })
    );
    let deleted = UserDeleted::new("u1", 3).occurred_at(datetime!(2026-11-28 12:00 UTC));
    assert_eq!(
        serde_json::to_value(deleted).unwrap(),
        json!({"user_id": "u1", "version": 3, "occurred_at": "2026-11-28T12:00:00Z"})
    );
}

#[test]
fn schemas_name_the_wire_types_and_the_dataschema_attribute_points_at_them() {
    for (name, ty, dataschema) in [
        (
            "user-registered.v1.json",
            UserRegistered::TYPE,
            UserRegistered::DATASCHEMA,
        ),
        (
            "user-profile-updated.v1.json",
            UserProfileUpdated::TYPE,
            UserProfileUpdated::DATASCHEMA,
        ),
        (
            "user-deleted.v1.json",
            UserDeleted::TYPE,
            UserDeleted::DATASCHEMA,
        ),
    ] {
        let schema = schema(name);
        assert_eq!(schema["x-cloudevents-type"], ty);
        assert_eq!(schema["$id"], format!("{SCHEMA_BASE}{name}"));
        assert_eq!(dataschema, schema["$id"].as_str());
    }
    let env = Envelope::new("/user-service", UserDeleted::new("u9", 2));
    let raw = env.encode(&JsonCodec).unwrap();
    assert_eq!(raw.attributes.ty, "tessera.user.deleted.v1");
    assert_eq!(raw.subject(), Some("u9"));
    assert!(
        raw.attributes
            .dataschema
            .as_deref()
            .unwrap()
            .ends_with("user-deleted.v1.json")
    );
}

#[test]
fn hand_written_events_from_another_language_decode() {
    // What a Python or Go user service would publish, extra fields included.
    let samples = [
        (
            "user-registered.v1.json",
            json!({"user_id": "b7c1", "version": 1, "display_name": "Grace", "email": null,
                   "occurred_at": "2026-11-28T10:00:00Z", "tenant": "acme"}),
        ),
        (
            "user-profile-updated.v1.json",
            json!({"user_id": "b7c1", "version": 2, "display_name": "Grace Hopper",
                   "username": "grace", "occurred_at": "2026-11-28T10:05:00.5-05:00"}),
        ),
        (
            "user-deleted.v1.json",
            json!({"user_id": "b7c1", "version": 3, "occurred_at": "2026-11-28T11:00:00Z", "reason": "gdpr"}),
        ),
    ];
    for (name, sample) in &samples {
        assert!(
            violations(&schema(name), sample, "$").is_empty(),
            "{sample}"
        );
    }
    let r: UserRegistered = serde_json::from_value(samples[0].1.clone()).unwrap();
    assert_eq!(r.profile.email, None);
    let u: UserProfileUpdated = serde_json::from_value(samples[1].1.clone()).unwrap();
    assert_eq!(u.profile.username.as_deref(), Some("grace"));
    let d: UserDeleted = serde_json::from_value(samples[2].1.clone()).unwrap();
    assert_eq!(d.version, 3);
}

#[test]
fn samples_missing_required_fields_fail_the_schema_and_the_decoder() {
    let bad = [
        json!({"version": 1, "display_name": "A", "occurred_at": "2026-11-28T10:00:00Z"}),
        json!({"user_id": "u", "display_name": "A", "occurred_at": "2026-11-28T10:00:00Z"}),
        json!({"user_id": "u", "version": 1, "occurred_at": "2026-11-28T10:00:00Z"}),
        json!({"user_id": "u", "version": 1, "display_name": "A"}),
        json!({"user_id": "u", "version": 0, "display_name": "A", "occurred_at": "2026-11-28T10:00:00Z"}),
        json!({"user_id": "u", "version": 1, "display_name": "A", "occurred_at": "noon"}),
    ];
    let schema = schema("user-registered.v1.json");
    for sample in &bad {
        assert!(!violations(&schema, sample, "$").is_empty(), "{sample}");
        let decoded = serde_json::from_value::<UserRegistered>(sample.clone());
        // version 0 decodes (it is an integer) but the replica refuses it.
        assert!(
            decoded.is_err() || decoded.unwrap().validate().is_err(),
            "{sample}"
        );
    }
}

#[test]
fn snapshot_pages_validate_against_their_schema() {
    let mut user = SnapshotUser::new("u1", 3, "Ada");
    user.profile.email = Some("ada@example.com".to_owned());
    user.updated_at = Some(datetime!(2026-11-28 12:00 UTC));
    let page = SnapshotPage::new(
        vec![user, SnapshotUser::new("u2", 1, "Grace")],
        Some("u2".to_owned()),
    );
    let value = serde_json::to_value(&page).unwrap();
    let schema = schema("snapshot-page.v1.json");
    assert!(violations(&schema, &value, "$").is_empty(), "{value}");
    for user in value["users"].as_array().unwrap() {
        all_documented(&schema["properties"]["users"]["items"], user);
    }
    let last: SnapshotPage = serde_json::from_value(json!({"users": []})).unwrap();
    assert_eq!(last.next, None);
}
