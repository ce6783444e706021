"""``anyir model``: list the named AnyIR variants and show their size (params, MACs, breakdown)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from anyir.cli.common import console, fail

model_app = typer.Typer(help="AnyIR network variants: list them, show their size.", no_args_is_help=True)


def _fail(message: str) -> None:
    fail(message)  # one line on stderr, exit 2


@model_app.command("list")
def list_cmd() -> None:
    """List the named variants (paper and non-paper).

    Example: anyir model list
    """
    from anyir.model import list_variants, variant_config, variant_info  # lazy: torch is slow to import

    table = Table("variant", "paper", "dim", "blocks", "refinement", "description")
    for name in list_variants():
        info, cfg = variant_info(name), variant_config(name)
        paper = "yes (Table 11)" if info.paper else "[yellow]NON-PAPER[/yellow]"
        table.add_row(name, paper, str(cfg.dim), str(list(cfg.blocks)), str(cfg.refinement_blocks), info.description)
    console.print(table)


@model_app.command("info")
def info_cmd(
    variant: str = typer.Option("tiny", "--variant", "-v", help="Variant name: tiny, small (paper), nano, pico (non-paper); see `anyir model list`."),
    ablation: str = typer.Option(
        None, "--ablation", help="Paper ablation row, e.g. table7:a, table8:1/2,0,1/2, table10:spatial-only."
    ),
    frequency_path: str = typer.Option(
        "fast", "--frequency-path", help="fast (default: the identical FFT-free sum, FFT MACs 0) or faithful "
        "(Algorithm 2's rfft2/irfft2 as written, FFT MACs counted)."
    ),
    size: int = typer.Option(224, "--size", min=8, help="Square input side for the MAC count (paper: 224)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (keys: params, macs_<size>, fft_macs, breakdown)."),
) -> None:
    """Show parameters, MACs at 1x3xSIZExSIZE (1 multiply-add = 1), FFT MACs and a per-component breakdown.

    Example: anyir model info --variant tiny --json
    """
    from anyir.model import variant_config
    from anyir.model.complexity import complexity_report
    from anyir.model.config import ablation_preset
    from anyir.model.net import AnyIR

    try:
        cfg = variant_config(variant, ablation_preset(ablation) if ablation else None, frequency_path)
    except ValueError as err:
        _fail(f"{err}; see `anyir model list`")
    report = complexity_report(AnyIR(cfg), size=size)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_report(report, size)


def _print_report(report: dict, size: int) -> None:
    from anyir.model.complexity import COMPONENTS

    macs = report[f"macs_{size}"]
    console.print(
        f"[bold]{report['variant']}[/bold]: {report['params'] / 1e6:.3f} M params, "
        f"{macs / 1e9:.2f} GMAC at 1x3x{size}x{size} (+ {report['fft_macs'] / 1e9:.3f} GMAC of FFTs)"
    )
    table = Table("component", "params", "% params", "GMAC", "% MACs", "FFT GMAC")
    for comp in COMPONENTS:
        row = report["breakdown"][comp]
        table.add_row(
            comp,
            f"{row['params']:,}",
            f"{100 * row['params'] / report['params']:.1f}",
            f"{row['macs'] / 1e9:.2f}",
            f"{100 * row['macs'] / macs:.1f}",
            f"{row['fft_macs'] / 1e9:.3f}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``anyir model`` to the top-level app."""
    app.add_typer(model_app, name="model")
