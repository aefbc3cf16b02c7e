//! The targets of `start:`: every kind a pipeline can be started by ([`Start`]), and the runner
//! targets (`codepipeline`, `codebuild`, `github_actions`, `gitlab`, `buildkite`, `jenkins`):
//! their validated definitions and how they are read from a pipeline file, with a position and a
//! hint for every mistake (`exec`, `http`, `eventbridge` and `sqs` are read by `pipeline`).
//!
//! Pure, like the rest of the definitions: values that vary per start are [`Template`]s, parsed
//! here so that `check` reports an unknown `${name}`; credentials are [`SecretRef`]s, resolved by
//! the dispatcher at each attempt.

use crate::diag::{Diagnostics, MapReader, scalar};
use crate::secret::{self, SecretRef};
use crate::template::{Template, Var};
use crate::yaml::{Node, Value};

/// How a pipeline is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Run a program: argv as given, never through a shell.
    Exec { argv: Vec<String> },
    /// POST the start to a runner's HTTP API, signed when a secret is set.
    Http {
        url: String,
        secret: Option<SecretRef>,
    },
    /// PutEvents on an EventBridge bus.
    EventBridge { bus: String, detail_type: String },
    /// SendMessage to an SQS queue.
    Sqs { queue_url: String },
    /// StartPipelineExecution of a CodePipeline V2 pipeline on the commit.
    CodePipeline(CodePipeline),
    /// StartBuild of a CodeBuild project on the commit.
    CodeBuild(CodeBuild),
    /// A GitHub Actions `workflow_dispatch` or `repository_dispatch`.
    GithubActions(GithubActions),
    /// A GitLab pipeline trigger.
    Gitlab(Gitlab),
    /// A Buildkite build.
    Buildkite(Buildkite),
    /// A Jenkins job's build.
    Jenkins(Jenkins),
}

impl Target {
    /// The target's key in `start:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Exec { .. } => "exec",
            Target::Http { .. } => "http",
            Target::EventBridge { .. } => "eventbridge",
            Target::Sqs { .. } => "sqs",
            Target::CodePipeline(_) => "codepipeline",
            Target::CodeBuild(_) => "codebuild",
            Target::GithubActions(_) => "github_actions",
            Target::Gitlab(_) => "gitlab",
            Target::Buildkite(_) => "buildkite",
            Target::Jenkins(_) => "jenkins",
        }
    }
}

/// `codepipeline`: StartPipelineExecution of a V2 pipeline on the change's commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodePipeline {
    pub name: String,
    /// The source action whose revision is set to the commit.
    pub source_action: String,
    pub variables: Vec<(String, Template)>,
}

/// `codebuild`: StartBuild of a project on the change's commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeBuild {
    pub project: String,
    /// `sourceVersion`; by default the commit, or `pr/N` for a pull request on GitHub.
    pub source_version: Option<Template>,
    pub environment: Vec<(String, Template)>,
}

/// `github_actions`: a `workflow_dispatch` or a `repository_dispatch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubActions {
    /// The REST API's root: `https://api.github.com`, or a GitHub Enterprise Server's `/api/v3`.
    pub api_url: String,
    /// `OWNER/NAME`.
    pub repository: String,
    pub token: SecretRef,
    pub dispatch: GithubDispatch,
}

/// Which dispatch a `github_actions` target sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GithubDispatch {
    /// `POST /repos/{repository}/actions/workflows/{workflow}/dispatches`.
    Workflow {
        /// The workflow file name (`deploy.yml`) or its id.
        workflow: String,
        git_ref: Template,
        inputs: Vec<(String, Template)>,
    },
    /// `POST /repos/{repository}/dispatches`.
    Repository {
        event_type: Template,
        client_payload: Vec<(String, Template)>,
    },
}

/// `gitlab`: the pipeline trigger API (`POST /projects/:id/trigger/pipeline`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gitlab {
    /// The instance, e.g. `https://gitlab.com`.
    pub url: String,
    /// The project's numeric id or its path (`group/project`).
    pub project: String,
    /// A pipeline trigger token.
    pub token: SecretRef,
    pub git_ref: Template,
    pub variables: Vec<(String, Template)>,
}

/// `buildkite`: create a build (`POST /v2/organizations/{org}/pipelines/{pipeline}/builds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buildkite {
    pub api_url: String,
    pub organization: String,
    pub pipeline: String,
    pub token: SecretRef,
    pub commit: Template,
    pub branch: Template,
    pub message: Template,
    pub env: Vec<(String, Template)>,
    pub meta_data: Vec<(String, Template)>,
}

/// `jenkins`: `buildWithParameters` (or `build` without parameters) with a user's API token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jenkins {
    pub url: String,
    /// The job's full name, folders separated by `/`.
    pub job: String,
    pub user: String,
    pub token: SecretRef,
    pub parameters: Vec<(String, Template)>,
}

/// The keys of `start:` that name a runner target.
pub const KEYS: &[&str] = &[
    "codepipeline",
    "codebuild",
    "github_actions",
    "gitlab",
    "buildkite",
    "jenkins",
];

/// `${branch}${tag}`: the branch or tag name of the ref (one of them is always empty), what
/// GitLab's `ref` and Buildkite's `branch` expect.
fn branch_or_tag() -> Template {
    Template::parse("${branch}${tag}").expect("a valid template")
}

/// Reads one template value; `what` names it in messages.
pub fn read_template(node: &Node, what: &str, d: &mut Diagnostics) -> Option<Template> {
    let text = template_text(node, what, d)?;
    match Template::parse(text) {
        Ok(t) => Some(t),
        Err(e) => {
            d.error(node.pos, format!("{what}: {}", e.message), e.hint);
            None
        }
    }
}

/// A scalar of any kind (a number or `true` is its text), but not a list, a mapping or nothing.
fn template_text<'n>(node: &'n Node, what: &str, d: &mut Diagnostics) -> Option<&'n str> {
    match &node.value {
        Value::Scalar(s, _) if !node.is_null() => Some(s),
        _ => {
            d.error(
                node.pos,
                format!("{what} must be a single value, found {}", node.kind_name()),
                format!("write {what} as text; `${{sha}}` and the other names are filled in at each start"),
            );
            None
        }
    }
}

/// How the names of a map of templates are checked.
#[derive(Clone, Copy)]
struct NameRule {
    /// Whether a character may appear in a name.
    allowed: fn(char) -> bool,
    max_len: usize,
    /// The most entries the runner accepts.
    max_entries: usize,
    /// What a valid name looks like, for the hint.
    shape: &'static str,
}

const ENV_NAME: NameRule = NameRule {
    allowed: |c| c.is_ascii_alphanumeric() || c == '_',
    max_len: 255,
    max_entries: 100,
    shape: "letters, digits and `_`",
};

const ANY_NAME: NameRule = NameRule {
    allowed: |c| !c.is_control(),
    max_len: 255,
    max_entries: 100,
    shape: "text without control characters",
};

/// Reads `NAME: TEMPLATE` entries.
fn read_templates(
    node: &Node,
    what: &str,
    rule: NameRule,
    d: &mut Diagnostics,
) -> Option<Vec<(String, Template)>> {
    let Value::Map(entries) = &node.value else {
        d.error(
            node.pos,
            format!(
                "{what} must be a mapping of names to values, found {}",
                node.kind_name()
            ),
            format!("write {what} as `NAME: value` lines"),
        );
        return None;
    };
    let before = d.error_count();
    if entries.len() > rule.max_entries {
        d.error(
            node.pos,
            format!(
                "{what} has {} entries, more than the {} the runner accepts",
                entries.len(),
                rule.max_entries
            ),
            "the runner would refuse the start: pass fewer values",
        );
    }
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Some(name) = key.as_str().filter(|_| !key.is_null()) else {
            d.error(
                key.pos,
                format!("{what} has a name that is not text"),
                "names are text",
            );
            continue;
        };
        if name.is_empty() || name.len() > rule.max_len || !name.chars().all(rule.allowed) {
            d.error(
                key.pos,
                format!("{what} name {name:?} is not valid"),
                format!("use {}, at most {} characters", rule.shape, rule.max_len),
            );
            continue;
        }
        if out.iter().any(|(n, _)| n == name) {
            d.error(key.pos, format!("{what} names {name:?} twice"), "keep one");
            continue;
        }
        if let Some(t) = read_template(value, &format!("{what}.{name}"), d) {
            out.push((name.to_owned(), t));
        }
    }
    (d.error_count() == before).then_some(out)
}

/// An optional map of templates (empty when absent).
fn templates(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    rule: NameRule,
    d: &mut Diagnostics,
) -> Option<Vec<(String, Template)>> {
    match m.get(key) {
        Some(n) => read_templates(n, &format!("{what}.{key}"), rule, d),
        None => Some(Vec::new()),
    }
}

/// An optional template, `default` when absent.
fn template_or(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    default: Template,
    d: &mut Diagnostics,
) -> Option<Template> {
    match m.get(key) {
        Some(n) => read_template(n, &format!("{what}.{key}"), d),
        None => Some(default),
    }
}

/// A required plain value matching `valid`; `example` shows a good one.
fn required(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    valid: fn(&str) -> bool,
    example: &str,
    d: &mut Diagnostics,
) -> Option<String> {
    let Some(node) = m.get(key) else {
        d.error(
            m.node().pos,
            format!("{what} needs `{key}`"),
            format!("add `{key}: {example}`"),
        );
        return None;
    };
    let text = scalar(node, &format!("{what}.{key}"), d)?;
    if !valid(text) {
        d.error(
            node.pos,
            format!("{what}.{key} {text:?} is not valid"),
            format!("write it like `{key}: {example}`"),
        );
        return None;
    }
    Some(text.to_owned())
}

/// The credential of a target: required, and only as a reference.
fn token(
    m: &MapReader<'_>,
    key: &str,
    what: &str,
    example: &str,
    d: &mut Diagnostics,
) -> Option<SecretRef> {
    let Some(node) = m.get(key) else {
        d.error(
            m.node().pos,
            format!("{what} needs `{key}`, the credential it starts with"),
            format!("add `{key}: {example}`; the value is read from there at each start and never logged"),
        );
        return None;
    };
    secret::read_ref(node, &format!("{what}.{key}"), d)
}

fn url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
    })
}

fn aws_name(text: &str) -> bool {
    (1..=100).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

fn codebuild_project(text: &str) -> bool {
    (2..=255).contains(&text.len())
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

fn slug(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn owner_name(text: &str) -> bool {
    text.split_once('/')
        .is_some_and(|(owner, name)| slug(owner) && slug(name))
}

fn path_of_slugs(text: &str) -> bool {
    !text.starts_with('/') && !text.ends_with('/') && text.split('/').all(slug)
}

/// A Jenkins job's full name: folders and the job separated by `/`; a name may hold spaces (each
/// part is percent-encoded in the URL).
fn job_path(text: &str) -> bool {
    text.split('/').all(|part| {
        !part.trim().is_empty()
            && part != "."
            && part != ".."
            && !part.chars().any(char::is_control)
    })
}

fn nonempty(text: &str) -> bool {
    !text.trim().is_empty() && !text.chars().any(char::is_control)
}

/// Reads the target under `key` (one of [`KEYS`]). `what` is `start.KEY`.
pub fn read(key: &str, value: &Node, d: &mut Diagnostics) -> Option<Target> {
    let what = format!("start.{key}");
    let what = what.as_str();
    let m = MapReader::new(value, what, d)?;
    let before = d.error_count();
    let start = match key {
        "codepipeline" => {
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
            Target::CodePipeline(CodePipeline {
                name: name?,
                source_action: source_action?,
                variables: variables?,
            })
        }
        "codebuild" => {
            m.deny_unknown(&["project", "source_version", "environment"], what, d);
            let project = required(&m, "project", what, codebuild_project, "my-project", d);
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
            Target::CodeBuild(CodeBuild {
                project: project?,
                source_version: source_version?,
                environment: environment?,
            })
        }
        "github_actions" => read_github(&m, what, d)?,
        "gitlab" => {
            m.deny_unknown(&["url", "project", "token", "ref", "variables"], what, d);
            let url = required(&m, "url", what, url, "https://gitlab.com", d);
            let project = required(&m, "project", what, path_of_slugs, "acme/api", d);
            let token = token(&m, "token", what, "env:GITLAB_TRIGGER_TOKEN", d);
            let git_ref = template_or(&m, "ref", what, branch_or_tag(), d);
            let variables = templates(&m, "variables", what, ENV_NAME, d);
            Target::Gitlab(Gitlab {
                url: url?.trim_end_matches('/').to_owned(),
                project: project?,
                token: token?,
                git_ref: git_ref?,
                variables: variables?,
            })
        }
        "buildkite" => {
            let keys = [
                "organization",
                "pipeline",
                "token",
                "commit",
                "branch",
                "message",
                "env",
                "meta_data",
                "api_url",
            ];
            m.deny_unknown(&keys, what, d);
            let organization = required(&m, "organization", what, slug, "acme", d);
            let pipeline = required(&m, "pipeline", what, slug, "api", d);
            let token = token(&m, "token", what, "env:BUILDKITE_API_TOKEN", d);
            let api_url = match m.get("api_url") {
                Some(_) => required(&m, "api_url", what, url, "https://api.buildkite.com", d),
                None => Some("https://api.buildkite.com".to_owned()),
            };
            let commit = template_or(&m, "commit", what, Template::var(Var::Sha), d);
            let branch = template_or(&m, "branch", what, branch_or_tag(), d);
            let message = template_or(
                &m,
                "message",
                what,
                Template::parse("${repository} ${ref} (switchyard ${start_id})")
                    .expect("a valid template"),
                d,
            );
            let env = templates(&m, "env", what, ENV_NAME, d);
            let meta_data = templates(&m, "meta_data", what, ANY_NAME, d);
            Target::Buildkite(Buildkite {
                api_url: api_url?.trim_end_matches('/').to_owned(),
                organization: organization?,
                pipeline: pipeline?,
                token: token?,
                commit: commit?,
                branch: branch?,
                message: message?,
                env: env?,
                meta_data: meta_data?,
            })
        }
        "jenkins" => {
            m.deny_unknown(&["url", "job", "user", "token", "parameters"], what, d);
            let url = required(&m, "url", what, url, "https://jenkins.example.com", d);
            let job = required(&m, "job", what, job_path, "folder/api", d);
            let user = required(&m, "user", what, nonempty, "ci-bot", d);
            let token = token(&m, "token", what, "env:JENKINS_API_TOKEN", d);
            let parameters = templates(&m, "parameters", what, ANY_NAME, d);
            Target::Jenkins(Jenkins {
                url: url?.trim_end_matches('/').to_owned(),
                job: job?,
                user: user?,
                token: token?,
                parameters: parameters?,
            })
        }
        _ => return None,
    };
    (d.error_count() == before).then_some(start)
}

fn read_github(m: &MapReader<'_>, what: &str, d: &mut Diagnostics) -> Option<Target> {
    let keys = [
        "repository",
        "workflow",
        "ref",
        "inputs",
        "event_type",
        "client_payload",
        "token",
        "api_url",
    ];
    m.deny_unknown(&keys, what, d);
    let repository = required(m, "repository", what, owner_name, "acme/api", d);
    let token = token(m, "token", what, "env:GITHUB_TOKEN", d);
    let api_url = match m.get("api_url") {
        Some(_) => required(
            m,
            "api_url",
            what,
            url,
            "https://github.example.com/api/v3",
            d,
        ),
        None => Some("https://api.github.com".to_owned()),
    };
    let workflow_keys = ["workflow", "ref", "inputs"];
    let dispatch_keys = ["event_type", "client_payload"];
    let has = |keys: &[&str]| keys.iter().find_map(|k| m.entry(k));
    let dispatch = match (has(&workflow_keys), has(&dispatch_keys)) {
        (Some(_), Some((key, _))) => {
            d.error(
                key.pos,
                format!("{what} mixes a workflow_dispatch (`workflow`) and a repository_dispatch (`event_type`)"),
                "keep `workflow` (with `ref`, `inputs`) or `event_type` (with `client_payload`)",
            );
            None
        }
        (None, Some(_)) => {
            let event_type = match m.get("event_type") {
                Some(n) => read_template(n, &format!("{what}.event_type"), d),
                None => {
                    d.error(
                        m.node().pos,
                        format!("{what} has `client_payload` but no `event_type`"),
                        "add `event_type: deploy`, the type the workflow's `on: repository_dispatch` lists",
                    );
                    None
                }
            };
            let client_payload = templates(
                m,
                "client_payload",
                what,
                NameRule {
                    max_entries: 10,
                    ..ANY_NAME
                },
                d,
            );
            Some(GithubDispatch::Repository {
                event_type: event_type?,
                client_payload: client_payload?,
            })
        }
        (_, None) => {
            let workflow = required(
                m,
                "workflow",
                what,
                |w| slug(w) && !w.contains(".."),
                "deploy.yml",
                d,
            );
            let git_ref = template_or(m, "ref", what, Template::var(Var::Ref), d);
            let inputs = templates(
                m,
                "inputs",
                what,
                NameRule {
                    max_entries: 25,
                    ..ANY_NAME
                },
                d,
            );
            Some(GithubDispatch::Workflow {
                workflow: workflow?,
                git_ref: git_ref?,
                inputs: inputs?,
            })
        }
    };
    Some(Target::GithubActions(GithubActions {
        api_url: api_url?.trim_end_matches('/').to_owned(),
        repository: repository?,
        token: token?,
        dispatch: dispatch?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> (Option<Target>, Vec<String>) {
        let node = crate::yaml::parse(text).expect("yaml");
        let Value::Map(entries) = &node.value else {
            panic!("a mapping");
        };
        let (key, value) = &entries[0];
        let mut d = Diagnostics::new("t.yaml");
        let start = read(key.as_str().expect("a key"), value, &mut d);
        let messages = d.items.iter().map(|x| x.message.clone()).collect();
        (start, messages)
    }

    #[test]
    fn defaults_fill_what_a_runner_needs() {
        let (start, errors) =
            read_text("buildkite: {organization: acme, pipeline: api, token: env:T}\n");
        assert!(errors.is_empty(), "{errors:?}");
        let Some(Target::Buildkite(b)) = start else {
            panic!("{start:?}");
        };
        assert_eq!(b.api_url, "https://api.buildkite.com");
        assert_eq!(b.commit.to_string(), "${sha}");
        assert_eq!(b.branch.to_string(), "${branch}${tag}");

        let (start, errors) =
            read_text("github_actions: {repository: acme/api, workflow: ci.yml, token: env:T}\n");
        assert!(errors.is_empty(), "{errors:?}");
        let Some(Target::GithubActions(g)) = start else {
            panic!("{start:?}");
        };
        assert_eq!(g.api_url, "https://api.github.com");
        let GithubDispatch::Workflow { git_ref, .. } = g.dispatch else {
            panic!("a workflow dispatch");
        };
        assert_eq!(git_ref.to_string(), "${ref}");

        let (start, errors) = read_text(
            "jenkins: {url: \"https://ci.example.com/\", job: \"Team A/api build\", user: bot, token: file:/run/t}\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let Some(Target::Jenkins(j)) = start else {
            panic!("{start:?}");
        };
        assert_eq!(j.url, "https://ci.example.com");
        assert_eq!(j.job, "Team A/api build");
    }

    #[test]
    fn runner_limits_are_checked() {
        let many: Vec<String> = (0..11).map(|i| format!("k{i}: v")).collect();
        let text = format!(
            "github_actions: {{repository: acme/api, event_type: deploy, token: env:T, client_payload: {{{}}}}}\n",
            many.join(", ")
        );
        let (start, errors) = read_text(&text);
        assert!(start.is_none());
        assert!(
            errors
                .iter()
                .any(|e| e.contains("11 entries, more than the 10")),
            "{errors:?}"
        );
        let (start, errors) = read_text("gitlab: {url: \"ftp://x\", project: /a, token: env:T}\n");
        assert!(start.is_none());
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
