"""``python -m anyir.train ...`` (and ``torchrun ... -m anyir.train ...``): the ``anyir train`` command.

An entry point, not library code: it hands straight to the CLI layer, which may import evaluation.
"""

import typer

from anyir.cli.train_cmd import train_command


def main() -> None:
    """Run ``anyir train`` with this process's arguments."""
    app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    app.command()(train_command)
    app()


if __name__ == "__main__":
    main()
