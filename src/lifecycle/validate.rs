//! Checks of a Model that the CRD schema cannot express; a failure stalls the Model.

use crate::api::engines::TrainingBackend;
use crate::api::kserve::{KServeMode, ServingTarget};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use kube::ResourceExt;

use crate::api::Model;
use crate::objects::deployment::Track;
use crate::objects::names::{dns_label_problem, dns_subdomain_problem, job_name, serving_name, version_name};

/// Placeholders an artifact URI template may use.
pub const ARTIFACT_PLACEHOLDERS: [&str; 4] = ["model", "namespace", "version", "datasetVersion"];

/// Why a spec cannot be acted on: the reason of the `Stalled` condition and a sentence for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with `reason` (a condition reason) and `message`.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// Every problem of a Model's spec, in the order a person would fix them.
pub fn model_problems(model: &Model) -> Vec<Problem> {
    let mut problems = vec![];
    let spec = &model.spec;
    if let Some(why) = child_name_problems(&model.name_any()).into_iter().next() {
        problems.push(Problem::new(
            "InvalidName",
            format!(
                "metadata.name cannot name this Model's children: {why}. Create the Model again under a name of lowercase letters, digits and '-' that starts with a letter"
            ),
        ));
    }
    match (&spec.training, &spec.source) {
        (Some(training), None) => problems.extend(training_problems(training)),
        (None, Some(_)) => {}
        // Admission refuses both; these catch objects stored before the rule.
        (Some(_), Some(_)) => problems.push(Problem::new(
            "InvalidVersionSource",
            "spec.training and spec.source are both set: a Model either trains its versions or takes them from a registry; remove one",
        )),
        (None, None) => problems.push(Problem::new(
            "InvalidVersionSource",
            "neither spec.training nor spec.source is set: the Model has no way to get a version",
        )),
    }
    match (spec.serving.target, &spec.serving.kserve) {
        (ServingTarget::Deployment, _) => problems.extend(pod_template_problem(
            "spec.serving.template",
            "InvalidServingTemplate",
            &spec.serving.template,
        )),
        (ServingTarget::KServe, None) => problems.push(Problem::new(
            "InvalidKServe",
            "spec.serving.target is KServe but spec.serving.kserve is missing: it holds the InferenceService's predictor",
        )),
        (ServingTarget::KServe, Some(k)) => {
            if spec.serving.strategy.canary.is_some() && k.deployment_mode != KServeMode::Knative {
                problems.push(Problem::new(
                    "InvalidKServe",
                    "a canary with target KServe needs spec.serving.kserve.deploymentMode Knative: KServe's Standard mode ignores canaryTrafficPercent",
                ));
            }
            if spec.serving.strategy.blue_green.is_some() || spec.serving.traffic_routing.is_some() {
                problems.push(Problem::new(
                    "InvalidKServe",
                    "target KServe takes neither blueGreen nor trafficRouting: KServe routes the InferenceService's requests itself; use canary steps",
                ));
            }
        }
    }
    for metric in spec.serving.analysis.iter().flat_map(|a| &a.metrics) {
        let path = format!("spec.serving.analysis.metrics[{}].query", metric.name);
        problems.extend(unknown_placeholder(&path, &metric.query, &QUERY_PLACEHOLDERS, "InvalidAnalysisQuery"));
    }
    let routed = spec.serving.traffic_routing.as_ref().is_some_and(|r| r.gateway_api.is_some());
    if spec.serving.strategy.canary.as_ref().is_some_and(|c| c.shadow.is_some()) && !routed {
        problems.push(Problem::new(
            "InvalidShadowStage",
            "spec.serving.strategy.canary.shadow mirrors requests to the new version, which only a route can do; set spec.serving.trafficRouting.gatewayAPI or remove the shadow stage",
        ));
    }
    let steps = spec.serving.strategy.canary.iter().flat_map(|c| c.steps.iter().enumerate());
    for (i, step) in steps {
        if !step.headers.is_empty() && !routed {
            problems.push(Problem::new(
                "InvalidCanaryStep",
                format!("spec.serving.strategy.canary.steps[{i}] sends a header cohort to the new version, which only a route can do; set spec.serving.trafficRouting.gatewayAPI or remove its headers"),
            ));
        } else if step.weight < 1 && step.headers.is_empty() {
            problems.push(Problem::new(
                "InvalidCanaryStep",
                format!("spec.serving.strategy.canary.steps[{i}] has weight {} and no headers: it would send nothing to the new version", step.weight),
            ));
        }
    }
    problems
}

/// The problems of the training inputs that admission cannot see.
fn training_problems(training: &crate::api::TrainingSpec) -> Vec<Problem> {
    let mut problems = vec![];
    if let Some(p) = pod_template_problem("spec.training.template", "InvalidTrainerTemplate", &training.template) {
        problems.push(p);
    }
    let restart = training.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    if let Some(policy) = restart.filter(|p| *p != "Never" && *p != "OnFailure") {
        problems.push(Problem::new(
            "InvalidTrainerTemplate",
            format!("spec.training.template.spec.restartPolicy is {policy:?}; a training Job needs Never or OnFailure"),
        ));
    }
    if training.backend == TrainingBackend::RayJob && restart == Some("OnFailure") {
        problems.push(Problem::new(
            "InvalidTrainerTemplate",
            "spec.training.template is a RayJob's submitter, which KubeRay runs with restartPolicy Never; remove OnFailure".to_string(),
        ));
    }
    let known = || ARTIFACT_PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ");
    match artifact_placeholders(&training.artifact_uri) {
        Ok(_) => {}
        Err(PlaceholderError::Unknown(unknown)) => problems.push(Problem::new(
            "InvalidArtifactUri",
            format!("spec.training.artifactUri uses the unknown placeholder {{{unknown}}}; known: {}", known()),
        )),
        Err(PlaceholderError::Unclosed(rest)) => problems.push(Problem::new(
            "InvalidArtifactUri",
            format!("spec.training.artifactUri has a '{{' without its '}}' at {{{rest}; placeholders are {}", known()),
        )),
    }
    problems
}

/// Every name modelcycle gives a child of `model` (the Service, the Deployments, a training Job,
/// a ModelVersion), with the kind of the child, when one is not a valid name for that kind.
/// The CRD refuses such Model names; this catches objects stored before that rule existed.
pub fn child_name_problems(model: &str) -> Vec<String> {
    // Each child's name is the Model's with a suffix of lowercase letters, digits and '-', cut
    // with a hash when long. A Model name of that shape (the one the CRD admits) therefore names
    // valid children, as the test below checks of the names made: none needs making each time.
    if admitted_shape(model) {
        return vec![];
    }
    made_child_name_problems(model)
}

/// Lowercase letters, digits and '-', starting with a letter and ending with a letter or digit.
fn admitted_shape(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The problems of the child names made from `model`, each made and checked.
fn made_child_name_problems(model: &str) -> Vec<String> {
    let labels = [
        ("Service and Deployment", serving_name(model)),
        ("Deployment", Track::Canary.name(model)),
        ("Service and Deployment", Track::Preview.name(model)),
        ("Service", crate::objects::route::backend_name(model, Track::Stable)),
        ("Job", job_name(model, 1)),
    ];
    let labels = labels.into_iter().map(|(kind, name)| (kind, dns_label_problem(&name)));
    let version = ("ModelVersion", dns_subdomain_problem(&version_name(model, 1)));
    labels.chain([version]).filter_map(|(kind, why)| why.map(|why| format!("the {kind} name {why}"))).collect()
}

fn pod_template_problem(path: &str, reason: &'static str, template: &PodTemplateSpec) -> Option<Problem> {
    let containers = template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if containers.is_empty() {
        return Some(Problem::new(reason, format!("{path} has no container; add one under {path}.spec.containers")));
    }
    containers.iter().enumerate().find_map(|(i, c)| {
        if c.name.is_empty() {
            Some(Problem::new(reason, format!("{path}.spec.containers[{i}] has no name")))
        } else if c.image.as_deref().unwrap_or_default().is_empty() {
            Some(Problem::new(reason, format!("{path}.spec.containers[{i}] ({}) has no image", c.name)))
        } else {
            None
        }
    })
}

/// The placeholders an analysis query may use (the list `QueryVars` fills).
pub use super::reading::ANALYSIS_PLACEHOLDERS as QUERY_PLACEHOLDERS;
/// The placeholders a drift or performance query may use (the list `QueryVars` fills).
pub use super::reading::CHECK_PLACEHOLDERS as POLICY_QUERY_PLACEHOLDERS;

/// A problem naming the first unknown placeholder of `query` at `path`, if it has one.
pub fn unknown_placeholder(path: &str, query: &str, known: &[&str], reason: &'static str) -> Option<Problem> {
    let unknown = query_placeholders(query).into_iter().find(|p| !known.contains(p))?;
    let known = known.iter().map(|p| format!("{{{{{p}}}}}")).collect::<Vec<_>>().join(", ");
    Some(Problem::new(reason, format!("{path} uses the unknown placeholder {{{{{unknown}}}}}; known: {known}")))
}

/// The `{{name}}` placeholders of an analysis query.
pub fn query_placeholders(query: &str) -> Vec<&str> {
    query.split("{{").skip(1).filter_map(|part| part.split_once("}}").map(|(name, _)| name.trim())).collect()
}

/// What is wrong with the placeholders of an artifact URI template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaceholderError {
    /// `{name}` with a name that is not a placeholder.
    Unknown(String),
    /// A `{` never closed; the text after it.
    Unclosed(String),
}

/// The placeholders of an artifact URI template, or the first thing wrong with them.
pub fn artifact_placeholders(template: &str) -> Result<Vec<&str>, PlaceholderError> {
    let mut found = vec![];
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(PlaceholderError::Unclosed(after.to_string()));
        };
        let name = &after[..end];
        if !ARTIFACT_PLACEHOLDERS.contains(&name) {
            return Err(PlaceholderError::Unknown(name.to_string()));
        }
        found.push(name);
        rest = &after[end + 1..];
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::testing::model;
    use proptest::prelude::*;

    #[test]
    fn names_kubernetes_refuses_for_a_service_are_caught() {
        assert_eq!(child_name_problems("churn"), Vec::<String>::new());
        let dotted = child_name_problems("churn.v2");
        assert!(dotted[0].contains("Service") && dotted[0].contains("not '.'"), "{dotted:?}");
        let digit = child_name_problems("2fa-risk");
        assert!(digit[0].contains("must start with a lowercase letter"), "{digit:?}");
        assert!(child_name_problems(&"a".repeat(200)).is_empty(), "long names are cut with a hash");
    }

    proptest! {
        #[test]
        fn model_names_the_crd_admits_make_valid_child_names(model in "[a-z]([-a-z0-9]{0,300}[a-z0-9])?") {
            prop_assert!(admitted_shape(&model));
            prop_assert_eq!(made_child_name_problems(&model), Vec::<String>::new());
        }

        #[test]
        fn a_name_of_another_shape_has_its_children_checked(model in "[-a-z0-9.A-Z_]{0,80}") {
            // Whatever the shortcut skips must have nothing to find.
            if admitted_shape(&model) {
                prop_assert_eq!(made_child_name_problems(&model), Vec::<String>::new());
            }
            prop_assert_eq!(child_name_problems(&model), made_child_name_problems(&model));
        }

    }

    #[test]
    fn a_complete_model_has_no_problem() {
        assert_eq!(model_problems(&model("churn")), vec![]);
    }

    #[test]
    fn trainer_without_container_is_a_problem() {
        let mut m = model("churn");
        m.spec.training.as_mut().unwrap().template.spec.as_mut().unwrap().containers.clear();
        let problems = model_problems(&m);
        assert_eq!(problems[0].reason, "InvalidTrainerTemplate");
        assert!(problems[0].message.contains("spec.training.template has no container"), "{}", problems[0].message);
    }

    #[test]
    fn serving_container_without_image_is_a_problem() {
        let mut m = model("churn");
        m.spec.serving.template.spec.as_mut().unwrap().containers[0].image = None;
        let problems = model_problems(&m);
        assert_eq!(problems[0].reason, "InvalidServingTemplate");
        assert!(problems[0].message.contains("has no image"));
    }

    #[test]
    fn trainer_that_restarts_always_is_a_problem() {
        let mut m = model("churn");
        m.spec.training.as_mut().unwrap().template.spec.as_mut().unwrap().restart_policy = Some("Always".into());
        assert_eq!(model_problems(&m)[0].reason, "InvalidTrainerTemplate");
    }

    #[test]
    fn unknown_artifact_placeholder_is_named() {
        let mut m = model("churn");
        m.spec.training.as_mut().unwrap().artifact_uri = "s3://m/{model}/{run_id}".into();
        let problems = model_problems(&m);
        assert_eq!(problems[0].reason, "InvalidArtifactUri");
        assert!(problems[0].message.contains("{run_id}"), "{}", problems[0].message);
    }

    #[test]
    fn an_unknown_query_placeholder_is_named() {
        let mut m = model("churn");
        let metric: crate::api::AnalysisSpec = serde_json::from_value(serde_json::json!({
            "prometheus": {"address": "http://prometheus:9090"},
            "metrics": [{"name": "errors", "query": "sum(errors{model=\"{{model}}\",v=\"{{ver}}\"})", "max": 0.1}]
        }))
        .unwrap();
        m.spec.serving.analysis = Some(metric);
        let problems = model_problems(&m);
        assert_eq!(problems[0].reason, "InvalidAnalysisQuery");
        assert!(problems[0].message.contains("unknown placeholder {{ver}}"), "{}", problems[0].message);
        m.spec.serving.analysis.as_mut().unwrap().metrics[0].query =
            "x{v=\"{{version}}\",s=\"{{stableVersion}}\"}".into();
        assert!(model_problems(&m).is_empty());
    }

    #[test]
    fn placeholders_are_listed_in_order() {
        assert_eq!(artifact_placeholders("s3://m/{model}/{version}"), Ok(vec!["model", "version"]));
        assert_eq!(artifact_placeholders("s3://m/{model"), Err(PlaceholderError::Unclosed("model".into())));
    }

    #[test]
    fn an_unclosed_brace_is_reported_as_unclosed_not_unknown() {
        let mut m = model("churn");
        m.spec.training.as_mut().unwrap().artifact_uri = "s3://m/{model}/{version".into();
        let problems = model_problems(&m);
        assert_eq!(problems[0].reason, "InvalidArtifactUri");
        assert!(problems[0].message.contains("a '{' without its '}' at {version"), "{}", problems[0].message);
        assert!(!problems[0].message.contains("unknown"), "{}", problems[0].message);
    }

    #[test]
    fn a_name_that_cannot_name_a_service_stalls_the_model() {
        for name in ["churn.v2", "2fa-risk"] {
            let problems = model_problems(&model(name));
            assert_eq!(problems[0].reason, "InvalidName", "{name}");
            assert!(problems[0].message.starts_with("metadata.name cannot name"), "{}", problems[0].message);
        }
    }
}
