//! `codebuild`: StartBuild of a project on the change's commit (or, for a pull request of a
//! repository on github.com, `pr/N`, CodeBuild's name for it), with the environment overrides
//! rendered as plain text and the start id as the idempotency token. The run is the build id.

use super::aws::{Answer, Call, Resource};
use super::read::{ENV_NAME, read_template, required, templates};
use super::{Api, Attempt, Failure, Kind, Run};
use crate::diag::{Diagnostics, MapReader};
use crate::event::ChangeKind;
use crate::template::{Context, Template, Var};
use crate::yaml::Node;

/// `codebuild: {project, source_version, environment}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeBuild {
    pub project: String,
    /// `sourceVersion`; by default the commit, or `pr/N` for a pull request on GitHub.
    pub source_version: Option<Template>,
    pub environment: Vec<(String, Template)>,
}

fn project_name(text: &str) -> bool {
    (2..=255).contains(&text.len())
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// StartBuild of `project`, for messages and hints.
pub(super) fn resource(project: &str) -> Resource<'_> {
    Resource {
        what: format!("StartBuild of project {project:?}"),
        kind: "project",
        name: project,
        action: "codebuild:StartBuild",
        resource: format!("project/{project}"),
        service: "codebuild",
    }
}

impl CodeBuild {
    /// The `sourceVersion` of a build: the target's own template when it has one (left to the
    /// project's default when it renders empty); else, for a pull request of a repository on
    /// github.com, `pr/N`; else the commit.
    pub fn source_version(&self, ctx: &Context<'_>) -> String {
        if let Some(template) = &self.source_version {
            return template.render(ctx);
        }
        let event = ctx.event;
        match &event.pull_request {
            Some(pr)
                if event.kind == ChangeKind::PullRequest
                    && event.repository.as_str().starts_with("github.com/") =>
            {
                format!("pr/{}", pr.number)
            }
            _ => ctx.value(Var::Sha).into_owned(),
        }
    }
}

impl Kind for CodeBuild {
    type Via = Api;

    fn read(value: &Node, what: &str, d: &mut Diagnostics) -> Option<CodeBuild> {
        let m = MapReader::new(value, what, d)?;
        m.deny_unknown(&["project", "source_version", "environment"], what, d);
        let project = required(&m, "project", what, project_name, "my-project", d);
        let source_version = match m.get("source_version") {
            Some(n) => read_template(n, &format!("{what}.source_version"), d).map(Some),
            None => Some(None),
        };
        let environment = templates(&m, "environment", what, ENV_NAME, d);
        if let Some(env) = &environment
            && let Some((name, _)) = env.iter().find(|(n, _)| n.starts_with("CODEBUILD_"))
        {
            d.error(
                m.get("environment").map_or(m.node().pos, |n| n.pos),
                format!("{what}.environment names {name:?}"),
                "CodeBuild keeps names starting with CODEBUILD_ for itself: pick another",
            );
        }
        Some(CodeBuild {
            project: project?,
            source_version: source_version?,
            environment: environment?,
        })
    }

    fn request(&self, a: &Attempt<'_>) -> Result<Call, Failure> {
        let ctx = a.context();
        let version = self.source_version(&ctx);
        Ok(Call::StartBuild {
            project: self.project.clone(),
            source_version: (!version.is_empty()).then_some(version),
            environment: self
                .environment
                .iter()
                .map(|(name, template)| (name.clone(), template.render(&ctx)))
                .collect(),
            idempotency_token: a.start_id.to_owned(),
        })
    }

    fn judge(&self, answer: Answer) -> Result<Run, Failure> {
        resource(&self.project).judge(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChangeEvent, Source, SourceKind};

    fn event(kind: &str, repository: &str) -> ChangeEvent {
        let pull_request = (kind == "pull_request").then(|| {
            serde_json::json!({"number": 42, "action": "opened", "merged": false,
                "base_ref": "refs/heads/main", "base_sha": null,
                "head_sha": "3333333333333333333333333333333333333333"})
        });
        let json = serde_json::json!({
            "schema": "switchyard.change/v1",
            "repository": repository,
            "kind": kind,
            "ref": "refs/heads/feature",
            "before": "1111111111111111111111111111111111111111",
            "after": "2222222222222222222222222222222222222222",
            "changed_paths": [], "changed_paths_complete": false,
            "pull_request": pull_request,
        });
        let source = Source {
            kind: SourceKind::Manual,
            provider: None,
            delivery_id: None,
        };
        ChangeEvent::from_json(json.to_string().as_bytes(), source).expect("a valid event")
    }

    #[test]
    fn a_build_is_of_the_commit_or_of_a_github_pull_request() {
        let default = CodeBuild {
            project: "web".into(),
            source_version: None,
            environment: Vec::new(),
        };
        let custom = CodeBuild {
            source_version: Some(
                Template::parse("refs/heads/${branch}^{${sha}}").expect("template"),
            ),
            ..default.clone()
        };
        let cases = [
            (
                &default,
                "push",
                "github.com/acme/web",
                "2222222222222222222222222222222222222222",
            ),
            (&default, "pull_request", "github.com/acme/web", "pr/42"),
            (
                &default,
                "pull_request",
                "gitlab.com/acme/web",
                "3333333333333333333333333333333333333333",
            ),
            (
                &default,
                "pull_request",
                "codecommit::us-east-1://web",
                "3333333333333333333333333333333333333333",
            ),
            (
                &custom,
                "push",
                "github.com/acme/web",
                "refs/heads/feature^{2222222222222222222222222222222222222222}",
            ),
        ];
        for (target, kind, repository, want) in cases {
            let e = event(kind, repository);
            let ctx = Context {
                event: &e,
                pipeline: "web",
                start_id: "s1",
            };
            assert_eq!(target.source_version(&ctx), want, "{kind} of {repository}");
        }
    }
}
