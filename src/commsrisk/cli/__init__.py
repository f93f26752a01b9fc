"""The command line: `app` (the Typer app) and one module per command group.

`score`, `serve`, `train` (train, stack-ngram, promote), `evaluate`, `data`, `thresholds`
and `base_model`; `console` holds what they share. Run `commsrisk --help`.
"""

from commsrisk.cli.app import app, main_entry

__all__ = ["app", "main_entry"]
