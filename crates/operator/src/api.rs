//! Routes are declared once, through [`Api`], which both mounts the handler and
//! records the endpoint for the OpenAPI document: the two cannot drift apart. Each
//! declaration names the wire types (`zeitwork_api_types`) of its query, body and
//! answers, from whose JSON Schemas the document is generated; the schema-driven fuzzer
//! in CI checks that the handlers answer what the declarations say.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use http::{Method, StatusCode};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::state::AppState;

/// Produces a type's schema (a `$ref` into the document's components).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (or a caller that proves itself otherwise: a signed webhook, a grant).
    Public,
    /// A bearer token, a node credential or a dashboard session.
    Authenticated,
}

/// What an answer's body is.
#[derive(Debug, Clone, Copy)]
pub enum Content {
    Json(SchemaFn),
    /// `text/event-stream`, each event's data the given type as JSON.
    EventStream(SchemaFn),
    /// Prometheus' text exposition format.
    PrometheusText,
    /// No body (204, 101).
    Empty,
}

/// One documented answer.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: StatusCode,
    pub description: &'static str,
    pub content: Content,
}

/// One documented route.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: Option<SchemaFn>,
    pub body: Option<SchemaFn>,
    pub answers: Vec<Answer>,
}

impl Endpoint {
    /// Whether a credential is needed.
    pub fn authenticated(&self) -> bool {
        self.access == Access::Authenticated
    }
}

#[derive(Default)]
pub struct Api {
    router: Router<AppState>,
    endpoints: Vec<Endpoint>,
}

impl Api {
    /// Mounts `handler` and records the endpoint; the methods after it in the chain
    /// describe its query, body and answers.
    fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        summary: &'static str,
        access: Access,
        handler: H,
    ) -> Api
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("standard method");
        self.router = self.router.route(path, on(filter, handler));
        self.endpoints.push(Endpoint {
            method,
            path,
            summary,
            access,
            query: None,
            body: None,
            answers: Vec::new(),
        });
        self
    }

    pub fn public<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::GET, path, summary, Access::Public, h)
    }

    /// A POST that proves itself otherwise than with a bearer token (a signed webhook,
    /// or a sign-in with the token in its body).
    pub fn public_post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::POST, path, summary, Access::Public, h)
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::GET, path, summary, Access::Authenticated, h)
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::DELETE, path, summary, Access::Authenticated, h)
            .no_content()
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::POST, path, summary, Access::Authenticated, h)
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::PUT, path, summary, Access::Authenticated, h)
    }

    fn last(&mut self) -> &mut Endpoint {
        self.endpoints.last_mut().expect("a route was added")
    }

    fn answer(mut self, status: StatusCode, description: &'static str, content: Content) -> Api {
        self.last().answers.push(Answer {
            status,
            description,
            content,
        });
        self
    }

    /// The query parameters: the fields of `Q`.
    pub fn query<Q: JsonSchema>(mut self) -> Api {
        self.last().query = Some(schema_of::<Q>);
        self
    }

    /// The JSON request body.
    pub fn body<B: JsonSchema>(mut self) -> Api {
        self.last().body = Some(schema_of::<B>);
        self
    }

    /// 200 with a JSON `R`.
    pub fn ok<R: JsonSchema>(self) -> Api {
        self.answer(StatusCode::OK, "OK", Content::Json(schema_of::<R>))
    }

    /// 201 with a JSON `R` (a create call: repeated with the same `Idempotency-Key`,
    /// the first answer again).
    pub fn created<R: JsonSchema>(self) -> Api {
        self.answer(
            StatusCode::CREATED,
            "Created",
            Content::Json(schema_of::<R>),
        )
    }

    /// 202 with a JSON `R`: taken, nothing done (the body says why).
    pub fn accepted<R: JsonSchema>(self) -> Api {
        self.answer(
            StatusCode::ACCEPTED,
            "Accepted, ignored",
            Content::Json(schema_of::<R>),
        )
    }

    /// 204.
    pub fn no_content(self) -> Api {
        self.answer(StatusCode::NO_CONTENT, "Done", Content::Empty)
    }

    /// 200 with Server-Sent Events whose data are JSON `E`s.
    pub fn event_stream<E: JsonSchema>(self) -> Api {
        self.answer(
            StatusCode::OK,
            "Server-Sent Events",
            Content::EventStream(schema_of::<E>),
        )
    }

    /// 200 in Prometheus' text format.
    pub fn prometheus(self) -> Api {
        self.answer(StatusCode::OK, "Metrics", Content::PrometheusText)
    }

    /// 101: the connection is taken over by another protocol.
    pub fn upgrade(self) -> Api {
        self.answer(
            StatusCode::SWITCHING_PROTOCOLS,
            "Switching protocols",
            Content::Empty,
        )
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Endpoint>) {
        (self.router, self.endpoints)
    }
}
