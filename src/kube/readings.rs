//! Taking the live readings a RetrainPolicy's due checks need, from its Prometheus.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use std::collections::BTreeMap;

use crate::api::{Model, PrometheusSource, RetrainPolicy};
use crate::lifecycle::analysis::AnalysisQuery;
use crate::lifecycle::triggers::{DueChecks, Readings};
use crate::sources::prometheus::{Prometheus, ReadingError};

/// Runs the due queries; every failure becomes a reading with its reason.
pub async fn take(client: &Client, policy: &RetrainPolicy, due: &DueChecks) -> Readings {
    if due.is_empty() {
        return Readings::default();
    }
    let Some(source) = &policy.spec.prometheus else {
        return failed(due, "spec.prometheus is not set");
    };
    let prometheus = match connect(client, &policy.namespace().unwrap_or_default(), source).await {
        Ok(p) => p,
        Err(e) => return failed(due, &e),
    };
    let histogram = |q: &Option<String>| {
        let p = prometheus.clone();
        let q = q.clone();
        async move {
            match q {
                Some(q) => Some(p.histogram(&q).await.map_err(|e| e.to_string())),
                None => None,
            }
        }
    };
    Readings {
        drift: histogram(&due.drift).await,
        reference: histogram(&due.reference).await,
        performance: match &due.performance {
            Some(q) => Some(prometheus.number(q).await.map_err(|e| e.to_string())),
            None => None,
        },
        ..Default::default()
    }
}

/// Runs the due rollout analysis queries against the Model's analysis Prometheus; every failure
/// is an answer with its reason.
pub async fn take_analysis(
    client: &Client,
    model: &Model,
    queries: &[AnalysisQuery],
) -> BTreeMap<String, Result<f64, ReadingError>> {
    let Some(analysis) = &model.spec.serving.analysis else { return BTreeMap::new() };
    let address = analysis.prometheus.address.clone();
    let prometheus = match connect(client, &model.namespace().unwrap_or_default(), &analysis.prometheus).await {
        Ok(p) => p,
        Err(message) => {
            let e = ReadingError::Unreachable { address, message };
            return queries.iter().map(|q| (q.query.clone(), Err(e.clone()))).collect();
        }
    };
    let mut answers = BTreeMap::new();
    for q in queries {
        answers.insert(q.query.clone(), prometheus.number(&q.query).await);
    }
    answers
}

/// Every due check failed for the same reason.
fn failed(due: &DueChecks, reason: &str) -> Readings {
    Readings {
        drift: due.drift.as_ref().map(|_| Err(reason.to_string())),
        reference: due.reference.as_ref().map(|_| Err(reason.to_string())),
        performance: due.performance.as_ref().map(|_| Err(reason.to_string())),
        ..Default::default()
    }
}

/// A client for `source`, reading its bearer token from the Secret it names.
pub async fn connect(client: &Client, namespace: &str, source: &PrometheusSource) -> Result<Prometheus, String> {
    let token = match &source.bearer_token_secret {
        None => None,
        Some(selector) => {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let secret = secrets
                .get(&selector.name)
                .await
                .map_err(|e| format!("cannot read the bearer token Secret {}: {e}", selector.name))?;
            let bytes = secret
                .data
                .and_then(|d| d.get(&selector.key).cloned())
                .ok_or_else(|| format!("Secret {} has no key {:?}", selector.name, selector.key))?;
            Some(
                String::from_utf8(bytes.0)
                    .map_err(|_| format!("Secret {} key {:?} is not text", selector.name, selector.key))?
                    .trim()
                    .to_string(),
            )
        }
    };
    let timeout = source.timeout.map(Duration::from);
    Ok(Prometheus::new(&source.address, timeout, source.insecure_skip_verify, token))
}
