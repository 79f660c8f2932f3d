//! HTTP request figures: a middleware that times every request and counts it under its route
//! pattern (`/session/{session_name}`, not the path, so the label set stays bounded) and status.
//!
//! Each (pattern, status) series is an atomic histogram shared by all threads; a thread finds it
//! through its own cache, so only a thread's first request of a new series takes the registry's
//! lock. The latency is the time to the response head (a stream's body is not waited for).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures::future::LocalBoxFuture;

use super::REQUEST_BUCKETS;
use super::histogram::{Histogram, HistogramSnapshot};

/// The pattern label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

type Series = Arc<Histogram<12>>;

fn registry() -> &'static Mutex<BTreeMap<(String, u16), Series>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<(String, u16), Series>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

thread_local! {
    static CACHE: RefCell<HashMap<String, HashMap<u16, Series>>> = RefCell::new(HashMap::new());
}

fn shared_series(pattern: &str, status: u16) -> Series {
    let mut registry = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry
        .entry((pattern.to_owned(), status))
        .or_insert_with(|| Arc::new(Histogram::new(REQUEST_BUCKETS)))
        .clone()
}

/// Counts one request of `pattern` answered with `status` after `elapsed`.
pub fn record(pattern: &str, status: u16, elapsed: Duration) {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(series) = cache
            .get(pattern)
            .and_then(|by_status| by_status.get(&status))
        {
            series.observe(elapsed);
            return;
        }
        let series = shared_series(pattern, status);
        series.observe(elapsed);
        cache
            .entry(pattern.to_owned())
            .or_default()
            .insert(status, series);
    });
}

/// Every series so far: (pattern, status, histogram), sorted.
pub fn snapshot() -> Vec<(String, u16, HistogramSnapshot)> {
    let registry = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry
        .iter()
        .map(|((pattern, status), series)| (pattern.clone(), *status, series.snapshot()))
        .collect()
}

/// The middleware; wrap it outermost so that refusals by inner layers count too.
#[derive(Clone, Copy, Default)]
pub struct RequestMetrics;

impl<S, B> Transform<S, ServiceRequest> for RequestMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestMetricsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestMetricsService { service }))
    }
}

pub struct RequestMetricsService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestMetricsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let reply = self.service.call(request);
        Box::pin(async move {
            let reply = reply.await;
            match &reply {
                Ok(response) => {
                    let pattern = response.request().match_pattern();
                    record(
                        pattern.as_deref().unwrap_or(UNMATCHED),
                        response.status().as_u16(),
                        started.elapsed(),
                    );
                }
                Err(error) => record(
                    UNMATCHED,
                    error.as_response_error().status_code().as_u16(),
                    started.elapsed(),
                ),
            }
            reply
        })
    }
}
