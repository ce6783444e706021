"""The ``anyir`` command. Thin: each sub-module parses options and calls library functions.

Every command module exposes ``register(app)``; this file only assembles them, in the order
of the pipeline (recipe -> shards -> stream -> train -> eval -> leaderboard).
"""

from __future__ import annotations

import typer

from anyir.cli import (
    bench_cmd,
    data_cmd,
    eval_cmd,
    leaderboard_cmd,
    model_cmd,
    quickstart_cmd,
    sweep_cmd,
    train_cmd,
)

app = typer.Typer(
    name="anyir",
    help="Data-centric benchmark for all-in-one image restoration: "
    "recipes -> shards -> train -> eval -> leaderboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)



@app.command()
def version() -> None:
    """Print the anyir version."""
    from anyir import __version__

    typer.echo(__version__)


for module in (quickstart_cmd, data_cmd, model_cmd, train_cmd, eval_cmd, leaderboard_cmd, sweep_cmd, bench_cmd):
    module.register(app)


def main() -> None:
    app()
