"""Who ran a gate: the CI system, its run's URL and the person or trigger behind it, from the variables each CI
system sets. Recorded in run-manifest.json (``runner.ci``) and, as Allure's executor.json, in the report.

Variables, per system:

* GitHub Actions: GITHUB_ACTIONS, GITHUB_RUN_ID, GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_ACTOR,
  GITHUB_TRIGGERING_ACTOR (https://docs.github.com/en/actions/reference/variables-reference).
* GitLab CI: GITLAB_CI, CI_PIPELINE_ID, CI_PIPELINE_URL, CI_JOB_URL, GITLAB_USER_LOGIN
  (https://docs.gitlab.com/ci/variables/predefined_variables/).
* Jenkins: JENKINS_URL, BUILD_URL, BUILD_NUMBER, JOB_NAME
  (https://docs.cloudbees.com/docs/cloudbees-ci/2.452.3.2/automating-with-jenkinsfile/working-with-the-env).
  Jenkins itself names no user: BUILD_USER_ID comes from the "build user vars" plugin **[U]**; without it the
  actor is recorded as unknown, never guessed.
* Azure Pipelines: TF_BUILD, BUILD_BUILDID, BUILD_BUILDNUMBER, BUILD_DEFINITIONNAME, BUILD_REQUESTEDFOR,
  SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT (https://learn.microsoft.com/azure/devops/pipelines/build/variables).
  The run URL ``<collection><project>/_build/results?buildId=<id>`` is the form the web UI uses **[U]**.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote


def ci_context(env: Mapping[str, str]) -> dict[str, str | None] | None:
    """The CI system, run URL, build name and actor of this run; None outside the four CI systems known."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server, repo = env.get("GITHUB_SERVER_URL", "https://github.com"), env.get("GITHUB_REPOSITORY", "")
        return {"system": "github", "run_url": f"{server}/{repo}/actions/runs/{env['GITHUB_RUN_ID']}",
                "build": f"{env.get('GITHUB_WORKFLOW', 'workflow')} #{env.get('GITHUB_RUN_NUMBER', env['GITHUB_RUN_ID'])}",
                "actor": env.get("GITHUB_TRIGGERING_ACTOR") or env.get("GITHUB_ACTOR")}
    if env.get("GITLAB_CI") == "true" and env.get("CI_PIPELINE_ID"):
        return {"system": "gitlab", "run_url": env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL"),
                "build": f"{env.get('CI_PROJECT_PATH', 'project')} pipeline "
                         f"#{env.get('CI_PIPELINE_IID', env['CI_PIPELINE_ID'])}",
                "actor": env.get("GITLAB_USER_LOGIN")}
    if env.get("JENKINS_URL") and env.get("BUILD_NUMBER"):
        return {"system": "jenkins", "run_url": env.get("BUILD_URL"),
                "build": f"{env.get('JOB_NAME', 'job')} #{env['BUILD_NUMBER']}",
                "actor": env.get("BUILD_USER_ID")}
    if env.get("TF_BUILD", "").lower() == "true" and env.get("BUILD_BUILDID"):
        collection, project = env.get("SYSTEM_COLLECTIONURI", ""), env.get("SYSTEM_TEAMPROJECT", "")
        url = (f"{collection.rstrip('/')}/{quote(project)}/_build/results?buildId={env['BUILD_BUILDID']}"
               if collection and project else None)
        return {"system": "azure-pipelines", "run_url": url,
                "build": f"{env.get('BUILD_DEFINITIONNAME', 'pipeline')} {env.get('BUILD_BUILDNUMBER', '')}".strip(),
                "actor": env.get("BUILD_REQUESTEDFOR")}
    return None
