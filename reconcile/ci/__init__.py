"""GitHub Actions glue behind action.yml and the workflows, split by job.

- `annotations`: reconcile's JSON diagnostics (`--error-format json`) → workflow commands
- `markdown`: escaping, fences and truncation for comments and job summaries
- `comment`: the pull-request comment's Markdown, and the sticky comment through `gh api`
- `summary`: the apply job's summary
- `commit`: committing the state back, and refusing a tracked journal or lock
- `context`: what GitHub Actions tells a step (event, run URL) and the files a step writes back

Every function returns text or a result; `reconcile ci ...` in the CLI prints and picks exit statuses.
"""
