"""PII recognizers: our own, one class per file, enabled per language in recognizers.yaml."""
