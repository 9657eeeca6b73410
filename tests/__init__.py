"""The test suite (a package, so that its layers can share helpers with relative imports)."""
