//! The OpenAPI 3 document, generated from the same list that mounts the routes.

use serde_json::{Map, Value, json};

use crate::api::{Endpoint, Kind};

pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    for e in endpoints {
        let entry = paths.entry(e.path).or_insert_with(|| json!({}));
        entry[e.method.as_str().to_ascii_lowercase()] = operation(e);
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Zeitwork API", "version": "1" },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": error_schema() }
        }
    })
}

fn operation(e: &Endpoint) -> Value {
    let params: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let mut op = json!({
        "summary": e.summary,
        "operationId": operation_id(e),
        "parameters": params,
        "responses": {
            "2XX": { "description": "Success", "content": { "application/json": { "schema": { "type": "object" } } } },
            "4XX": { "description": "Client error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
        }
    });
    if e.authenticated {
        op["security"] = json!([{ "bearer": [] }]);
    }
    if !e.body.is_empty() {
        let mut props = Map::new();
        for f in e.body {
            props.insert(f.name.into(), kind_schema(f.kind));
        }
        let required: Vec<&str> = e
            .body
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name)
            .collect();
        let mut schema =
            json!({ "type": "object", "additionalProperties": false, "properties": props });
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
        op["requestBody"] = json!({ "required": !required.is_empty(), "content": { "application/json": { "schema": schema } } });
    }
    op
}

fn kind_schema(kind: Kind) -> Value {
    match kind {
        Kind::String => json!({ "type": "string" }),
        Kind::Integer => json!({ "type": "integer" }),
        Kind::Number => json!({ "type": "number" }),
        Kind::Boolean => json!({ "type": "boolean" }),
        Kind::StringArray => json!({ "type": "array", "items": { "type": "string" } }),
        Kind::ObjectArray => json!({ "type": "array", "items": { "type": "object" } }),
    }
}

fn operation_id(e: &Endpoint) -> String {
    let mut id = e.method.as_str().to_ascii_lowercase();
    for seg in e
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
    {
        let seg = seg.trim_start_matches('{').trim_end_matches('}');
        id.push('_');
        id.push_str(&seg.replace(['-', '.'], "_"));
    }
    id
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": { "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string" },
                "message": { "type": "string" },
                "field": { "type": "string" }
            }
        }}
    })
}
