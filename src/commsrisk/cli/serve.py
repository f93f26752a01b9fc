"""`commsrisk serve`: start the HTTP service, refusing a start that would expose it or could not work.

Two refusals come before BentoML starts: an address other than loopback with no API keys
configured (the service would answer anyone on the network), and a key file that does not load.
A bad model or policy is found by the worker as it loads them (service.startup): it names the
file and stops the server, and this command exits with `STARTUP_FAILED`, not 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from commsrisk.cli.console import err, fail
from commsrisk.errors import CommsriskError, ConfigurationError
from commsrisk.settings import Settings

SERVICE = "commsrisk.service.app:CommsriskService"


def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind; another than loopback needs API keys ('commsrisk keys add').")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 3000,
) -> None:
    """Start the HTTP service (BentoML) with the model and thresholds from settings.

    Exit status: 0 stopped (Ctrl-C or SIGTERM); 1 refused before starting (no API keys on a
    non-loopback address, a bad key file or settings); 78 the service could not load its model or
    policy (the message names the file).
    """
    from commsrisk.service.access import NO_KEYS_OFF_LOOPBACK, KeyRing, is_loopback
    from commsrisk.service.startup import FAILURE_FILE_ENV, STARTUP_FAILED

    try:
        settings = Settings.load()
        keys = KeyRing.load(settings.service)
    except CommsriskError as error:
        raise fail(error, code=1) from error
    if not is_loopback(host) and not keys.enabled:
        raise fail(ConfigurationError(f"refusing to serve on {host}: {NO_KEYS_OFF_LOOPBACK}"), code=1)
    bentoml_bin = shutil.which("bentoml") or str(Path(sys.executable).with_name("bentoml"))
    err.print(f"serving commsrisk on http://{host}:{port} (docs at /docs, Ctrl-C to stop)")
    with tempfile.TemporaryDirectory(prefix="commsrisk-serve-") as scratch:
        failure = Path(scratch) / "startup_failure.txt"
        env = {**os.environ, FAILURE_FILE_ENV: str(failure)}
        server = subprocess.Popen([bentoml_bin, "serve", SERVICE, "--host", host, "--port", str(port)], env=env)
        forward = lambda signum, _frame: server.send_signal(signum)  # noqa: E731
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        code = server.wait()
        if failure.is_file():
            err.print(f"[bold red]error:[/] the service did not start: {failure.read_text(encoding='utf-8')}")
            raise typer.Exit(STARTUP_FAILED)
    raise typer.Exit(code if code > 0 else 0)
