"""``backtest designs``: every runnable design and variant with its parameters as a run would use them."""

from __future__ import annotations

import json
from typing import Any

import click

from backtest.cli.options import format_option


@click.command("designs")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="TOML file of design parameters and variants (format: docs/DESIGNS.md).")
@click.option("--set", "sets", multiple=True, metavar="DESIGN.PARAM=VALUE",
              help="Override a design parameter, as in `backtest run`; repeatable.")
@click.option("--designs", default=None, help="Comma-separated designs or variant labels.  [default: all]")
@format_option
def designs(config: str | None, sets: tuple[str, ...], designs: str | None, fmt: str) -> None:
    """List the fund designs and variants with their parameters: value used, default, meaning.

    Values are what `backtest run` with the same --config and --set would use; a changed value is
    marked with * and says where it came from. The ADL-trigger keys every design accepts (adl_*) are
    listed only where set (all of them: docs/DESIGNS.md).

    \b
    Examples:
      backtest designs
      backtest designs --config designs.toml --designs static-small
      backtest designs --set static.capital_usd=1e8 --format json
    """
    from pathlib import Path

    from loaders.errors import InputError
    from strategies.config import load_config

    if config is not None and not Path(config).is_file():
        raise InputError(config, "designs file not found")
    cfg = load_config(config, sets)
    labels = [d.strip() for d in designs.split(",") if d.strip()] if designs is not None else cfg.labels
    rows = design_rows(cfg, labels)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    _print(rows)


def design_rows(cfg: Any, labels: list[str]) -> list[dict[str, Any]]:
    """One record per label: its design, summary line and each parameter (value, default, changed, source)."""
    import dataclasses

    from strategies.config import allowed_text
    from strategies.registry import entry

    out = []
    for label in labels:
        spec = cfg.get(label)  # validates: an unknown label is a UserError listing the valid ones
        params = []
        for obj, always in ((spec.params, True), (spec.triggers, False)):
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                changed = value != f.default
                if not (always or changed):
                    continue
                origin = cfg.origin.get((label, f.name))
                where = (f"{origin[0]}:{origin[1]}" if origin and origin[1] else str(origin[0]) if origin
                         else "--set" if changed and f.name in cfg.raw.get(label, {}) else "")
                params.append({"name": f.name, "value": value, "default": f.default, "changed": changed,
                               "from": where, "allowed": allowed_text(f.metadata),
                               "meaning": f.metadata["doc"]})
        out.append({"label": label, "design": spec.design, "summary": entry(spec.design).doc,
                    "parameters": params})
    return out


def _print(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from backtest.cli.console import stdout_console
    from strategies.config import fmt_default

    console = stdout_console()
    t = Table(title="Fund designs and their parameters (* = changed by --config / --set)",
              title_justify="left")
    for c in ("design", "parameter", "value", "default", "meaning"):
        t.add_column(c, overflow="fold", no_wrap=c != "meaning", ratio=1 if c == "meaning" else None)
    for r in rows:
        head = r["label"] if r["label"] == r["design"] else f"{r['label']} ({r['design']})"
        if not r["parameters"]:
            t.add_row(head, "-", "-", "-", r["summary"] or "no parameters", end_section=True)
            continue
        for i, p in enumerate(r["parameters"]):
            value = fmt_default(p["value"]) + (" *" if p["changed"] else "")
            if p["from"]:
                value += f" ({p['from']})"
            last = i == len(r["parameters"]) - 1
            t.add_row(head if i == 0 else "", p["name"], value, fmt_default(p["default"]), p["meaning"],
                      end_section=last)
    console.print(t)  # the meaning column folds; the others keep their width
    console.print("Every design also accepts the ADL-trigger keys adl_drawdown, adl_window_h, adl_resume, "
                  "adl_cooldown_h (docs/DESIGNS.md); the config file format is in docs/DESIGNS.md.",
                  soft_wrap=True, highlight=False)
