"""The few marketplace actions the workflows use, simulated for the local workflow runner.

checkout clones the test's origin repository, setup-python puts the test's interpreter first on PATH
(its `pip install` a no-op: the project is already installed), upload-artifact copies files and sets
artifact-id/artifact-url. WorkflowRunner takes them from SimulatedActions, which reads the runner's
workspace, origin, tool cache and artifact directory.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from workflow_expressions import to_string

if TYPE_CHECKING:
    from workflow_runner import StepResult


class SimulatedActions:
    """actions/checkout, actions/setup-python and actions/upload-artifact, on a WorkflowRunner."""

    def _checkout(self, result: StepResult) -> None:
        ref = to_string(result.with_.get("ref")) or self.checkout_ref
        if any(self.workspace.iterdir()):
            shutil.rmtree(self.workspace)
            self.workspace.mkdir(parents=True)
        depth = to_string(result.with_.get("fetch-depth", "1"))
        args = ["git", "clone", "--quiet", "--branch", ref]
        if depth not in ("0", ""):
            args += ["--depth", depth, f"file://{self.origin}"]
        else:
            args.append(str(self.origin))
        done = subprocess.run([*args, str(self.workspace)], capture_output=True, text=True,
                              env={**self.base_env()})
        result.stdout, result.stderr = done.stdout, done.stderr
        result.outcome = "success" if done.returncode == 0 else "failure"

    def _setup_python(self, result: StepResult) -> None:
        self.path_additions.append(str(self.tool_bin))
        result.outputs = {"python-version": "%d.%d.%d" % sys.version_info[:3],
                          "python-path": str(self.tool_bin / "python")}

    def _upload_artifact(self, result: StepResult) -> None:
        name = to_string(result.with_.get("name")) or "artifact"
        assert not re.search(r'[":<>|*?\\/\r\n]', name), f"invalid artifact name {name!r}"
        if name in self.artifacts and to_string(result.with_.get("overwrite")) != "true":
            result.outcome = "failure"
            result.stderr = f"an artifact named {name} already exists"
            return
        patterns = [line.strip() for line in to_string(result.with_.get("path")).splitlines() if line.strip()]
        assert patterns, "upload-artifact without a path"
        found: list[Path] = []
        for pattern in patterns:
            absolute = pattern if os.path.isabs(pattern) else str(self.workspace / pattern)
            for match in sorted(glob.glob(absolute, recursive=True)):
                if Path(match).is_dir():  # a directory is uploaded whole
                    found += sorted(p for p in Path(match).rglob("*") if p.is_file())
                elif Path(match).is_file():
                    found.append(Path(match))
        # upload-artifact >= 4.4 leaves hidden files out unless include-hidden-files is true
        if to_string(result.with_.get("include-hidden-files")) != "true":
            found = [p for p in found if not any(part.startswith(".") for part in p.parts[-2:])]
        policy = to_string(result.with_.get("if-no-files-found")) or "warn"
        if not found:
            if policy == "error":
                result.outcome = "failure"
                result.stderr = f"No files were found with the provided path: {patterns}"
                return
            result.stdout = f"::warning::No files were found with the provided path: {patterns}\n"
            return
        target = self.artifact_dir / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for path in found:
            shutil.copy2(path, target / path.name)
        artifact_id = str(1000 + len(self.artifacts))
        self.artifacts[name] = {"files": sorted(p.name for p in found), "dir": target, "with": result.with_}
        result.outputs = {"artifact-id": artifact_id,
                          "artifact-url": f"https://github.com/{self.repository}/actions/runs/{self.run_id}"
                                          f"/artifacts/{artifact_id}"}
