//! The runner APIs' own checks: routing, each endpoint's refusals and answers, scripts.

use super::*;

/// A request (path, headers, body) and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

#[test]
fn paths_name_their_endpoint_and_resource() {
    let cases = [
        (
            "/repos/acme/api/actions/workflows/deploy.yml/dispatches",
            Some((Api::GithubWorkflow, "acme/api/deploy.yml")),
        ),
        (
            "/repos/acme/api/dispatches",
            Some((Api::GithubRepository, "acme/api")),
        ),
        (
            "/api/v4/projects/acme%2Fapi/trigger/pipeline",
            Some((Api::Gitlab, "acme/api")),
        ),
        (
            "/api/v4/projects/42/trigger/pipeline",
            Some((Api::Gitlab, "42")),
        ),
        (
            "/v2/organizations/acme/pipelines/api/builds",
            Some((Api::Buildkite, "acme/api")),
        ),
        (
            "/job/folder/job/api/buildWithParameters",
            Some((Api::Jenkins, "folder/api")),
        ),
        ("/job/api/build", Some((Api::Jenkins, "api"))),
        ("/job/folder/api/build", None),
        ("/repos/acme/api/actions/runs", None),
    ];
    for (path, want) in cases {
        let want = want.map(|(a, r)| (a, r.to_owned()));
        assert_eq!(route(path), want, "{path}");
    }
}

async fn post(
    apis: &RunnerApis,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate::http::request(apis.addr(), "POST", path, &headers, body.into()).await
}

#[tokio::test]
async fn each_endpoint_checks_its_request_and_answers_with_the_run() {
    let apis = RunnerApis::start().await.expect("server");
    apis.add(Api::GithubWorkflow, "acme/api/deploy.yml");
    apis.add(Api::Gitlab, "acme/api");
    apis.add(Api::Buildkite, "acme/api");
    apis.add(Api::Jenkins, "folder/api");
    let gh = format!("Bearer {GITHUB_TOKEN}");
    let gh_headers = [
        ("user-agent", "t"),
        ("authorization", gh.as_str()),
        ("content-type", "application/json"),
    ];
    let workflow = "/repos/acme/api/actions/workflows/deploy.yml/dispatches";
    let form = "application/x-www-form-urlencoded";
    let gitlab = "/api/v4/projects/acme%2Fapi/trigger/pipeline";
    let bk = format!("Bearer {BUILDKITE_TOKEN}");
    let bk_headers = [
        ("authorization", bk.as_str()),
        ("content-type", "application/json"),
    ];
    let builds = "/v2/organizations/acme/pipelines/api/builds";
    let jenkins_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{JENKINS_USER}:{JENKINS_TOKEN}"))
    );
    let jenkins = "/job/folder/job/api/buildWithParameters";
    let gitlab_ok = format!("token={GITLAB_TOKEN}&ref=main&variables%5BSHA%5D=abc");
    let gitlab_no_ref = format!("token={GITLAB_TOKEN}");
    let gitlab_other = format!("token={GITLAB_TOKEN}&ref=main");
    // (path, headers, body, the status expected)
    let cases: Vec<Case<'_>> = vec![
        (
            workflow,
            gh_headers.to_vec(),
            r#"{"ref":"main","inputs":{"a":"b"},"return_run_details":true}"#,
            200,
        ),
        (workflow, gh_headers.to_vec(), r#"{"ref":"main"}"#, 204),
        (workflow, gh_headers.to_vec(), r#"{"inputs":{}}"#, 422),
        (
            workflow,
            gh_headers.to_vec(),
            r#"{"ref":"main","inputs":{"n":1}}"#,
            422,
        ),
        (workflow, gh_headers[..2].to_vec(), r#"{"ref":"main"}"#, 400),
        (
            workflow,
            vec![("user-agent", "t"), ("content-type", "application/json")],
            "{}",
            401,
        ),
        (
            workflow,
            vec![("user-agent", "t"), ("authorization", "Bearer nope")],
            "{}",
            401,
        ),
        (workflow, vec![("authorization", gh.as_str())], "{}", 403),
        (
            "/repos/acme/other/actions/workflows/deploy.yml/dispatches",
            gh_headers.to_vec(),
            r#"{"ref":"main"}"#,
            404,
        ),
        (gitlab, vec![("content-type", form)], &gitlab_ok, 201),
        (
            gitlab,
            vec![("content-type", form)],
            "token=wrong&ref=main",
            404,
        ),
        (gitlab, vec![("content-type", form)], &gitlab_no_ref, 400),
        (gitlab, vec![("content-type", form)], "ref=main", 400),
        (
            "/api/v4/projects/acme%2Fother/trigger/pipeline",
            vec![("content-type", form)],
            &gitlab_other,
            404,
        ),
        (
            builds,
            bk_headers.to_vec(),
            r#"{"commit":"abc","branch":"main"}"#,
            201,
        ),
        (builds, bk_headers.to_vec(), r#"{"commit":"abc"}"#, 422),
        (
            builds,
            bk_headers.to_vec(),
            r#"{"commit":"abc","branch":"main","env":{"N":1}}"#,
            422,
        ),
        (
            builds,
            vec![("content-type", "application/json")],
            r#"{"commit":"abc","branch":"main"}"#,
            401,
        ),
        (
            "/v2/organizations/acme/pipelines/other/builds",
            bk_headers.to_vec(),
            r#"{"commit":"abc","branch":"main"}"#,
            404,
        ),
        (
            jenkins,
            vec![
                ("authorization", jenkins_auth.as_str()),
                ("content-type", form),
            ],
            "SHA=abc",
            201,
        ),
        (jenkins, vec![("content-type", form)], "SHA=abc", 401),
        (
            "/job/folder/job/other/buildWithParameters",
            vec![("authorization", jenkins_auth.as_str())],
            "",
            404,
        ),
        ("/nowhere", vec![], "", 404),
    ];
    for (path, headers, body, want) in &cases {
        let (status, text) = post(&apis, path, headers, body).await;
        assert_eq!(status, *want, "{path} {headers:?} {body}: {text}");
    }
    let calls = apis.calls();
    assert_eq!(calls.len(), cases.len(), "every request is recorded");
    assert_eq!(calls[0].reply.status, 200);
    let details: Value = serde_json::from_str(&calls[0].reply.body).expect("json");
    assert!(
        details["html_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://github.com/acme/api/actions/runs/")),
        "{details}"
    );
    assert_eq!(calls[9].field("variables[SHA]").as_deref(), Some("abc"));
    let pipeline: Value = serde_json::from_str(&calls[9].reply.body).expect("json");
    assert!(
        pipeline["web_url"]
            .as_str()
            .is_some_and(|u| u.contains("/acme/api/-/pipelines/")),
        "{pipeline}"
    );
    let build: Value = serde_json::from_str(&calls[14].reply.body).expect("json");
    assert!(
        build["web_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://buildkite.com/acme/api/builds/")),
        "{build}"
    );
    let location = calls[19].reply.header_value("location").expect("Location");
    assert!(
        location.starts_with(&format!("{}/queue/item/", apis.url())),
        "{location}"
    );
}

#[tokio::test]
async fn a_script_answers_first_then_the_endpoint_behaves() {
    let apis = RunnerApis::start().await.expect("server");
    apis.add(Api::Jenkins, "api");
    apis.script(
        Api::Jenkins,
        "api",
        [
            Reply::status(429).header("Retry-After", "2"),
            Reply::status(400).body("no").echoing(),
        ],
    );
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{JENKINS_USER}:{JENKINS_TOKEN}"))
    );
    let headers = [("authorization", auth.as_str())];
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post(&apis, "/job/api/build", &headers, "").await);
    }
    assert_eq!(statuses[0].0, 429);
    assert_eq!(statuses[1].0, 400);
    let echoed: Value = serde_json::from_str(&statuses[1].1).expect("json");
    assert_eq!(
        echoed["credential"],
        format!("{JENKINS_USER}:{JENKINS_TOKEN}")
    );
    assert_eq!(echoed["message"], "no");
    assert_eq!(statuses[2].0, 201);
    let calls = apis.calls_to(Api::Jenkins, "api");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].reply.header_value("retry-after"), Some("2"));
}
