"""The `reconciler` command line.

Each command lives in its own module and is imported only when it runs, so
`reconciler validate` never pays for the Kubernetes client or rich.
Exceptions carry their exit code; only `main` turns them into an exit, and a
user error never shows a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from reconciler import __version__
from reconciler.errors import ConfigError, ReconcilerError

# command name -> (module, one-line help shown by `reconciler --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("reconciler.cli.validate", "Check a config repository; report every error."),
    "plan": ("reconciler.cli.plan", "Show what apply would change on the runtime."),
    "apply": ("reconciler.cli.apply", "Make the runtime match the config (or a saved plan)."),
    "status": ("reconciler.cli.status", "Show the warm pools on the runtime and their health."),
    "render": ("reconciler.cli.render", "Write Kubernetes manifests for other CD tools."),
    "diff": ("reconciler.cli.diff", "Plan the change between two commits of the config repo."),
    "daemon": ("reconciler.cli.daemon", "Watch a repository and reconcile continuously."),
    "invoke": ("reconciler.cli.invoke", "Call an algorithm as an account (local runtime)."),
    "wait": ("reconciler.cli.wait", "Wait until every warm pool is ready (for scripts and CI)."),
    "agent": ("reconciler.cli.agent", "Run the local runtime's node agent on its own."),
    "worker": ("reconciler.cli.worker", "Run one warm replica: the engine container's command."),
    "init": ("reconciler.cli.init", "Scaffold a new config repository."),
    "schema": ("reconciler.cli.schema", "Write the JSON Schemas for editors and other tools."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in COMMANDS.items() if _available(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _available(entry[0]):
            return None
        command: click.Command = importlib.import_module(entry[0]).command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative GitOps reconciler for a model-serving platform.

    Validates a config repository of accounts, algorithms, reservations and
    capacity limits, plans the difference to the live runtime (the embedded
    local runtime or Kubernetes) and applies it.

    Exit codes: 0 success; 1 error (invalid config, refused plan, failed
    apply); 2 plan has changes (only with --detailed-exitcode).
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit. With standalone_mode=False click *returns* the exit
    code of `ctx.exit(code)` / `Exit(code)`, so it is passed on here."""
    try:
        code = cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # Usage errors exit 1, not click's 2: with --detailed-exitcode, 2 means
        # "the plan has changes", and a typo must never read as that.
        exc.show()
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except ConfigError as exc:
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic), err=True)
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
