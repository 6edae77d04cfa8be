"""Entry point of the ``robnp`` command.

Commands live in their own modules and are imported only when used, so that
``robnp --help`` answers without compiling anything.  Every library error
(:class:`robnp.errors.RobnpError`) and every usage error is reported here, at the
boundary, as one line on stderr with exit code 2. ``robnp`` alone prints its help.
"""

from __future__ import annotations

import importlib
import sys

import click

from robnp._version import __version__

# command name -> "module:attribute"; the module is imported on first use.
_COMMANDS = {
    "sweep": "robnp_cli.sweep:sweep",
    "report": "robnp_cli.sweep:report",
    "validate": "robnp_cli.sweep:validate",
    "train": "robnp_cli.evaluate:train",
    "attack": "robnp_cli.evaluate:attack",
    "gradcheck": "robnp_cli.gradcheck:gradcheck",
    "scaling": "robnp_cli.scaling:scaling",
    "verify": "robnp_cli.verify:verify",
    "plot": "robnp_cli.plot:plot",
    "data": "robnp_cli.data:data",
}

# command name -> the line ``robnp --help`` shows for it, so that the help lists every
# command without importing one (their modules import Numba).
_SUMMARIES = {
    "sweep": "Run the robustness-scaling study (train, attack, report).",
    "report": "Rebuild the table, statistics and figures of a sweep's directory.",
    "validate": "Check a sweep's results: completeness, consistency, sanity.",
    "train": "Train one model the study's way and save it.",
    "attack": "Evaluate a saved model with any registered attacks.",
    "verify": "Exact robust accuracy of a saved model (bounds, branch and bound).",
    "gradcheck": "Check every gradient block against finite differences.",
    "scaling": "Scaling-law fits of the adversarial-training paper.",
    "plot": "Teaching figures: a boundary under attack, robust accuracy vs the truth.",
    "data": "Generators of training data of controlled quality, and their quality.",
}


# Raised by click >= 8.2 for a group called without a command; older versions print
# the help themselves and exit 0.
_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class RobnpGroup(click.Group):
    """A group that loads its commands lazily and reports errors in one line."""

    def list_commands(self, ctx):
        return sorted(_COMMANDS)

    def format_commands(self, ctx, formatter):
        rows = [(name, _SUMMARIES.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx, name):
        target = _COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def main(self, args=None, prog_name=None, complete_var=None,
             standalone_mode=True, **extra):
        from robnp.errors import RobnpError

        try:
            result = super().main(args=args, prog_name=prog_name,
                                  complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except _NoArgsIsHelp as exc:
            # A bare ``robnp`` (or command group) asks for help: print it, as pip does.
            click.echo(exc.ctx.get_help(), color=exc.ctx.color)
            sys.exit(0)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # Ctrl-C, as the sweep says it
                click.echo("Interrupted.", err=True)
                sys.exit(130)
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            # Usage errors and bad parameters: one line, exit 2.
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        except RobnpError as exc:
            click.echo(f"Error: {_one_line(exc)}", err=True)
            sys.exit(2)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=RobnpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="robnp")
def cli():
    """robnp: adversarial robustness of small neural networks.

    A NumPy/Numba engine: MLPs with hand-written gradients; Adam, AdamW, SGD with
    schedules and weight averaging; adversarial training recipes (PGD-AT, TRADES,
    FGSM-RS, N-FGSM); attacks (FGSM, PGD, APGD, Square) with a per-sample worst case;
    a sound verifier (IBP/CROWN bounds, branch and bound) and the data's Bayes
    labels and robustness ceiling. Built on it: the robustness-scaling study, its
    teaching figures, and the scaling-law fits.
    """


def main():
    cli.main(prog_name="robnp")


if __name__ == "__main__":
    main()
