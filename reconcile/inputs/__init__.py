"""Lead files in: discovery, YAML parsing with source lines, schema and semantic checks, the parse cache."""
