"""`reconciler worker`: one warm replica, configured from the environment.

The explicit `command` of every engine container on Kubernetes (SPEC.md
section 4). The process is the local runtime's worker
(reconciler.runtimes.local.worker, standard library only); this command only
turns the RECONCILER_* variables into its arguments.
"""

from __future__ import annotations

import os
import sys

import click

from reconciler.errors import ReconcilerError
from reconciler.runtimes.local import worker


def _help() -> str:
    rows = "\n".join(f"    {name:<26} {'required' if default is None else 'default ' + default}"
                     for name, (_, default) in worker.ENVIRONMENT.items())
    return f"""Run one warm replica: verify and load the model, then serve.

    It binds RECONCILER_LISTEN first and answers GET /healthz with 503 while
    it warms up: it checks the model file's sha256 against
    RECONCILER_MODEL_DIGEST, imports RECONCILER_ENTRYPOINT (MODULE:FUNCTION)
    from the code root and calls the module's load(path). Then /healthz
    answers 200 and POST /invoke takes the JSON input. A failed warm-up exits
    2, so the pod never becomes ready. SIGTERM stops it.

    \b
    Environment:
{rows}
    """


EXAMPLES = ("\b\nExamples:\n"  # --help shows them after the options
            "  RECONCILER_ENTRYPOINT=sentiment:apply RECONCILER_POOL_ID=p1 \\\n"
            "  RECONCILER_MODEL_PATH=data://acme/sentiment/words-1.1.json \\\n"
            "  RECONCILER_MODEL_DIGEST=sha256:74c1... \\\n"
            "  RECONCILER_DATA_ROOT=config-examples/data \\\n"
            "  RECONCILER_CODE_ROOT=config-examples/src \\\n"
            "  RECONCILER_LISTEN=127.0.0.1:8081 reconciler worker")


@click.command("worker", help=_help(), epilog=EXAMPLES)
def command() -> None:
    try:
        argv = worker.args_from_env(dict(os.environ))
    except ValueError as exc:
        raise ReconcilerError(f"reconciler worker: {exc} (see `reconciler worker --help`)"
                              ) from None
    sys.exit(worker.main(argv))
