//! `codepipeline`: StartPipelineExecution of a V2 pipeline on the change's commit. The source
//! action's revision is the commit (`COMMIT_ID`, the head of a pull request), the variables are
//! rendered (one that renders empty is left out, so the pipeline's default applies), and the
//! start id is the client request token: a start attempted again (after a crash between the
//! call and the record of its outcome, or after a lost answer) names the same request. The run
//! is the execution id.

use super::aws::{Answer, Call, Resource};
use super::read::{NameRule, required, templates};
use super::{Api, Attempt, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::template::{Template, Var};
use crate::yaml::Node;

/// `codepipeline: {name, source_action, variables}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodePipeline {
    pub name: String,
    /// The source action whose revision is set to the commit.
    pub source_action: String,
    pub variables: Vec<(String, Template)>,
}

/// A pipeline or action name as CodePipeline allows it.
pub(super) fn aws_name(text: &str) -> bool {
    (1..=100).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

/// StartPipelineExecution of pipeline `name`, for messages and hints.
pub(super) fn resource(name: &str) -> Resource<'_> {
    Resource {
        what: format!("StartPipelineExecution of pipeline {name:?}"),
        kind: "pipeline",
        name,
        action: "codepipeline:StartPipelineExecution",
        resource: name.to_owned(),
        service: "codepipeline",
    }
}

impl Kind for CodePipeline {
    type Via = Api;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<CodePipeline> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["name", "source_action", "variables"], what, d);
        let name = required(&m, "name", what, aws_name, "my-pipeline", d);
        let source_action = required(&m, "source_action", what, aws_name, "Source", d);
        let variables = templates(
            &m,
            "variables",
            what,
            NameRule {
                allowed: |c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_'),
                max_len: 128,
                max_entries: 50,
                shape: "letters, digits, `@`, `-` and `_`",
            },
            d,
        );
        Some(CodePipeline {
            name: name?,
            source_action: source_action?,
            variables: variables?,
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Call, Failure> {
        let ctx = a.context();
        Ok(Call::StartPipelineExecution {
            name: self.name.clone(),
            source_action: self.source_action.clone(),
            commit: ctx.value(Var::Sha).into_owned(),
            variables: self
                .variables
                .iter()
                .map(|(name, template)| (name.clone(), template.render(&ctx)))
                .filter(|(_, value)| !value.is_empty())
                .collect(),
            client_request_token: a.start_id.to_owned(),
        })
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        resource(&self.name).judge(answer)
    }
}
