"""The configuration: YAML with line numbers, a closed typed schema, file checks."""
