//! The OpenAPI 3.1 document, generated from the same list that mounts the routes and
//! from the JSON Schemas of the wire types it names (`zeitwork_api_types`).

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use zeitwork_api_types::{ErrorBody, HOSTNAME_PATTERN, NAME_PATTERN};

use crate::api::{Content, Endpoint, SchemaFn};

/// The header a dashboard session sends its CSRF token in.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let error = generator.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for e in endpoints {
        let entry = paths.entry(e.path).or_insert_with(|| json!({}));
        entry[e.method.as_str().to_ascii_lowercase()] = operation(e, &mut generator, &error);
    }
    let schemas: Map<String, Value> = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Zeitwork API",
            "version": "1",
            "description": "Lists are pages: `?limit=` (1–500, default 100) rows after `?after=` (the previous page's `next`); `next` is null on the last page. Errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "session": {
                    "type": "apiKey", "in": "cookie", "name": crate::session::COOKIE,
                    "description": "A dashboard session (`POST /api/v1/session`); requests that change something also send its `csrf` in the X-CSRF-Token header."
                }
            },
            "schemas": schemas
        }
    })
}

/// What a path parameter takes: the rule its handler parses it by. A value outside it
/// names nothing that exists (404) or is refused (422).
fn path_parameter(path: &str, name: &str) -> Value {
    let label =
        json!({ "type": "string", "minLength": 1, "maxLength": 27, "pattern": NAME_PATTERN });
    match name {
        "org" | "app" | "env" => label,
        "name" if path.contains("/secrets/") => {
            json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" })
        }
        "name" => label,
        "hostname" => {
            json!({ "type": "string", "minLength": 3, "maxLength": 254, "pattern": HOSTNAME_PATTERN })
        }
        "number" => json!({ "type": "string", "pattern": "^v?[0-9]{1,9}$" }),
        _ => json!({ "type": "string", "format": "uuid" }),
    }
}

fn run(f: SchemaFn, generator: &mut SchemaGenerator) -> Value {
    f(generator).to_value()
}

fn operation(e: &Endpoint, generator: &mut SchemaGenerator, error: &Schema) -> Value {
    let mut parameters: Vec<Value> = e
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": path_parameter(e.path, name) }))
        .collect();
    if let Some(query) = e.query {
        parameters.extend(query_parameters(run(query, generator), generator));
    }
    let mut responses = Map::new();
    for a in &e.answers {
        let mut answer = json!({ "description": a.description });
        let content = match a.content {
            Content::Json(f) => {
                Some(json!({ "application/json": { "schema": run(f, generator) } }))
            }
            Content::EventStream(f) => Some(json!({ "text/event-stream": {
                "schema": { "type": "string" },
                "x-event-data": run(f, generator)
            } })),
            Content::PrometheusText => {
                Some(json!({ "text/plain": { "schema": { "type": "string" } } }))
            }
            Content::Empty => None,
        };
        if let Some(content) = content {
            answer["content"] = content;
        }
        responses.insert(a.status.as_u16().to_string(), answer);
    }
    let problem = json!({ "application/json": { "schema": error } });
    responses.insert(
        "4XX".into(),
        json!({ "description": "The request was refused; `error.field` names the part at fault", "content": problem }),
    );
    responses.insert(
        "5XX".into(),
        json!({ "description": "The platform could not answer (its database unreachable)", "content": problem }),
    );
    let mut op = json!({
        "summary": e.summary,
        "operationId": operation_id(e),
        "parameters": parameters,
        "responses": responses,
    });
    if e.authenticated() {
        op["security"] = json!([{ "bearer": [] }, { "session": [] }]);
    }
    if let Some(body) = e.body {
        let schema = run(body, generator);
        // A body whose fields are all optional may be left out: it reads as `{}`.
        let required = resolve(&schema, generator)["required"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        op["requestBody"] = json!({
            "required": required,
            "content": { "application/json": { "schema": schema } }
        });
    }
    op
}

/// A query type's fields as query parameters (each optional unless the type requires it).
fn query_parameters(reference: Value, generator: &mut SchemaGenerator) -> Vec<Value> {
    let schema = resolve(&reference, generator);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, schema)| {
                    let mut schema = without_null(schema.clone());
                    let description = schema.as_object_mut().and_then(|s| s.remove("description"));
                    let mut p = json!({
                        "name": name, "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": schema,
                    });
                    if let Some(d) = description {
                        p["description"] = d;
                    }
                    p
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A query parameter is absent or has a value: an `Option`'s `null` does not apply.
fn without_null(mut schema: Value) -> Value {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            schema["type"] = only.clone();
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = any.iter().filter(|s| s["type"] != "null").collect();
        if let [only] = rest.as_slice() {
            return (*only).clone();
        }
    }
    schema
}

/// The schema a `$ref` points at (or the schema itself).
fn resolve(schema: &Value, generator: &SchemaGenerator) -> Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            generator
                .definitions()
                .get(name)
                .cloned()
                .unwrap_or(Value::Null)
        }
        None => schema.clone(),
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
