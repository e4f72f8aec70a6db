"""`cxr`: one subcommand per pipeline stage. DVC stages and Dagster assets call exactly these.

Every subcommand reads params.yaml (or --params FILE), applies repeated `--set section.key=value`,
and then its own options, which are shorthands for --set. Heavy libraries are imported inside the
subcommand that needs them, so `cxr --help` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help=__doc__.split("\n")[0], no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)

ParamsFile = Annotated[Optional[Path], typer.Option("--params", help="params file (default: ./params.yaml)")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set ingest.workers=4 (repeatable)")]


def project_environment() -> None:
    """Keep every tool's state inside the project and telemetry off, unless the user chose otherwise."""
    home = Path(os.environ.get("CXR_HOME", ".cxr")).resolve()
    for var, sub in (("DAGSTER_HOME", "dagster"), ("BENTOML_HOME", "bentoml"), ("HF_HOME", "hf")):
        os.environ.setdefault(var, str(home / sub))
    for var, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("DO_NOT_TRACK", "1"),
                       ("BENTOML_DO_NOT_TRACK", "True"), ("DAGSTER_DISABLE_TELEMETRY", "1")):
        os.environ.setdefault(var, value)


@contextmanager
def user_errors():
    """Bad params or input end with one clear line and exit status 2, not a traceback."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        typer.echo(f"error: invalid params: {problems}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def load(params_file: Path | None, sets: list[str] | None, **shorthands):
    """Params with --set overrides, then the subcommand's own options (None = not given)."""
    from components.params import load_params

    overrides = list(sets or []) + [f"{k}={json.dumps(v)}" for k, v in shorthands.items() if v is not None]
    return load_params(params_file, overrides)


def _print(summary: dict) -> None:
    json.dump(summary, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


@app.command()
def synth(
    n_studies: Annotated[Optional[int], typer.Option("--n-studies", help="number of studies")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (MIMIC-CXR layout)")] = None,
    params: ParamsFile = None,
    set_: Sets = None,
):
    """Generate a synthetic MIMIC-CXR-style archive: DICOMs, reports, truth table, planted traps."""
    with user_errors():
        p = load(params, set_, **{"synth.n_studies": n_studies, "synth.seed": seed,
                                  "synth.out": str(out) if out else None})
        from components.synth.generate import generate

        summary = generate(p.synth)
    from components.stage_metadata import report_synth

    report_synth(p, summary)
    _print(summary)


@app.command()
def ingest(
    source: Annotated[Optional[str], typer.Option(help="synth | mimic | chexpert-plus | openi | manifest")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="dataset root (or manifest CSV)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder")] = None,
    workers: Annotated[Optional[int], typer.Option(help="decoding processes")] = None,
    params: ParamsFile = None,
    set_: Sets = None,
):
    """Read a dataset into studies.parquet, image shards, quarantine.parquet and summary.json."""
    with user_errors():
        p = load(params, set_, **{"ingest.source": source, "ingest.input": str(input) if input else None,
                                  "ingest.out": str(out) if out else None, "ingest.workers": workers})
        from components.ingest.run import ingest as run_ingest

        summary = run_ingest(p.ingest)
    from components.stage_metadata import report_ingest

    report_ingest(p, summary)
    _print(summary)
    if not summary["conservation_ok"]:
        typer.echo("error: conservation failed: rows in != rows out + quarantined", err=True)
        raise typer.Exit(1)


@app.command()
def clean(
    input: Annotated[Optional[Path], typer.Option("--input", help="ingest output folder")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder")] = None,
    workers: Annotated[Optional[int], typer.Option(help="processes")] = None,
    params: ParamsFile = None,
    set_: Sets = None,
):
    """Clean, de-identify, label and validate reports: reports.parquet, quarantine, GX results."""
    with user_errors():
        p = load(params, set_, **{"clean.input": str(input) if input else None,
                                  "clean.out": str(out) if out else None, "clean.workers": workers})
        from components.reports.clean import clean as run_clean

        summary = run_clean(p.clean)
    from components.stage_metadata import report_clean

    report_clean(p, summary)
    _print(summary)
    if not summary["conservation_ok"]:
        typer.echo("error: conservation failed: rows in != rows out + quarantined", err=True)
        raise typer.Exit(1)


@app.command()
def variants(
    input: Annotated[Optional[Path], typer.Option("--input", help="clean stage output folder")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder")] = None,
    backend: Annotated[Optional[str], typer.Option(help="rules | hf | openai")] = None,
    params: ParamsFile = None,
    set_: Sets = None,
):
    """Generate equivalent and single-error report variants, validated by re-labelling."""
    with user_errors():
        p = load(params, set_, **{"variants.input": str(input) if input else None,
                                  "variants.out": str(out) if out else None, "variants.backend": backend})
        from components.variants.run import run_variants

        summary = run_variants(p.variants)
    from components.stage_metadata import report_variants

    report_variants(p, summary)
    _print(summary)


encoder_app = typer.Typer(help="LLM2VEC4CXR: train the text encoder, embed reports.", no_args_is_help=True)
app.add_typer(encoder_app, name="encoder")


@encoder_app.command("train")
def encoder_train(params: ParamsFile = None, set_: Sets = None):
    """Pretrain the demo LM (unless encoder.base_model is set), MNTP with LoRA, then supervised contrastive."""
    with user_errors():
        p = load(params, set_)
        from components.encoder.stage import train_encoder

        summary = train_encoder(p.encoder)
    from components.stage_metadata import report_encoder

    report_encoder(p, summary)
    _print(summary)


@encoder_app.command("baseline")
def encoder_baseline(params: ParamsFile = None, set_: Sets = None):
    """Train the BERT baseline of the same size and data budget (MLM, then the same contrastive step)."""
    with user_errors():
        p = load(params, set_)
        from components.encoder.stage import train_baseline

        summary = train_baseline(p.encoder)
    from components.stage_metadata import report_baseline

    report_baseline(p, summary)
    _print(summary)


@encoder_app.command("embed")
def encoder_embed(params: ParamsFile = None, set_: Sets = None):
    """Embed every clean report and accepted variant (cached per encoder content hash)."""
    with user_errors():
        p = load(params, set_)
        from components.encoder.stage import embed

        summary = embed(p.embed)
    from components.stage_metadata import report_embed

    report_embed(p, summary)
    _print(summary)


@app.callback()
def _main() -> None:
    project_environment()


if __name__ == "__main__":
    app()
