//! Taking the live readings a RetrainPolicy's due checks and a rollout's analysis need, from the
//! Prometheus the object names — only if the controller's allowlist admits its address, and with
//! a bearer token only from a Secret that opted in.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::api::{Model, PrometheusSource, RetrainPolicy};
use crate::lifecycle::analysis::{AnalysisAnswers, AnalysisQuery, Shape};
use crate::lifecycle::reading::address_allowed;
use crate::lifecycle::triggers::{DueChecks, Readings};
use crate::sources::prometheus::{Prometheus, ReadingError};

use super::context::Context;

/// The label a Secret must carry, with [`TOKEN_SECRET_TYPE`], before the controller sends one of
/// its values to a Prometheus as a bearer token (as Argo CD asks `argocd.argoproj.io/secret-type`
/// of the Secrets it uses). Without it, anybody allowed to create a Model could have any Secret of
/// the namespace sent to a server of their choosing.
pub const SECRET_TYPE_LABEL: &str = "modelcycle.io/secret-type";
/// The value of [`SECRET_TYPE_LABEL`] that allows a Secret's use as a Prometheus bearer token.
pub const TOKEN_SECRET_TYPE: &str = "prometheus-token";

/// Runs the due queries; every failure becomes a reading with its reason.
pub async fn take(ctx: &Context, policy: &RetrainPolicy, due: &DueChecks) -> Readings {
    if due.is_empty() {
        return Readings::default();
    }
    let Some(source) = &policy.spec.prometheus else {
        return failed(due, &ReadingError::Unexpected("spec.prometheus is not set".into()));
    };
    let prometheus = match connect(ctx, &policy.namespace().unwrap_or_default(), source).await {
        Ok(p) => p,
        Err(e) => return failed(due, &e),
    };
    let histogram = |q: &Option<String>| {
        let p = prometheus.clone();
        let q = q.clone();
        async move {
            match q {
                Some(q) => Some(p.histogram(&q).await),
                None => None,
            }
        }
    };
    Readings {
        drift: histogram(&due.drift).await,
        reference: histogram(&due.reference).await,
        performance: match &due.performance {
            Some(q) => Some(prometheus.number(q).await),
            None => None,
        },
        ..Default::default()
    }
}

/// Runs the due rollout analysis queries against the Model's analysis Prometheus; every failure
/// is an answer with its reason.
pub async fn take_analysis(ctx: &Context, model: &Model, queries: &[AnalysisQuery]) -> AnalysisAnswers {
    let Some(analysis) = &model.spec.serving.analysis else { return AnalysisAnswers::default() };
    let prometheus = match connect(ctx, &model.namespace().unwrap_or_default(), &analysis.prometheus).await {
        Ok(p) => p,
        Err(e) => return AnalysisAnswers::failed(queries, &e),
    };
    let mut answers = AnalysisAnswers::default();
    for q in queries {
        match q.shape {
            Shape::Number => {
                answers.numbers.insert(q.query.clone(), prometheus.number(&q.query).await);
            }
            Shape::Histogram => {
                answers.histograms.insert(q.query.clone(), prometheus.histogram(&q.query).await);
            }
        }
    }
    answers
}

/// Every due check failed for the same reason.
fn failed(due: &DueChecks, error: &ReadingError) -> Readings {
    Readings {
        drift: due.drift.as_ref().map(|_| Err(error.clone())),
        reference: due.reference.as_ref().map(|_| Err(error.clone())),
        performance: due.performance.as_ref().map(|_| Err(error.clone())),
        ..Default::default()
    }
}

/// A client for `source`: refused when its address is outside the allowlist, with the bearer
/// token read from the Secret it names when that Secret opted in.
pub async fn connect(ctx: &Context, namespace: &str, source: &PrometheusSource) -> Result<Prometheus, ReadingError> {
    if !address_allowed(&source.address, &ctx.prometheus_allowed) {
        return Err(ReadingError::NotAllowed {
            address: source.address.clone(),
            allowed: ctx.prometheus_allowed.join(", "),
        });
    }
    let token = match &source.bearer_token_secret {
        None => None,
        Some(selector) => {
            let key = (namespace.to_string(), selector.name.clone(), selector.key.clone());
            match ctx.readings.token(&key) {
                Some(token) => Some(token),
                None => {
                    let secret = (selector.name.as_str(), selector.key.as_str());
                    let about = ("bearerTokenSecret", TOKEN_SECRET_TYPE, "prometheus.bearerTokenSecrets");
                    let token = secret_token(ctx, namespace, secret, about).await?;
                    ctx.readings.keep_token(key, &token);
                    Some(token)
                }
            }
        }
    };
    Ok(ctx.readings.client(source)?.with_token(token))
}

/// A token read from the Secret `name` of `namespace`, only if the Secret is labelled
/// [`SECRET_TYPE_LABEL`]`=secret_type` (`field` names the object's field in messages, `grant` the
/// chart value that lets the controller read Secrets).
pub async fn secret_token(
    ctx: &Context,
    namespace: &str,
    (name, key): (&str, &str),
    (field, secret_type, grant): (&str, &str, &str),
) -> Result<String, ReadingError> {
    let refused = |why: String| ReadingError::TokenRefused(format!("{field} {name}: {why}"));
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = match secrets.get(name).await {
        Ok(s) => s,
        Err(kube::Error::Api(s)) if s.code == 403 => {
            return Err(refused(format!("the controller may not read Secrets; install the chart with {grant}=true")));
        }
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(refused("no such Secret in this namespace".into())),
        Err(e) => {
            return Err(ReadingError::Unreachable { address: "the Kubernetes API".into(), message: e.to_string() });
        }
    };
    if secret.labels().get(SECRET_TYPE_LABEL).map(String::as_str) != Some(secret_type) {
        return Err(refused(format!(
            "the Secret is not labelled {SECRET_TYPE_LABEL}={secret_type}, so the controller does not send its values anywhere"
        )));
    }
    let bytes = secret.data.and_then(|d| d.get(key).cloned()).ok_or_else(|| refused(format!("no key {key:?}")))?;
    let text = String::from_utf8(bytes.0).map_err(|_| refused(format!("key {key:?} is not text")))?;
    Ok(text.trim().to_string())
}
