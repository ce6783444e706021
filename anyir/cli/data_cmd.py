"""`anyir shards build|inspect|verify` and `anyir mix plan`: thin wrappers over anyir.data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from anyir.cli.common import console
from anyir.cli.common import err_console as err

shards_app = typer.Typer(help="Build, inspect and verify shard sets (WebDataset tars + manifest.json).",
                         no_args_is_help=True)
mix_app = typer.Typer(help="Plan task mixtures: per-task weights and per-epoch sample counts.", no_args_is_help=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line red error and exit (2: bad input, 1: the operation failed)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@shards_app.command("build")
def build(
    recipe: str = typer.Argument(..., help="Recipe file, or a shipped recipe name: demo, aio3, aio3_rebalanced, aio5, cdd11."),
    out: Path = typer.Option(..., "--out", help="Output folder for the shard set (e.g. shards/demo). An existing set "
                             "there stays usable until the new one is complete, then is replaced."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes; the output is identical for any N."),
    data_root: Path | None = typer.Option(None, "--data-root", envvar="ANYIR_DATA_ROOT",
                                          help="Folder that ${data_root} in the recipe stands for (or set ANYIR_DATA_ROOT)."),
    strict: bool = typer.Option(False, "--strict", help="Fail on ANY rejected input (checked before encoding where "
                                "possible), not only when a source or task ends up empty."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Scan and print the plan (same as `anyir shards plan`); encode nothing."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Build a shard set from a recipe: scan every source, encode tars per task and split, write
    manifest.json, then swap the new set into place.

    Example: anyir shards build demo --out shards/demo --workers 2
    """
    from anyir.data.build import BuildError, build_shards, check_scan, scan_recipe
    from anyir.data.recipe import RecipeError, load_recipe

    try:
        loaded = load_recipe(recipe, data_root)
        if dry_run:
            scan = scan_recipe(loaded)
            console.print(plan_table(scan, f"plan for recipe {loaded.name} (nothing encoded)"))
            check_scan(loaded, scan, strict)
            return
        manifest = build_shards(loaded, out, workers=workers, strict=strict, progress=progress,
                                on_scan=lambda scan: console.print(plan_table(scan, f"scanned recipe {loaded.name}")))
    except RecipeError as exc:
        fail(str(exc))
    except BuildError as exc:
        fail(str(exc), code=1)
    console.print(shard_table(manifest, f"built {out} from recipe {manifest.recipe_name} ({manifest.recipe_hash[:12]})"))
    print_rejections(manifest)
    if manifest.audit is not None:
        style = "green" if manifest.audit.clean else "yellow"
        console.print(f"[{style}]{escape(manifest.audit.summary())}[/{style}] (pairs in manifest.json 'audit')")


@shards_app.command("plan")
def plan_build(
    recipe: str = typer.Argument(..., help="Recipe file or shipped recipe name."),
    data_root: Path | None = typer.Option(None, "--data-root", envvar="ANYIR_DATA_ROOT",
                                          help="Folder that ${data_root} in the recipe stands for."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on any rejection, as `build --strict` would."),
) -> None:
    """Scan a recipe and print per source: the layout variant matched, pairs found, rejections and
    notes. Reads no image and writes nothing; exits 1 when a build would fail at its scan.

    Example: anyir shards plan aio3 --data-root /data/PromptIR
    """
    from anyir.data.build import BuildError, check_scan, scan_recipe
    from anyir.data.recipe import RecipeError, load_recipe

    try:
        loaded = load_recipe(recipe, data_root)
        scan = scan_recipe(loaded)
        console.print(plan_table(scan, f"plan for recipe {loaded.name} (nothing encoded)"))
        for r in (scan.rejections + scan.notes)[:20]:
            console.print(escape(f"  [{r.source}] {r.file}: {r.reason}"), highlight=False, soft_wrap=True)
        check_scan(loaded, scan, strict)
    except RecipeError as exc:
        fail(str(exc))
    except BuildError as exc:
        fail(str(exc), code=1)


def plan_table(scan, title: str) -> Table:
    """Per source: kind, task/split, variant matched, samples found, rejections, notes."""
    table = Table(title=escape(title))
    for col in ("source", "task", "split", "variant", "found", "rejected", "notes"):
        table.add_column(col, justify="right" if col in ("found", "rejected", "notes") else "left", overflow="fold")
    for s in scan.sources:
        found = str(s.items) if s.items or s.optional else f"[red]{s.items}[/red]"
        name = s.name + (" (optional)" if s.optional else "")
        table.add_row(escape(name), s.task, s.split, escape(s.variant or s.kind), found,
                      str(len(s.rejections)), str(len(s.notes)))
    return table


@shards_app.command("inspect")
def inspect(shard_dir: Path = typer.Argument(..., help="A shard set folder (holds manifest.json).")) -> None:
    """Show a shard set: task, split, samples, shards, bytes and the default balance weight.

    Example: anyir shards inspect shards/demo
    """
    manifest = _load(shard_dir)
    console.print(shard_table(manifest, f"{shard_dir}: recipe {manifest.recipe_name} ({manifest.recipe_hash[:12]}), "
                                        f"default balance {manifest.default_balance}"))
    print_rejections(manifest)


@shards_app.command("verify")
def verify(
    shard_dir: Path = typer.Argument(..., help="A shard set folder (holds manifest.json)."),
    url_prefix: str | None = typer.Option(None, "--shards-url-prefix", help="Check the tars at this URL prefix "
                                          "instead of beside the manifest ('{path}' = each shard's manifest path)."),
) -> None:
    """Check every shard against the manifest: size, sha256, sample count, keys, and each sample's
    task and split. Exit 1 naming each mismatch.

    Example: anyir shards verify shards/demo
    """
    from anyir.data.reader import verify_shard_set
    from anyir.data.shardset import ShardSet

    manifest = _load(shard_dir, check_files=url_prefix is None)
    problems = verify_shard_set(ShardSet(shard_dir, manifest, url_prefix))
    for line in problems:
        err.print(f"[red]mismatch:[/red] {escape(f'{shard_dir}/{line}')}", highlight=False)
    if problems:
        raise typer.Exit(1)
    n = len(manifest.all_shards())
    console.print(f"[green]ok[/green]: all {n} shards in {shard_dir} match the manifest "
                  "(bytes, sha256, sample count, keys, task/split)")


@shards_app.command("to-hf")
def to_hf(
    shard_dir: Path = typer.Argument(..., help="A shard set folder (holds manifest.json)."),
    out: Path = typer.Argument(..., help="Folder to write the Hugging Face DatasetDict to (save_to_disk)."),
    split: list[str] = typer.Option(None, "--split", help="Export only this split (repeatable); default: all."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Export a shard set as a Hugging Face DatasetDict: one split per shard-set split, columns key,
    task, split, dataset, gt/lq (Image, PNG), online_noise_sigma, meta (JSON). See docs/datasets.md.

    Example: anyir shards to-hf shards/demo exports/demo_hf
    """
    from anyir.data.hf_export import export_hf
    from anyir.data.reader import ShardError

    try:
        rows = export_hf(shard_dir, out, splits=split or None, overwrite=overwrite)
    except (FileExistsError, ValueError) as exc:  # ManifestError is a ValueError
        fail(str(exc))
    except ShardError as exc:
        fail(f"{exc}; nothing was written to {out}", code=1)
    counts = ", ".join(f"{name}: {n}" for name, n in rows.items())
    console.print(f"[green]ok[/green]: wrote {escape(str(out))} ({counts} rows); "
                  f"read it with datasets.load_from_disk({escape(repr(str(out)))})", highlight=False)


@shards_app.command("audit")
def audit_cmd(
    shard_dir: Path = typer.Argument(..., help="A shard set folder (holds manifest.json and fingerprints.parquet)."),
    against: Path | None = typer.Option(None, "--against", help="Another shard set: audit this set's test samples "
                                        "against its training samples and the other way round."),
    threshold: int | None = typer.Option(None, "--threshold", help="Near-duplicate threshold in bits of 256 "
                                         "(default: the method's, see docs/audit.md)."),
) -> None:
    """Audit test samples against training samples for exact and near duplicates (no image decoded:
    reads the sets' fingerprint files). Exit 1 when any overlap is found.

    Example: anyir shards audit shards/aio3 --against shards/cdd11
    """
    from anyir.data.audit import (
        DEFAULT_THRESHOLD,
        FINGERPRINTS_NAME,
        audit_set,
        audit_sets,
        read_fingerprints,
    )

    def fingerprints(folder: Path):
        manifest = _load(folder, check_files=False)
        if manifest.fingerprints is None or not (folder / FINGERPRINTS_NAME).is_file():
            fail(f"{folder}: no {FINGERPRINTS_NAME}; rebuild the set with this anyir (`anyir shards build`)")
        try:
            return manifest, read_fingerprints(folder / FINGERPRINTS_NAME)
        except ValueError as exc:
            fail(str(exc))

    manifest, fps = fingerprints(shard_dir)
    level = threshold if threshold is not None else DEFAULT_THRESHOLD
    if against is None:
        report = audit_set(fps, threshold=level)
    else:
        other, other_fps = fingerprints(against)
        report = audit_sets(fps, other_fps, threshold=level, labels=(manifest.recipe_name, other.recipe_name))
    for pair in report.pairs[:20]:
        console.print(escape(f"  {pair.kind}: test {pair.test_key} ~ train {pair.train_key} (distance {pair.distance})"),
                      highlight=False)
    if report.clean:
        console.print(f"[green]{escape(report.summary())}[/green]")
        return
    err.print(f"[yellow]{escape(report.summary())}[/yellow]", highlight=False)
    raise typer.Exit(1)


@mix_app.command("plan")
def plan(
    source: str = typer.Argument(..., help="A shard set folder, or a recipe file/name (scanned, no images read)."),
    balance: str | None = typer.Option(None, "--balance", help="natural | uniform | temperature:T | promptir | "
                                       "task=w,task=w. Default: the recipe's default_balance."),
    total: int | None = typer.Option(None, "--total", min=0, help="Samples per epoch. Default: the strategy's own "
                                     "total (natural/promptir: repeated counts; others: available samples)."),
    data_root: Path | None = typer.Option(None, "--data-root", envvar="ANYIR_DATA_ROOT",
                                          help="Folder that ${data_root} stands for (recipes only)."),
) -> None:
    """Per-task weights and exact per-epoch sample counts for a balance strategy (train split).

    Example: anyir mix plan shards/demo --balance temperature:2 --total 1000
    """
    from anyir.data.balance import BalanceError, epoch_counts, natural_total, parse_balance, resolve_weights

    counts, repeats, default = _counts_for(source, data_root)
    try:
        spec = parse_balance(balance or default)
        weights = resolve_weights(spec, counts, repeats)
    except BalanceError as exc:
        fail(str(exc))
    n = natural_total(spec, counts, repeats) if total is None else total
    per_epoch = epoch_counts(weights, n)
    table = Table(title=escape(f"{source}: balance {spec}, {n} samples per epoch"))
    for col in ("task", "available", "repeat", "weight", "per epoch"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for task in weights:
        table.add_row(task, str(counts[task]), f"{repeats.get(task, 1.0):g}", f"{weights[task]:.4f}", str(per_epoch[task]))
    console.print(table)


def _counts_for(source: str, data_root: Path | None) -> tuple[dict[str, int], dict[str, float], str]:
    """(train counts, repeats, default balance) from a shard set or a recipe."""
    from anyir.data.build import scan_counts
    from anyir.data.recipe import RecipeError, load_recipe

    if (Path(source) / "manifest.json").is_file():
        manifest = _load(Path(source))
        return manifest.counts("train"), manifest.repeats, manifest.default_balance
    try:
        recipe = load_recipe(source, data_root)
        counts, repeats = scan_counts(recipe)
    except RecipeError as exc:
        fail(f"{exc} (or give a shard set folder holding manifest.json)")
    if not counts:
        fail(f"recipe {source!r} yields no train samples here; check --data-root")
    return counts, repeats, recipe.default_balance


def _load(shard_dir: Path, check_files: bool = True):
    from anyir.data.manifest import ManifestError, load_manifest

    try:
        return load_manifest(shard_dir, check_files=check_files)
    except ManifestError as exc:
        fail(str(exc))


def shard_table(manifest, title: str) -> Table:
    """A rich table of a manifest: one row per task and split."""
    from anyir.data.balance import BalanceError, resolve_weights

    try:
        weights = resolve_weights(manifest.default_balance, manifest.counts("train"), manifest.repeats)
    except BalanceError:
        weights = {}
    table = Table(title=escape(title))
    for col in ("task", "split", "samples", "shards", "MB", "datasets", "balance"):
        table.add_column(col, justify="right" if col in ("samples", "shards", "MB", "balance") else "left")
    for split in sorted(manifest.splits):
        for task, ts in sorted(manifest.splits[split].items()):
            mb = sum(s.bytes for s in ts.shards) / 1e6
            weight = f"{weights[task]:.3f}" if split == "train" and task in weights else ""
            datasets = ", ".join(f"{d}:{n}" for d, n in ts.datasets.items())
            table.add_row(task, split, str(ts.samples), str(len(ts.shards)), f"{mb:.2f}", datasets, weight)
    return table


def print_rejections(manifest, limit: int = 10) -> None:
    """Summarise notes (lenient matches, ignored folders) and rejected inputs; all are in manifest.json."""
    for title, records in (("note(s): kept under a lenient rule or ignored on purpose", manifest.notes),
                           ("input(s) rejected", manifest.rejections)):
        if not records:
            continue
        console.print(f"[yellow]{len(records)} {title}[/yellow] (all listed in manifest.json):")
        for r in records[:limit]:
            console.print(escape(f"  [{r.task}/{r.split}] {r.file}: {r.reason}"), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `shards` and `mix` to the top-level app."""
    app.add_typer(shards_app, name="shards")
    app.add_typer(mix_app, name="mix")
