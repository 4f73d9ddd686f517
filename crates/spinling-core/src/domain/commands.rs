//! What a write asks the domain to do, as typed values. The handlers in `api/` read them out
//! of requests (the wire's typing, forms, `0` for the current code); the domain operations
//! take them and never see a request body.

use crate::domain::types::{
    CodeSource, ExecutionId, FunctionId, RuntimeId, VersionNumber, VersionRef,
};
use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value as Json};

/// A new alias: a non-blank name for a function's current code or one of its versions.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlias {
    pub name: String,
    pub description: Option<String>,
    pub function_id: FunctionId,
    pub version: VersionRef,
    pub routing: Routing,
}

impl NewAlias {
    pub fn new(
        name: String,
        description: Option<String>,
        function_id: FunctionId,
        version: VersionRef,
        routing: Routing,
    ) -> ApiResult<NewAlias> {
        if name.trim().is_empty() {
            return Err(ApiError::bad_request(
                "Invalid input for field/attribute name. Value: ''. An alias needs a name.",
            ));
        }
        Ok(NewAlias {
            name,
            description,
            function_id,
            version,
            routing,
        })
    }
}

/// An alias's weighted routing: extra versions of its function, each taking its weight of
/// the executions created through the alias (a number in (0, 1), the weights adding up to
/// less than 1); the alias's own version takes the rest. Empty: all go to the alias's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing(Vec<(VersionNumber, f64)>);

/// Weights adding up to within this of 1 count as 1 (`{"2": 0.3, "3": 0.7}` is refused
/// whatever the float rounding says).
const WEIGHT_SUM_SLACK: f64 = 1e-9;

/// A 400 about a routing, in WSME's words for an invalid attribute.
pub fn invalid_routing(value: &Json, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid input for field/attribute routing. Value: '{value}'. {why}"
    ))
}

impl Routing {
    /// The routing a request gives: keys version numbers as decimal text (`"2"`), values
    /// numbers in (0, 1) adding up to less than 1.
    pub fn parse(object: &Map<String, Json>) -> ApiResult<Routing> {
        let value = Json::Object(object.clone());
        let mut routes = Vec::with_capacity(object.len());
        for (key, weight) in object {
            let number = key
                .parse::<i64>()
                .ok()
                .filter(|n| n.to_string() == *key)
                .and_then(VersionNumber::new)
                .ok_or_else(|| {
                    invalid_routing(
                        &value,
                        &format!("Routing keys are version numbers (1 or more), not '{key}'."),
                    )
                })?;
            let w = weight
                .as_f64()
                .filter(|w| *w > 0.0 && *w < 1.0)
                .ok_or_else(|| {
                    invalid_routing(
                        &value,
                        &format!(
                            "The weight of version {number} must be a number between 0 and 1 (both excluded), not {weight}."
                        ),
                    )
                })?;
            routes.push((number, w));
        }
        let sum: f64 = routes.iter().map(|(_, w)| w).sum();
        if sum >= 1.0 - WEIGHT_SUM_SLACK {
            return Err(invalid_routing(
                &value,
                &format!(
                    "The weights add up to {sum}; they must add up to less than 1, the alias's own version taking the rest."
                ),
            ));
        }
        Ok(Routing::from_routes(routes))
    }

    /// A routing as stored (already checked).
    pub fn from_routes(mut routes: Vec<(VersionNumber, f64)>) -> Routing {
        routes.sort_by_key(|(n, _)| *n);
        Routing(routes)
    }

    /// The extra versions and their weights, by version number.
    pub fn routes(&self) -> &[(VersionNumber, f64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_json(&self) -> Json {
        Json::Object(
            self.0
                .iter()
                .map(|(n, w)| (n.to_string(), Json::from(*w)))
                .collect(),
        )
    }

    /// The version an execution runs, for `draw` uniform in [0, 1): an extra version when
    /// `draw` falls in its share, else `primary`.
    pub fn pick(&self, primary: VersionRef, draw: f64) -> VersionRef {
        let mut edge = 0.0;
        for (number, weight) in &self.0 {
            edge += weight;
            if draw < edge {
                return VersionRef::Number(*number);
            }
        }
        primary
    }
}

/// What an alias update changes; `None` keeps the alias's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasChanges {
    pub function_id: Option<FunctionId>,
    pub version: Option<VersionRef>,
    pub description: Option<String>,
    /// A new routing; `Some` of an empty one clears it.
    pub routing: Option<Routing>,
}

/// What an execution runs: what an alias of the caller's names, or a function's code.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionTarget {
    Alias(String),
    Function { id: FunctionId, version: VersionRef },
}

/// A new execution.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    /// Qinling's `id` is not read-only: a client may choose it.
    pub id: Option<ExecutionId>,
    pub target: ExecutionTarget,
    pub description: Option<String>,
    pub sync: bool,
    /// The stored input (see `executions::parse_input`).
    pub input: Option<Json>,
    /// Through a routed alias, the same key always runs the same version (see
    /// `routing::sticky_draw`); none draws at random.
    pub routing_key: Option<String>,
}

impl NewExecution {
    /// The target an execution request names: its alias when it gives one, else its
    /// function (at `version`, the current code when none is given).
    pub fn target(
        alias: Option<String>,
        function_id: Option<FunctionId>,
        version: Option<VersionRef>,
    ) -> ApiResult<ExecutionTarget> {
        match (alias, function_id) {
            (Some(name), _) => Ok(ExecutionTarget::Alias(name)),
            (None, Some(id)) => Ok(ExecutionTarget::Function {
                id,
                version: version.unwrap_or(VersionRef::Current),
            }),
            (None, None) => Err(ApiError::bad_request(
                "Either function_alias or function_id must be provided.",
            )),
        }
    }
}

/// What a webhook runs: what an alias of its project names when it is invoked, or a
/// function's code at `version` as sent (none is the current code).
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookTarget {
    Alias(String),
    Function {
        id: FunctionId,
        version: Option<VersionRef>,
    },
}

/// A new webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    pub target: WebhookTarget,
    pub description: Option<String>,
}

impl NewWebhook {
    /// The target a create request names: its alias when it gives one, else its function.
    pub fn target(
        alias: Option<String>,
        function_id: Option<FunctionId>,
        version: Option<VersionRef>,
    ) -> ApiResult<WebhookTarget> {
        match (alias, function_id) {
            (Some(name), _) => Ok(WebhookTarget::Alias(name)),
            (None, Some(id)) => Ok(WebhookTarget::Function { id, version }),
            (None, None) => Err(ApiError::bad_request(
                "Either function_alias or function_id must be provided.",
            )),
        }
    }
}

/// What a webhook update changes; `None` keeps the webhook's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookChanges {
    pub function_id: Option<FunctionId>,
    pub version: Option<VersionRef>,
    pub alias: Option<String>,
    pub description: Option<String>,
}

/// A new job: what it runs (an alias, resolved each time it fires, or a function's code),
/// and when: at `first_execution_time`, on a cron `pattern`, or both (spec §2.7).
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub name: Option<String>,
    pub target: ExecutionTarget,
    /// Five-field cron, UTC; checked by the domain.
    pub pattern: Option<String>,
    /// Unix seconds (UTC; a time zone the client gave is ignored, as Qinling does).
    pub first_execution_time: Option<i64>,
    /// At least 1; none is unlimited (or 1 for a one-shot job).
    pub count: Option<i64>,
    /// The input of each execution, as an execution's `input`.
    pub function_input: Option<String>,
}

/// What a job update changes; `None` keeps the job's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobChanges {
    pub name: Option<String>,
    pub function_input: Option<String>,
    /// As given: only `running`, `paused` and `cancelled` are accepted (by the domain).
    pub status: Option<String>,
    /// A new pattern; `""` asks to make a recurring job a one-shot one (refused).
    pub pattern: Option<String>,
    /// Unix seconds.
    pub next_execution_time: Option<i64>,
}

/// A new runtime: the built-in one or a worker's URL as its image.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRuntime {
    pub id: Option<RuntimeId>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub image: String,
    pub is_public: bool,
    pub trusted: bool,
}

/// What a runtime update changes; `None` keeps the runtime's value. Giving an image (even
/// the same one) probes its worker again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub image: Option<String>,
}

/// A new function, its fields checked one by one; the rules that need the database (its
/// runtime) or the upload's bytes are the domain's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFunction {
    pub name: Option<String>,
    pub description: Option<String>,
    pub entry: Option<String>,
    pub cpu: i64,
    pub memory_size: i64,
    pub timeout: i64,
    /// The `code` object as given; its `source` is `source`.
    pub code: Map<String, Json>,
    pub source: CodeSource,
    /// Given for every source but `image`.
    pub runtime_id: Option<String>,
    /// The uploaded package, not yet checked.
    pub package: Option<crate::store::packages::Upload>,
}

/// What a function update changes; `None` keeps the function's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub entry: Option<String>,
    pub cpu: Option<i64>,
    pub memory_size: Option<i64>,
    pub timeout: Option<i64>,
    /// A new `code` object (its source, if given, must be the function's).
    pub code: Option<Map<String, Json>>,
    /// The md5 the new code object claims.
    pub claimed_md5: Option<String>,
    /// A top-level `md5sum` field: python-qinlingclient sends the code dict's keys as
    /// top-level fields on update; that checksum still guards the upload's integrity.
    pub md5sum_field: Option<String>,
    /// A new package, not yet checked.
    pub package: Option<crate::store::packages::Upload>,
}

impl FunctionChanges {
    /// The fields the update gives, by their wire names.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("code", self.code.is_some()),
            ("entry", self.entry.is_some()),
            ("cpu", self.cpu.is_some()),
            ("memory_size", self.memory_size.is_some()),
            ("timeout", self.timeout.is_some()),
            ("package", self.package.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The md5 an upload must have, if the request says.
    pub fn expected_md5(&self) -> Option<&str> {
        self.claimed_md5.as_deref().or(self.md5sum_field.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fid() -> FunctionId {
        FunctionId::parse("0b6d2c1c-7c41-4a44-9a68-3c5a2b1f0e11").unwrap()
    }

    #[test]
    fn an_alias_needs_a_name_that_is_not_blank() {
        let err = NewAlias::new(
            " ".into(),
            None,
            fid(),
            VersionRef::Current,
            Routing::default(),
        )
        .unwrap_err();
        assert_eq!(
            (err.status(), err.message.as_str()),
            (
                400,
                "Invalid input for field/attribute name. Value: ''. An alias needs a name."
            )
        );
        assert!(NewAlias::new(
            "a".into(),
            None,
            fid(),
            VersionRef::Current,
            Routing::default()
        )
        .is_ok());
    }

    fn routing(value: Json) -> ApiResult<Routing> {
        Routing::parse(value.as_object().unwrap())
    }

    fn v(n: i64) -> VersionNumber {
        VersionNumber::new(n).unwrap()
    }

    #[test]
    fn a_routing_gives_each_extra_version_its_weight() {
        let r = routing(serde_json::json!({"3": 0.25, "2": 0.1})).unwrap();
        assert_eq!(r.routes(), [(v(2), 0.1), (v(3), 0.25)]);
        assert_eq!(r.to_json(), serde_json::json!({"2": 0.1, "3": 0.25}));
    }

    #[test]
    fn routing_keys_must_be_version_numbers() {
        for key in ["0", "-1", "x", "02", "+2", "1.5", ""] {
            let err = routing(serde_json::json!({ key: 0.1 })).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(
                err.message.ends_with(&format!(
                    "Routing keys are version numbers (1 or more), not '{key}'."
                )),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn a_weight_must_be_a_number_strictly_between_0_and_1() {
        for weight in [
            serde_json::json!(0),
            serde_json::json!(1),
            serde_json::json!(1.5),
            serde_json::json!(-0.1),
            serde_json::json!("0.1"),
            serde_json::json!(null),
        ] {
            let err = routing(serde_json::json!({ "2": weight })).unwrap_err();
            assert!(
                err.message.ends_with(&format!(
                    "The weight of version 2 must be a number between 0 and 1 (both excluded), not {weight}."
                )),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn the_weights_must_add_up_to_less_than_1() {
        let err = routing(serde_json::json!({"2": 0.3, "3": 0.7})).unwrap_err();
        assert!(
            err.message.contains("they must add up to less than 1"),
            "{}",
            err.message
        );
        assert!(routing(serde_json::json!({"2": 0.3, "3": 0.69})).is_ok());
    }

    #[test]
    fn a_draw_picks_the_version_whose_share_it_falls_in() {
        let r = routing(serde_json::json!({"2": 0.1, "3": 0.2})).unwrap();
        let primary = VersionRef::Current;
        assert_eq!(r.pick(primary, 0.0), VersionRef::Number(v(2)));
        assert_eq!(r.pick(primary, 0.099), VersionRef::Number(v(2)));
        assert_eq!(r.pick(primary, 0.1), VersionRef::Number(v(3)));
        assert_eq!(r.pick(primary, 0.299), VersionRef::Number(v(3)));
        assert_eq!(r.pick(primary, 0.301), primary);
        assert_eq!(r.pick(primary, 0.999), primary);
        assert_eq!(Routing::default().pick(primary, 0.0), primary);
    }

    #[test]
    fn an_execution_runs_its_alias_before_its_function() {
        assert_eq!(
            NewExecution::target(Some("a".into()), Some(fid()), None),
            Ok(ExecutionTarget::Alias("a".into()))
        );
    }

    #[test]
    fn an_execution_of_a_function_without_a_version_runs_its_current_code() {
        assert_eq!(
            NewExecution::target(None, Some(fid()), None),
            Ok(ExecutionTarget::Function {
                id: fid(),
                version: VersionRef::Current
            })
        );
    }

    #[test]
    fn an_execution_needs_an_alias_or_a_function() {
        let err = NewExecution::target(None, None, VersionRef::from_wire(2)).unwrap_err();
        assert_eq!(
            err.message,
            "Either function_alias or function_id must be provided."
        );
    }

    #[test]
    fn a_function_update_gives_the_fields_it_changes() {
        assert!(FunctionChanges::default().given().is_empty());
        let changes = FunctionChanges {
            timeout: Some(5),
            package: Some(vec![].into()),
            ..FunctionChanges::default()
        };
        assert_eq!(changes.given(), ["timeout", "package"]);
    }

    #[test]
    fn the_code_objects_md5_is_expected_before_a_top_level_one() {
        let changes = FunctionChanges {
            claimed_md5: Some("a".into()),
            md5sum_field: Some("b".into()),
            ..FunctionChanges::default()
        };
        assert_eq!(changes.expected_md5(), Some("a"));
        let changes = FunctionChanges {
            md5sum_field: Some("b".into()),
            ..FunctionChanges::default()
        };
        assert_eq!(changes.expected_md5(), Some("b"));
    }
}
