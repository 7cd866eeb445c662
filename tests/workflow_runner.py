"""Run a GitHub Actions job locally: the `run:` steps for real, in order, the `uses:` steps simulated.

Enough of the runner to catch a broken step before GitHub does:

- the `${{ }}` expression language (workflow_expressions.py) in `if:`, `env:`, `with:`,
  `working-directory:` and composite action outputs; `if:` without a status function means
  `success() && (...)`, as on GitHub;
- `run:` steps in bash with GitHub's flags (`bash -e {0}` by default, `bash --noprofile --norc -eo
  pipefail {0}` for `shell: bash`), the variables GitHub sets (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH,
  GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH, GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_ACTION_PATH, ...), each
  file fresh per step and read back afterwards;
- local composite actions (`uses: ./`): inputs with defaults, their own steps context, outputs;
- the few marketplace actions the workflows use, simulated (workflow_actions.py): checkout clones the
  test's origin repository, setup-python puts the test's interpreter first on PATH (its `pip install`
  a no-op: the project is already installed), upload-artifact copies files and sets
  artifact-id/artifact-url.

Any other `uses:` fails the run, so a new action cannot slip past untested.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from workflow_actions import SimulatedActions
from workflow_expressions import condition_holds, interpolate, to_string, truthy

# --------------------------------------------------------------------------------------------------
# Runner


@dataclass
class StepResult:
    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    kind: str  # run | uses
    uses: str | None = None
    with_: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    script: str | None = None
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    scope: str = "job"  # "job" or the composite action's path


@dataclass
class JobResult:
    status: str  # success | failure | skipped
    steps: list[StepResult]
    summary: str
    artifacts: dict[str, dict[str, Any]]

    def step(self, name: str, scope: str | None = None) -> StepResult:
        found = [s for s in self.steps if s.name == name and (scope is None or s.scope == scope)]
        assert len(found) == 1, f"{len(found)} steps named {name!r}: {[s.name for s in self.steps]}"
        return found[0]

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps)

    @property
    def output(self) -> str:
        return "".join(s.stdout + s.stderr for s in self.steps)

    def annotations(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if re.match(r"::(error|warning|notice)\b", line)]


_SHA_PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40})$")


def parse_output_file(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV syntax: `name=value` lines and `name<<DELIMITER` blocks."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        heredoc = line.find("<<")
        equals = line.find("=")
        if heredoc != -1 and (equals == -1 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2:]
            body = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise AssertionError(f"unterminated {delimiter!r} block for {name!r}")
            i += 1
            values[name] = "\n".join(body)
        elif equals != -1:
            values[line[:equals]] = line[equals + 1:]
        else:
            raise AssertionError(f"invalid line in an output/env file: {line!r}")
    return values


class WorkflowRunner(SimulatedActions):
    """One runner machine: a workspace, RUNNER_TEMP, a home, a PATH with a fake `gh`."""

    def __init__(self, root: Path, *, project: Path, origin: Path, event_name: str, event: dict[str, Any],
                 repository: str = "acme/marketo-leads", ref: str = "refs/heads/main", sha: str | None = None,
                 actor: str = "octocat", secrets: Mapping[str, str] | None = None, checkout_ref: str = "main",
                 extra_path: list[Path] | None = None, env: Mapping[str, str] | None = None,
                 run_id: int = 4242, before_step: Callable[[str, "WorkflowRunner"], None] | None = None):
        self.root = root
        self.project = project
        self.origin = origin
        self.workspace = root / "work" / repository.split("/")[1]
        self.temp = root / "runner-temp"
        self.home = root / "home"
        self.artifact_dir = root / "artifacts"
        self.tool_bin = root / "toolcache-python" / "bin"
        for d in (self.workspace, self.temp, self.home, self.artifact_dir, self.tool_bin):
            d.mkdir(parents=True, exist_ok=True)
        self.event_path = root / "event.json"
        self.event_path.write_text(json.dumps(event), encoding="utf-8")
        self.event_name = event_name
        self.event = event
        self.repository = repository
        self.ref = ref
        self.sha = sha or "0" * 40
        self.actor = actor
        self.secrets = dict(secrets or {})
        self.checkout_ref = checkout_ref
        self.extra_path = [str(p) for p in (extra_path or [])]
        self.extra_env = dict(env or {})
        self.run_id = run_id
        self.before_step = before_step
        self.path_additions: list[str] = []
        self.env_additions: dict[str, str] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.summary_parts: list[str] = []
        self.results: list[StepResult] = []
        self.pip_log = root / "pip-installs.log"
        self._counter = 0
        self._write_python_shims()

    # -- the simulated tool cache ---------------------------------------------------------------------

    def _write_python_shims(self) -> None:
        """What setup-python puts on PATH: `python`/`python3`/`pip` for this interpreter, and `reconcile`
        as `pip install` would have installed it. `python -m pip install ...` is logged, not run."""
        python = sys.executable
        shim = textwrap.dedent(f"""\
            #!/bin/bash
            if [ "${{1:-}}" = "-m" ] && [ "${{2:-}}" = "pip" ] && [ "${{3:-}}" = "install" ]; then
              printf '%s\\n' "$*" >> {str(self.pip_log)!r}
              echo "(simulated) pip $*: the project is already installed in the test's environment"
              exit 0
            fi
            exec {python!r} "$@"
            """)
        for name in ("python", "python3"):
            path = self.tool_bin / name
            path.write_text(shim, encoding="utf-8")
            path.chmod(0o755)
        reconcile = self.tool_bin / "reconcile"
        reconcile.write_text(f"#!/bin/bash\nexec {python!r} -m reconcile \"$@\"\n", encoding="utf-8")
        reconcile.chmod(0o755)

    # -- contexts -----------------------------------------------------------------------------------

    def github_context(self, action_path: str | None = None) -> dict[str, Any]:
        return {
            "event": self.event, "event_name": self.event_name, "event_path": str(self.event_path),
            "repository": self.repository, "repository_owner": self.repository.split("/")[0],
            "ref": self.ref, "ref_name": self.ref.rsplit("/", 1)[-1] if self.ref.startswith("refs/heads/") else self.ref,
            "sha": self.sha, "actor": self.actor, "triggering_actor": self.actor, "run_id": str(self.run_id),
            "run_number": "17", "run_attempt": "1", "token": "ghs_faketoken0123456789", "workspace": str(self.workspace),
            "server_url": "https://github.com", "api_url": "https://api.github.com", "action_path": action_path,
            "job": "job", "workflow": "workflow",
        }

    def base_env(self) -> dict[str, str]:
        github = self.github_context()
        path = self.path_additions[::-1] + self.extra_path + ["/usr/bin", "/bin"]
        env = {
            "PATH": os.pathsep.join(path), "HOME": str(self.home), "LANG": "C.UTF-8", "CI": "true",
            "GIT_CONFIG_NOSYSTEM": "1", "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_EVENT_PATH": str(self.event_path),
            "GITHUB_EVENT_NAME": self.event_name, "GITHUB_REPOSITORY": self.repository,
            "GITHUB_REPOSITORY_OWNER": github["repository_owner"], "GITHUB_REF": self.ref,
            "GITHUB_REF_NAME": github["ref_name"], "GITHUB_SHA": self.sha, "GITHUB_ACTOR": self.actor,
            "GITHUB_RUN_ID": str(self.run_id), "GITHUB_RUN_NUMBER": "17", "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": "https://api.github.com",
            "RUNNER_TEMP": str(self.temp), "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
        }
        env.update(self.extra_env)
        env.update(self.env_additions)
        return env

    def context(self, env: Mapping[str, str], steps: Mapping[str, Any], inputs: Mapping[str, Any] | None,
                action_path: str | None = None) -> dict[str, Any]:
        return {"github": self.github_context(action_path), "env": dict(env), "secrets": self.secrets,
                "steps": steps, "inputs": dict(inputs or {}), "vars": {},
                "runner": {"temp": str(self.temp), "os": "Linux", "arch": "X64", "name": "local"},
                "job": {"status": "success"}, "matrix": {}, "strategy": {}}

    # -- jobs ---------------------------------------------------------------------------------------

    def run_job(self, workflow_file: Path, job_id: str) -> JobResult:
        workflow = yaml.safe_load(workflow_file.read_text(encoding="utf-8"))
        job = workflow["jobs"][job_id]
        wf_env = {k: to_string(v) for k, v in (workflow.get("env") or {}).items()}
        ctx = self.context({**self.base_env(), **wf_env}, {}, None)
        if not condition_holds(job.get("if"), ctx, failed=False):
            return JobResult("skipped", [], "", {})
        job_env = {k: to_string(interpolate(v, ctx)) for k, v in (job.get("env") or {}).items()}
        defaults = ((workflow.get("defaults") or {}).get("run") or {}) | ((job.get("defaults") or {}).get("run") or {})
        steps_ctx: dict[str, Any] = {}
        failed = self.run_steps(job["steps"], env={**wf_env, **job_env}, steps_ctx=steps_ctx, inputs=None,
                                failed=False, defaults=defaults, scope="job", action_path=None)
        return JobResult("failure" if failed else "success", self.results, "".join(self.summary_parts),
                         self.artifacts)

    def run_steps(self, steps: list[dict[str, Any]], *, env: dict[str, str], steps_ctx: dict[str, Any],
                  inputs: Mapping[str, Any] | None, failed: bool, defaults: Mapping[str, Any], scope: str,
                  action_path: str | None, composite: bool = False) -> bool:
        for index, step in enumerate(steps):
            name = step.get("name") or step.get("uses") or (step.get("run") or "").splitlines()[0]
            ctx = self.context({**self.base_env(), **env}, steps_ctx, inputs, action_path)
            if not condition_holds(step.get("if"), ctx, failed):
                self.results.append(StepResult(name, step.get("id"), "skipped",
                                               "run" if "run" in step else "uses", step.get("uses"), scope=scope))
                if step.get("id"):
                    steps_ctx[step["id"]] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
                continue
            if self.before_step is not None:
                self.before_step(name, self)
            step_env = {**env, **{k: to_string(interpolate(v, ctx)) for k, v in (step.get("env") or {}).items()}}
            if "run" in step:
                result = self.run_script(step, name, step_env, ctx, defaults, scope, composite, action_path)
            else:
                result = self.run_uses(step, name, step_env, ctx, scope, failed)
            if step.get("id"):
                steps_ctx[step["id"]] = {"outcome": result.outcome, "conclusion": result.outcome,
                                         "outputs": result.outputs}
            if result.outcome == "failure" and not truthy(interpolate(step.get("continue-on-error", False), ctx)):
                failed = True
        return failed

    def _fresh_file(self, kind: str) -> Path:
        self._counter += 1
        path = self.temp / "_runner_file_commands" / f"{kind}_{self._counter}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
        return path

    def run_script(self, step: dict[str, Any], name: str, step_env: dict[str, str], ctx: Mapping[str, Any],
                   defaults: Mapping[str, Any], scope: str, composite: bool, action_path: str | None) -> StepResult:
        shell = step.get("shell") or defaults.get("shell")
        if composite:
            assert shell, f"composite step {name!r} must say `shell:` (GitHub requires it)"
        if shell in (None, ""):
            argv = ["bash", "-e"]
        elif shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
        else:
            raise AssertionError(f"shell {shell!r} is not simulated")
        script = interpolate(step["run"], ctx)
        files = {kind: self._fresh_file(kind) for kind in ("output", "env", "path", "summary")}
        script_path = self._fresh_file("script").with_suffix(".sh")
        script_path.write_text(script, encoding="utf-8")
        env = {**self.base_env(), **step_env, "GITHUB_OUTPUT": str(files["output"]), "GITHUB_ENV": str(files["env"]),
               "GITHUB_PATH": str(files["path"]), "GITHUB_STEP_SUMMARY": str(files["summary"])}
        if action_path is not None:
            env["GITHUB_ACTION_PATH"] = action_path
        wd = step.get("working-directory") or defaults.get("working-directory") or "."
        cwd = (self.workspace / to_string(interpolate(wd, ctx))).resolve()
        done = subprocess.run([*argv, str(script_path)], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        outputs = parse_output_file(files["output"].read_text(encoding="utf-8"))
        self.env_additions.update(parse_output_file(files["env"].read_text(encoding="utf-8")))
        self.path_additions += [line for line in files["path"].read_text(encoding="utf-8").splitlines() if line]
        self.summary_parts.append(files["summary"].read_text(encoding="utf-8"))
        result = StepResult(name, step.get("id"), "success" if done.returncode == 0 else "failure", "run",
                            env=step_env, script=script, returncode=done.returncode, stdout=done.stdout,
                            stderr=done.stderr, outputs=outputs, scope=scope)
        self.results.append(result)
        return result

    def run_uses(self, step: dict[str, Any], name: str, step_env: dict[str, str], ctx: Mapping[str, Any],
                 scope: str, failed: bool) -> StepResult:
        uses = step["uses"]
        with_ = {k: interpolate(v, ctx) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("./"):
            return self.run_composite(step, name, uses, with_, step_env, ctx, scope, failed)
        match = _SHA_PINNED.match(uses)
        assert match, f"{uses!r} is not pinned to a full commit SHA"
        action = match["action"]
        handler = {"actions/checkout": self._checkout, "actions/setup-python": self._setup_python,
                   "actions/upload-artifact": self._upload_artifact}.get(action)
        assert handler is not None, f"{action} is not simulated: add it to WorkflowRunner"
        result = StepResult(name, step.get("id"), "success", "uses", uses, with_=with_, env=step_env, scope=scope)
        handler(result)
        self.results.append(result)
        return result

    def run_composite(self, step: dict[str, Any], name: str, uses: str, with_: Mapping[str, Any],
                      step_env: dict[str, str], ctx: Mapping[str, Any], scope: str, failed: bool) -> StepResult:
        # `uses: ./path` names a directory of the workspace; the test reads action.yml from the project
        # (the workspace of the repository that holds it).
        action_dir = (self.project / uses).resolve()
        metadata = yaml.safe_load((action_dir / "action.yml").read_text(encoding="utf-8"))
        assert metadata["runs"]["using"] == "composite"
        declared = metadata.get("inputs") or {}
        unknown = set(with_) - set(declared)
        assert not unknown, f"{uses}: unknown inputs {sorted(unknown)}"
        inputs: dict[str, Any] = {}
        for key, spec in declared.items():
            if key in with_:
                inputs[key] = to_string(with_[key])
            else:
                assert not (spec or {}).get("required"), f"{uses}: input {key!r} is required"
                inputs[key] = to_string(interpolate((spec or {}).get("default", ""), ctx))
        action_path = str(self.workspace / uses) if uses != "./" else str(self.workspace)
        start = len(self.results)
        inner_steps: dict[str, Any] = {}
        self.run_steps(metadata["runs"]["steps"], env=step_env, steps_ctx=inner_steps, inputs=inputs,
                                      failed=failed, defaults={}, scope=uses, action_path=action_path,
                                      composite=True)
        out_ctx = self.context({**self.base_env(), **step_env}, inner_steps, inputs, action_path)
        outputs = {k: to_string(interpolate(v.get("value", ""), out_ctx))
                   for k, v in (metadata.get("outputs") or {}).items()}
        inner_failure = any(r.outcome == "failure" for r in self.results[start:] if r.scope == uses)
        result = StepResult(name, step.get("id"), "failure" if inner_failure else "success", "uses", uses,
                            with_=dict(with_), env=step_env, outputs=outputs, scope=scope)
        self.results.insert(start, result)
        return result
