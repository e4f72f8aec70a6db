"""`cxr`: one subcommand per pipeline stage, generated from the stage declarations (components/stages).

Every stage command reads params.yaml (or --params FILE), applies repeated `--set section.key=value`,
then its own options, which are shorthands for --set. DVC stages and Dagster assets call exactly these
commands. Heavy libraries are imported inside the stage that needs them, so `cxr --help` stays instant.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from components.parallel import request_stop
from components.stages import ORDER, module

app = typer.Typer(help=__doc__.split("\n")[0], no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)

ParamsFile = Annotated[Optional[Path], typer.Option("--params", help="params file (default: ./params.yaml)")]
Metrics = Annotated[Optional[Path], typer.Option(
    "--metrics", help="metrics JSON (default: with --out, <out>/metrics.json; else params)")]
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
    except (ValueError, OSError) as e:  # OSError messages name the file (permission, not a folder, ...)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def load(params_file: Path | None, sets: list[str] | None, **shorthands):
    """Params with --set overrides, then the subcommand's own options (None = not given)."""
    from components.params import load_params

    overrides = list(sets or []) + [f"{k}={json.dumps(v)}" for k, v in shorthands.items() if v is not None]
    if params_file is None and not Path("params.yaml").exists():
        typer.echo(f"note: no params.yaml in {Path.cwd()}; using the built-in defaults of components/params/ "
                   "(pass --params FILE to use another)", err=True)
    return load_params(params_file, overrides)


def _metrics_shorthand(stage, options: dict) -> dict:
    """A run given --out writes nothing outside it: its metrics go into the output folder, unless
    --metrics says where (DVC runs give neither and use params)."""
    key = stage.metrics[0][2:-1] if stage.metrics else None
    out = next((options[_arg(o)] for o in stage.options if o.flag == "--out"), None)
    if key is None or (options.get("metrics") is None and out is None):
        return {}
    return {key: str(options.get("metrics") or Path(out) / "metrics.json")}


def _verdict(summary: dict) -> None:
    """Exit 1, with one line, when the stage's own result says the run failed."""
    if summary.get("conservation_ok") is False:
        lost = (summary.get("records") or {}).get("lost")
        typer.echo("error: conservation failed: rows in != rows out + quarantined"
                   + (f"; source records in no study: {', '.join(lost)}" if lost else ""), err=True)
        raise typer.Exit(1)
    counts = summary.get("studies")
    if isinstance(counts, dict) and counts.get("out") == 0:  # kept nothing: failed, however tidy
        top = Counter(counts.get("by_reason", {})).most_common(3)
        reasons = ", ".join(f"{reason} ({n})" for reason, n in top) or "none recorded"
        typer.echo(f"error: no usable studies: all {counts.get('quarantined', 0)} of {counts.get('in', 0)} "
                   f"studies were quarantined; top reasons: {reasons} (see quarantine.parquet)", err=True)
        raise typer.Exit(1)
    if summary.get("gate_failed"):  # a failed validation gate: `dvc repro` stops where Dagster stops
        typer.echo(f"error: {summary['gate_failed']}", err=True)
        raise typer.Exit(1)


def _print(summary: dict) -> None:
    json.dump(summary, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def run_stage(name: str, params, item: str = "") -> dict:
    """Run one stage on its declared params view, report its Dagster metadata (a no-op outside Dagster).
    A foreach stage runs one item: `run(params, item)`, `metadata(params, summary, item)`."""
    from components.pipes import report_materialization, under_dagster
    from components.stages import ScopedParams
    from components.stages.code import code_version

    stage_module = module(name)
    scoped = ScopedParams(params, stage_module.STAGE.params)
    per_item = (item,) if stage_module.STAGE.foreach else ()
    summary = stage_module.run(scoped, *per_item)
    _log_run(stage_module.STAGE, item, params, summary, scoped.digest())
    if under_dagster():
        report_materialization({**stage_module.metadata(scoped, summary, *per_item), "params_hash": scoped.digest(),
                                "code_version": code_version(name),
                                "params": {"raw_value": scoped.values(), "type": "json"}})
    return summary


def _log_run(stage, item: str, params, summary: dict, params_hash: str) -> None:
    """Write the run's facts (timings, throughput, cache hits: what tracked files must not hold, see
    components.io.RUN_FACTS) to `_run/<stage>.json` in the stage's first output, which DVC ignores."""
    import socket
    from datetime import datetime, timezone

    from components.io import run_dir, stable, write_json
    from components.stages.base import resolve

    kept = stable(summary)
    record = {"stage": stage.instance(item), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hostname": socket.gethostname(), "params_hash": params_hash,
              **{k: v for k, v in summary.items() if k not in kept}}
    first = resolve((stage.outs or stage.metrics)[0], params.model_dump(mode="json"), item)
    write_json(run_dir(first) / f"{stage.instance(item)}.json", record)


def _stage_command(name: str):
    stage = module(name).STAGE

    def command(params: ParamsFile = None, set_: Sets = None, item: str = "", **options):
        with user_errors():
            p = load(params, set_, **{opt.key: options[_arg(opt)] for opt in stage.options},
                     **_metrics_shorthand(stage, options))
            if stage.foreach and item not in stage.items(p.model_dump(mode="json")):
                raise ValueError(f"{item!r} is not one of {stage.foreach} = {stage.items(p.model_dump(mode='json'))}")
            summary = run_stage(name, p, item)
        _print(summary)
        _verdict(summary)

    extra = [inspect.Parameter(_arg(opt), inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=Annotated[Optional[opt.type], typer.Option(opt.flag, help=opt.help)])
             for opt in stage.options]
    if stage.metrics and any(o.flag == "--out" for o in stage.options):
        extra.append(inspect.Parameter("metrics", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Metrics))
    base = [inspect.Parameter("params", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ParamsFile),
            inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Sets)]
    if stage.foreach:  # `cxr ablation minilm`: the item is the first argument
        base.insert(0, inspect.Parameter("item", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Annotated[
            str, typer.Argument(help=f"one element of {stage.foreach}")]))
    command.__signature__ = inspect.Signature(base + extra)
    command.__doc__ = f"{stage.description} [DVC stage `{name}`, Dagster asset `{stage.asset}`]"
    return command


def _arg(option) -> str:
    return option.flag.lstrip("-").replace("-", "_")


def _extra_command(name: str, verb: str):
    """`cxr <stage> <verb>`: a function `verb(params, **options)` of the stage module; its keyword
    arguments become options (`per_stratum` -> --per-stratum; a list is repeatable)."""
    import typing

    stage_module = module(name)
    fn = getattr(stage_module, verb)
    hints = typing.get_type_hints(fn)

    def command(params: ParamsFile = None, set_: Sets = None, **options):
        from components.stages import ScopedParams

        with user_errors():
            summary = fn(ScopedParams(load(params, set_), stage_module.STAGE.params), **options)
        _print(summary)

    extra = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=p.default,
                               annotation=Annotated[hints[k], typer.Option(f"--{k.replace('_', '-')}")])
             for k, p in list(inspect.signature(fn).parameters.items())[1:]]
    base = [inspect.Parameter("params", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ParamsFile),
            inspect.Parameter("set_", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Sets)]
    command.__signature__ = inspect.Signature(base + extra)
    command.__doc__ = fn.__doc__
    return command


def _stage_group(name: str) -> typer.Typer:
    """A stage with extra verbs: `cxr <stage> [options]` runs the stage, `cxr <stage> <verb>` the verb."""
    run = _stage_command(name)
    group = typer.Typer(invoke_without_command=True, add_completion=False, pretty_exceptions_enable=False)

    def callback(ctx: typer.Context, **kwargs):
        if ctx.invoked_subcommand is None:
            run(**kwargs)

    callback.__signature__ = inspect.Signature(
        [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
        + list(run.__signature__.parameters.values()))
    callback.__doc__ = run.__doc__
    group.callback()(callback)
    for verb in module(name).STAGE.extra_commands:
        group.command(verb)(_extra_command(name, verb))
    return group


for _name in ORDER:
    if module(_name).STAGE.extra_commands:
        app.add_typer(_stage_group(_name), name=_name)
    else:
        app.command(name=_name)(_stage_command(_name))


@app.command("stages")
def stages(write_dvc: Annotated[bool, typer.Option("--write-dvc", help="regenerate dvc.yaml")] = False):
    """List the stages (CLI/DVC name, Dagster asset, group, upstream), or regenerate dvc.yaml from them."""
    from components.stages import all_stages
    from components.stages.dvcfile import dvc_yaml

    if write_dvc:
        Path("dvc.yaml").write_text(dvc_yaml())
        typer.echo("wrote dvc.yaml")
        return
    for s in all_stages():
        typer.echo(f"{s.name:<10} {s.asset:<18} {s.group:<9} {s.description}")


@app.command("profile")
def profile(file: Annotated[Path, typer.Argument(help="a partial params file, e.g. params/bench.yaml")]):
    """Print a params profile as `-S key=value` arguments for `dvc exp run` (checked against the params model)."""
    import shlex

    with user_errors():
        from components.params import overlay_assignments

        assignments = overlay_assignments(file)
    typer.echo(" ".join(f"-S {shlex.quote(a)}" for a in assignments))


@app.command()
def hostile(
    out: Annotated[Path, typer.Option(help="output folder for the corpus")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
):
    """Write the hostile-input corpus (bad manifests, ids, reports, DICOMs, PNGs, XML) with its expected outcomes."""
    with user_errors():
        from components.synth.hostile import generate_corpus

        summary = generate_corpus(out, seed)
    _print(summary)


@app.command("report")
def report(params: ParamsFile = None, as_json: Annotated[bool, typer.Option("--json")] = False):
    """One table: every stage's headline figures (its DVC metrics) and where its files are."""
    import yaml

    from components.overview import format_table, rows

    file = params or Path("params.yaml")
    with user_errors():
        if not file.exists():
            raise FileNotFoundError(f"{file} not found: run from the project root or pass --params")
        tree = yaml.safe_load(file.read_text())
        table = rows(tree)
    if as_json:
        _print({r["stage"]: r for r in table})
        return
    typer.echo(format_table(table))
    evaluation = Path(tree["evaluate"]["out"]) / "metrics.json"
    if evaluation.exists():
        from components.evaluation.report import summary_table

        typer.echo("\n" + summary_table(json.loads(evaluation.read_text())))


@app.command("lineage")
def lineage(target: Annotated[str, typer.Argument(
                help="an artifact (a stage output or a file inside one), or a Bento or model tag of `cxr package`")],
            as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
            verify: Annotated[bool, typer.Option(help="ask `dvc status` whether the workspace matches")] = True):
    """The chain from an artifact back to raw data: each stage, its params, DVC hashes, the git commit."""
    from components.lineage import find_root, format_trace, trace, trace_package

    path = Path(target)
    with user_errors():
        if path.exists() or ":" not in target:
            t = trace(find_root(path.resolve()), path.resolve(), verify=verify)
        else:  # a tag: the model card it carries leads to the dvc.lock that made it
            from serving.bento import stored_card  # BentoML stays out of components' module imports

            t = trace_package(find_root(Path.cwd()), stored_card(target), verify=verify)
    if as_json:
        _print(t)
    else:
        typer.echo(format_trace(t))


def _terminate(signum, frame):  # noqa: ARG001
    """SIGTERM (Dagster cancelling a run, `kill`) unwinds like Ctrl-C: temp folders are removed,
    workers stopped, the output lock released."""
    request_stop(signum)


@app.callback()
def _main() -> None:
    project_environment()
    signal.signal(signal.SIGTERM, _terminate)


if __name__ == "__main__":
    app()
