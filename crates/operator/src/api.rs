//! Routes are declared once, through [`Api`], which both mounts the handler and
//! records the endpoint for the OpenAPI document: the two cannot drift apart.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use http::Method;

use crate::state::AppState;

/// JSON type of a request field, as OpenAPI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    StringArray,
    ObjectArray,
}

/// One field of a request body.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

pub const fn req(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

pub const fn opt(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

/// One documented route.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    /// Whether a bearer token is required.
    pub authenticated: bool,
    pub body: &'static [Field],
}

#[derive(Default)]
pub struct Api {
    router: Router<AppState>,
    endpoints: Vec<Endpoint>,
}

impl Api {
    /// Mounts `handler` and records the endpoint; the public methods below only name
    /// the method, whether a token is needed, and the body fields.
    fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        summary: &'static str,
        authenticated: bool,
        body: &'static [Field],
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
            authenticated,
            body,
        });
        self
    }

    pub fn public<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::GET, path, summary, false, &[], h)
    }

    /// A POST that proves itself otherwise than with a bearer token (a signed webhook).
    pub fn public_post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::POST, path, summary, false, &[], h)
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::GET, path, summary, true, &[], h)
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        h: H,
    ) -> Api {
        self.add(Method::DELETE, path, summary, true, &[], h)
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        body: &'static [Field],
        h: H,
    ) -> Api {
        self.add(Method::POST, path, summary, true, body, h)
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        summary: &'static str,
        body: &'static [Field],
        h: H,
    ) -> Api {
        self.add(Method::PUT, path, summary, true, body, h)
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<Endpoint>) {
        (self.router, self.endpoints)
    }
}
