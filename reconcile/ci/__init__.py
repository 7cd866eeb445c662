"""GitHub Actions glue behind action.yml and the workflows."""
