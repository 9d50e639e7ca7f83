//! An MLflow tracking server's model registry, over its REST API (`/api/2.0/mlflow/...`): what it
//! holds of a Model, and the writes the core's [`operations`] ask for.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::lifecycle::registry::{Held, Intent, MODEL_TAG, Op, operations};
use crate::lifecycle::source::Offered;

/// How long one MLflow request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one MLflow tracking server.
#[derive(Clone, Debug)]
pub struct Mlflow {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Why MLflow did not do what was asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MlflowError {
    /// No answer (refused, timed out, no route).
    #[error("MLflow at {uri} did not answer: {message}")]
    Unreachable {
        /// The tracking URI.
        uri: String,
        /// Why.
        message: String,
    },
    /// An answer that is an error.
    #[error("MLflow refused {what}: HTTP {status} {message}")]
    Refused {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// MLflow's `error_code` (e.g. `RESOURCE_DOES_NOT_EXIST`), empty when it sent none.
        code: String,
        /// MLflow's `error_code: message`.
        message: String,
    },
    /// An answer that is not what its API promises.
    #[error("MLflow answered {what} with something unexpected: {message}")]
    Unexpected {
        /// The request.
        what: String,
        /// What was wrong.
        message: String,
    },
}

#[derive(Deserialize, Default)]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct ModelVersionJson {
    version: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize, Default)]
struct SearchAnswer {
    #[serde(default)]
    model_versions: Vec<ModelVersionJson>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Alias {
    alias: String,
    version: String,
}

#[derive(Deserialize, Default)]
struct RegisteredModel {
    #[serde(default)]
    aliases: Vec<Alias>,
}

#[derive(Deserialize)]
struct RegisteredModelAnswer {
    registered_model: RegisteredModel,
}

#[derive(Deserialize)]
struct CreatedAnswer {
    model_version: ModelVersionJson,
}

fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

impl Mlflow {
    /// A client for the tracking server at `uri`, sending `token` as a bearer token.
    pub fn new(uri: &str, token: Option<String>) -> Result<Self, MlflowError> {
        let base = uri.trim_end_matches('/').to_string();
        let http = super::prometheus::http_client(TIMEOUT, false)
            .map_err(|e| MlflowError::Unreachable { uri: base.clone(), message: format!("no HTTP client: {e}") })?;
        Ok(Self { http, base, token })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        what: &str,
        body: Option<Value>,
        query: &[(&str, String)],
    ) -> Result<Value, MlflowError> {
        let mut request = self.http.request(method, format!("{}/api/2.0/mlflow/{path}", self.base)).query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| MlflowError::Unreachable { uri: self.base.clone(), message: error_chain(&e) })?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .map_err(|e| MlflowError::Unreachable { uri: self.base.clone(), message: error_chain(&e) })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = value["error_code"].as_str().unwrap_or_default();
            let message =
                value["message"].as_str().map(String::from).unwrap_or_else(|| text.chars().take(200).collect());
            return Err(MlflowError::Refused {
                what: what.to_string(),
                status: status.as_u16(),
                code: code.to_string(),
                message: if code.is_empty() { message } else { format!("{code}: {message}") },
            });
        }
        Ok(value)
    }

    fn unexpected(what: &str, e: impl std::fmt::Display) -> MlflowError {
        MlflowError::Unexpected { what: what.to_string(), message: e.to_string() }
    }

    /// Creates the registered model `name`; one that exists already is fine.
    pub async fn ensure_registered_model(&self, name: &str) -> Result<(), MlflowError> {
        let what = format!("creating registered model {name:?}");
        match self
            .call(reqwest::Method::POST, "registered-models/create", &what, Some(json!({"name": name})), &[])
            .await
        {
            Ok(_) => Ok(()),
            Err(MlflowError::Refused { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The versions of `name` tagged as the Model `model`'s, with their tags.
    pub async fn held(&self, name: &str, model: &str) -> Result<Vec<Held>, MlflowError> {
        let what = format!("searching the versions of {name:?}");
        let filter = format!("name='{}' and tags.`{MODEL_TAG}`='{}'", quote(name), quote(model));
        let mut held = vec![];
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter.clone()), ("max_results", "1000".to_string())];
            if let Some(token) = &page {
                query.push(("page_token", token.clone()));
            }
            let value = self.call(reqwest::Method::GET, "model-versions/search", &what, None, &query).await?;
            let answer: SearchAnswer = serde_json::from_value(value).map_err(|e| Self::unexpected(&what, e))?;
            held.extend(
                answer
                    .model_versions
                    .into_iter()
                    .map(|v| Held { number: v.version, tags: v.tags.into_iter().map(|t| (t.key, t.value)).collect() }),
            );
            match answer.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page = Some(token),
                None => return Ok(held),
            }
        }
    }

    /// The aliases of `name`: alias → version number.
    pub async fn aliases(&self, name: &str) -> Result<BTreeMap<String, String>, MlflowError> {
        let what = format!("reading registered model {name:?}");
        let value = self
            .call(reqwest::Method::GET, "registered-models/get", &what, None, &[("name", name.to_string())])
            .await?;
        let answer: RegisteredModelAnswer = serde_json::from_value(value).map_err(|e| Self::unexpected(&what, e))?;
        Ok(answer.registered_model.aliases.into_iter().map(|a| (a.alias, a.version)).collect())
    }

    /// Brings the registry to `intent`: reads what it holds of the Model, then makes the writes
    /// that differ. The number of writes made, or the first failure (what was written stays;
    /// the next attempt finds it by its uid tag).
    pub async fn publish(&self, intent: &Intent) -> Result<usize, MlflowError> {
        self.ensure_registered_model(&intent.name).await?;
        let held = self.held(&intent.name, &intent.model).await?;
        let aliases = self.aliases(&intent.name).await?;
        let ops = operations(intent, &held, &aliases);
        let mut created: BTreeMap<String, String> = BTreeMap::new();
        let name = intent.name.as_str();
        for op in &ops {
            match op {
                Op::Create { uid, source, tags } => {
                    let what = format!("registering a version of {name:?}");
                    let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
                    let body = json!({"name": name, "source": source, "tags": tags});
                    let value =
                        self.call(reqwest::Method::POST, "model-versions/create", &what, Some(body), &[]).await?;
                    let answer: CreatedAnswer =
                        serde_json::from_value(value).map_err(|e| Self::unexpected(&what, e))?;
                    created.insert(uid.clone(), answer.model_version.version);
                }
                Op::SetTag { number, key, value } => {
                    let what = format!("tagging version {number} of {name:?}");
                    let body = json!({"name": name, "version": number, "key": key, "value": value});
                    self.call(reqwest::Method::POST, "model-versions/set-tag", &what, Some(body), &[]).await?;
                }
                Op::SetAlias { alias, target } => {
                    let number = target.number(&created).ok_or_else(|| {
                        Self::unexpected(&format!("setting alias {alias}"), "its version was not created")
                    })?;
                    let what = format!("setting alias {alias} of {name:?} to version {number}");
                    let body = json!({"name": name, "alias": alias, "version": number});
                    self.call(reqwest::Method::POST, "registered-models/alias", &what, Some(body), &[]).await?;
                }
                Op::DeleteAlias { alias } => {
                    let what = format!("removing alias {alias} of {name:?}");
                    let body = json!({"name": name, "alias": alias});
                    self.call(reqwest::Method::DELETE, "registered-models/alias", &what, Some(body), &[]).await?;
                }
            }
        }
        Ok(ops.len())
    }
}

#[derive(Deserialize, Default)]
struct OfferedVersion {
    version: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    run_id: Option<String>,
}

#[derive(Deserialize)]
struct AliasAnswer {
    model_version: OfferedVersion,
}

#[derive(Deserialize, Default)]
struct LatestAnswer {
    #[serde(default)]
    model_versions: Vec<OfferedVersion>,
}

#[derive(Deserialize, Default)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: Value,
}

#[derive(Deserialize, Default)]
struct RunData {
    #[serde(default)]
    metrics: Vec<KeyValue>,
    #[serde(default)]
    params: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
struct Run {
    #[serde(default)]
    data: RunData,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: Run,
}

#[derive(Deserialize)]
struct DownloadAnswer {
    artifact_uri: String,
}

impl Mlflow {
    /// What `name` offers now: the version `alias` points to, or its newest version, with its
    /// run's parameters and metrics and the location of its files. `known` is a version already
    /// read in full: when it is still the one offered, one request answers.
    pub async fn offered(
        &self,
        name: &str,
        alias: Option<&str>,
        known: Option<&Offered>,
    ) -> Result<Offered, MlflowError> {
        let version = match alias {
            Some(alias) => {
                let what = format!("reading alias {alias} of {name:?}");
                let query = [("name", name.to_string()), ("alias", alias.to_string())];
                let value = match self.call(reqwest::Method::GET, "registered-models/alias", &what, None, &query).await
                {
                    // MLflow answers an alias it does not have as an invalid parameter (the
                    // alias's form is checked at admission, so that is all it can mean here).
                    Err(MlflowError::Refused { code, status, message, what }) if code == "INVALID_PARAMETER_VALUE" => {
                        return Err(MlflowError::Refused {
                            what,
                            status,
                            code: "RESOURCE_DOES_NOT_EXIST".into(),
                            message,
                        });
                    }
                    answer => answer?,
                };
                serde_json::from_value::<AliasAnswer>(value).map_err(|e| Self::unexpected(&what, e))?.model_version
            }
            None => {
                let what = format!("searching the newest version of {name:?}");
                let query = [
                    ("filter", format!("name='{}'", quote(name))),
                    ("order_by", "version_number DESC".to_string()),
                    ("max_results", "1".to_string()),
                ];
                let value = self.call(reqwest::Method::GET, "model-versions/search", &what, None, &query).await?;
                let answer: LatestAnswer = serde_json::from_value(value).map_err(|e| Self::unexpected(&what, e))?;
                answer.model_versions.into_iter().next().ok_or_else(|| MlflowError::Refused {
                    what,
                    status: 404,
                    code: "RESOURCE_DOES_NOT_EXIST".into(),
                    message: format!("RESOURCE_DOES_NOT_EXIST: registered model {name:?} has no version"),
                })?
            }
        };
        if let Some(known) = known.filter(|k| k.version == version.version && k.source == version.source) {
            return Ok(known.clone());
        }
        let mut offered = Offered {
            version: version.version.clone(),
            run_id: version.run_id.clone().filter(|r| !r.is_empty()),
            source: version.source,
            ..Offered::default()
        };
        if let Some(run_id) = &offered.run_id {
            let what = format!("reading run {run_id}");
            let value = self.call(reqwest::Method::GET, "runs/get", &what, None, &[("run_id", run_id.clone())]).await?;
            let run = serde_json::from_value::<RunAnswer>(value).map_err(|e| Self::unexpected(&what, e))?.run;
            offered.params = run.data.params.into_iter().map(|p| (p.key, text_of(p.value))).collect();
            // A metric MLflow stores as NaN or infinity arrives as a string: it is left out, so
            // a gate on it says the metric is missing.
            offered.metrics = run.data.metrics.into_iter().filter_map(|m| Some((m.key, m.value.as_f64()?))).collect();
        }
        let what = format!("reading where version {} of {name:?} is stored", offered.version);
        let query = [("name", name.to_string()), ("version", offered.version.clone())];
        let value = self.call(reqwest::Method::GET, "model-versions/get-download-uri", &what, None, &query).await?;
        offered.artifact_uri =
            serde_json::from_value::<DownloadAnswer>(value).map_err(|e| Self::unexpected(&what, e))?.artifact_uri;
        Ok(offered)
    }
}

fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
