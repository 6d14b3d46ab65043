"""Command line: ``python -m kdcore presets``, ``python -m kdcore run PRESET`` and
``python -m kdcore runs``.

Runs use the same code path as the app's lab (:func:`kdcore.jobs.execute`, which calls
:func:`kdcore.presets.run_preset`) and land in the same run store, so a run started here shows in
the app's history. ``run custom --set student=mlp-30 ...`` runs a lab-style custom config.
Problems the user can fix (no data, an unknown preset, no GPU) end with one line on stderr and
exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .checkpoint import CheckpointError
from .data import DATA_DIR_ENV, DataUnavailable
from .jobs import RunSpec, execute, failure_line
from .presets import PRESETS, RUNNERS, Monitor, run_preset
from .store import STATUSES, STORE_ENV, Store, StoreError, iso
from .train import EpochRecord, Progress, pick_device


class ProgressBar(Monitor):
    """A one-line progress bar on stderr (redrawn in place on a terminal, per epoch otherwise)."""

    def __init__(self, stream=None, width: int = 28):
        # sys.stderr when made, not when this module was imported (a test swaps the stream)
        stream = sys.stderr if stream is None else stream
        self.stream, self.width = stream, width
        self.tty = stream.isatty()
        self.model, self.index, self.count = "", 0, 1
        self._last = 0.0

    def on_model_start(self, name: str, index: int, count: int) -> None:
        self.model, self.index, self.count = name, index, count

    def _line(self, p: Progress, extra: str = "") -> str:
        filled = int(self.width * p.fraction)
        eta = "" if p.eta != p.eta else f" ETA {p.eta:5.0f}s"  # NaN check
        return (
            f"[{self.index + 1}/{self.count} {self.model}] epoch {p.epoch} "
            f"|{'#' * filled}{'.' * (self.width - filled)}| {100 * p.fraction:3.0f}%{eta}{extra}"
        )

    def on_step(self, progress: Progress) -> None:
        now = time.monotonic()
        if self.tty and now - self._last > 0.2:
            self._last = now
            self.stream.write("\r" + self._line(progress) + "\033[K")
            self.stream.flush()

    def on_epoch(self, record: EpochRecord, progress: Progress) -> None:
        extra = (
            f"  loss {record.losses['total']:.4f}  test acc {record.test_accuracy:.4f}"
            f"  errors {record.test_errors}  {record.seconds:.1f}s"
        )
        self.stream.write(("\r" if self.tty else "") + self._line(progress, extra) + "\n")
        self.stream.flush()

    def on_model_end(self, name: str, summary: dict) -> None:
        cached = " (cached teacher)" if summary.get("cached") else ""
        self.stream.write(
            f"  {name}: {summary['test_errors']} test errors, "
            f"accuracy {summary['test_accuracy']:.4f}{cached}\n"
        )


def cmd_presets(args: argparse.Namespace) -> int:
    from .reference import load_references, load_seed_study, seed_line

    refs, _ = load_references()  # a damaged file only loses its line here
    for p in PRESETS.values():
        print(f"{p.name:20s} {p.title}")
        print(f"{'':20s} default epochs {p.config.epochs}; paper: {p.source}")
        for name, changes in p.profiles.items():
            shown = ", ".join(f"{k}={v}" for k, v in changes.items())
            print(f"{'':20s} --profile {name}: {shown}")
        ref = refs.get(p.name)
        if ref is not None:
            paper = ref.result["paper"].get("test_errors") or {}
            errors = ", ".join(
                f"{m} {s['test_errors']}" + (f" (paper {paper[m]})" if m in paper else "")
                for m, s in ref.result["models"].items()
            )
            print(f"{'':20s} {ref.label()}: {errors}")
            adj = ref.result.get("bias_adjustment")
            if adj:
                print(f"{'':20s} {bias_line(adj, ref.result['paper'].get('bias_adjustment'))}")
            rows = load_seed_study(ref)
            if rows:
                print(f"{'':20s} {seed_line(ref, rows)}")
            print(f"{'':20s} in {ref.path}")
    return 0


def _print_summary(result: dict) -> None:
    paper = result.get("paper", {}).get("test_errors", {})
    w = max([16, *(len(n) + 1 for n in result["models"])])  # the longest name, and a space
    print(f"{'model':{w}s}{'test errors':>12s}{'accuracy':>10s}{'paper':>8s}{'seconds':>9s}")
    for name, m in result["models"].items():
        ref = paper.get(name, "")
        print(
            f"{name:{w}s}{m['test_errors']:12d}{m['test_accuracy']:10.4f}{ref!s:>8s}"
            f"{m['seconds']:9.1f}"
        )
    adj = result.get("bias_adjustment")
    if adj:
        print(bias_line(adj, result.get("paper", {}).get("bias_adjustment")))
    print(f"status: {result['status']} {result['message']}".rstrip())


def bias_line(adj: dict, paper: dict | None = None) -> str:
    """The bias shift of omitted-3 / only-7-8 in one line, the paper's beside it: "the 3 bias
    +2.25 (best on the test set): 138 (67) -> 100 (20) test errors (on the 1,010 test 3s in
    brackets); chosen on 5,000 held-out images +2.7: 103 (17); paper +3.5: 206 (133) -> 109
    (14)". Where the paper gives percentages only, ours are percentages too."""
    classes = adj["classes"]
    pct = paper is not None and "errors_before" not in paper

    def errs(d: dict, when: str) -> str:
        n = d.get(f"errors_{when}")
        text = f"{d[f'error_percent_{when}']:g}%" if pct or n is None else f"{n}"
        on = d.get(f"errors_on_classes_{when}")
        return text if on is None else f"{text} ({on})"

    line = (
        f"the {' and '.join(map(str, classes))} bias{'es' if len(classes) > 1 else ''} "
        f"{adj['bias']:+g} (best on the test set): {errs(adj, 'before')} -> "
        f"{errs(adj, 'after')} test {'error' if pct else 'errors'} (in brackets: errors on the "
        f"{adj.get('n_test_classes', '?'):,} test {' and '.join(f'{c}s' for c in classes)})"
    )
    held = adj.get("validation")
    if held:
        line += (
            f"; chosen on {held['n']:,} held-out images {held['bias']:+g}: {errs(held, 'after')}"
        )
    if paper:
        line += f"; paper {paper['bias']:+g}: {errs(paper, 'before')} -> {errs(paper, 'after')}"
    return line


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["T=4", "student=mlp-30"]`` -> ``{"T": "4", ...}``. The runner parses each value by its
    field's type and checks its range (:meth:`kdcore.runner.Preset.with_changes`)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE")
        out[key.strip()] = raw
    return out


def writable_file(path: str) -> Path:
    """``path`` as a file this process can create or replace, checked before any training (a
    finished run must not fail at its last step). ValueError (one line) when it cannot."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise ValueError(f"--out {path}: is a folder; name a file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # A real write into the folder: os.access says yes to root on a read-only file system.
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".kdcore-out-"):
            pass
        if out.exists() and not os.access(out, os.W_OK):
            raise PermissionError(f"{out.name} is read-only")
    except OSError as err:
        raise ValueError(f"--out {path}: cannot write there ({err.strerror or err})") from None
    return out


def cmd_run(args: argparse.Namespace) -> int:
    if args.preset not in RUNNERS:
        raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(RUNNERS)}")
    # Everything the user typed is checked before anything trains.
    pick_device(args.device)
    spec = _spec(args)
    out = writable_file(args.out) if args.out else None
    if args.no_store:
        result = run_preset(
            spec.name,
            device=args.device,
            monitor=ProgressBar(),
            use_cache=not args.no_cache,
            data_dir=args.data_dir,
            config=spec.config,
        )
    else:
        result = _run_stored(args, spec)
        if result is None:  # no data, out of memory, ...: already explained on stderr
            return 2
    _print_summary(result)
    if out is not None:
        try:
            out.write_text(json.dumps(result, indent=1))
        except OSError as err:  # the folder changed while training (the run is in the store)
            print(f"error: --out {args.out}: {err.strerror or err}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}")
    return 0 if result["status"] == "completed" else 1


def _spec(args: argparse.Namespace) -> RunSpec:
    """The run the arguments ask for, every value checked (ValueError, one line)."""
    changes: dict = parse_overrides(args.set)
    for key in ("device", "name", "config"):
        if key in changes:
            hint = "use --device" if key == "device" else "not a setting of any preset"
            raise ValueError(f"--set {key}=...: {hint}")
    for flag in ("epochs", "seed"):  # --epochs and --seed win over --set epochs=, seed=
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    return RunSpec.make(args.preset, device=args.device, profile=args.profile, **changes)


def _run_stored(args: argparse.Namespace, spec: RunSpec) -> dict | None:
    """Run through the store (the app's code path). None when the run failed without a result."""
    store = Store(args.store)
    if args.reuse:
        done = store.find_completed(spec.key(pick_device(spec.device)))
        if done is not None and done.result is not None:
            print(f"identical run #{done.id} of {iso(done.finished)} found in {store.path}")
            return done.result
    run_id, result = execute(
        store,
        spec,
        monitors=(ProgressBar(),),
        use_cache=not args.no_cache,
        data_dir=args.data_dir,
    )
    if result is None:  # one line, like every other user-fixable error
        run = store.get(run_id)
        print(f"error: {run.message if run else 'the run failed'}", file=sys.stderr)
    else:
        print(f"run #{run_id} stored in {store.path}", file=sys.stderr)
    return result


def cmd_runs(args: argparse.Namespace) -> int:
    store = Store(args.store)
    store.reap_stale()
    runs = store.list(status=args.status, limit=args.limit)
    for run_id, why in store.unreadable:  # stderr: --json output stays valid JSON
        print(f"run #{run_id} is unreadable: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=1))
        return 0
    if not runs:
        print(f"no runs in {store.path}")
        return 0
    print(f"{'id':>5s}  {'created':19s}  {'status':9s}  {'run':26s}  {'device':7s}  results")
    for r in runs:
        if r.active:
            what = f"{100 * r.progress:.0f}% {r.live.get('model', '')}".strip()
        else:
            what = ", ".join(f"{k} {m['test_errors']}" for k, m in r.models.items())
            what = (what + "  " + r.message).strip() if r.status != "completed" else what
        print(
            f"{r.id:5d}  {iso(r.created):19s}  {r.status:9s}  {r.title:26s}  {r.device:7s}  {what}"
        )
    return 0


_DEFAULT_STORE = "~/.cache/kdcore/runs.sqlite"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m kdcore", description="Knowledge distillation core")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)
    p = sub.add_parser("run", help="run a preset and print/write its results")
    p.add_argument("preset", help="a name from `python -m kdcore presets`, or custom")
    p.add_argument(
        "--epochs", type=int,
        help="the preset's epochs (default: its own); a teacher with its own teacher_epochs "
        "keeps them: --set teacher_epochs=N",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1")
    p.add_argument("--seed", type=int, help="random seed (default: the preset's)")
    p.add_argument(
        "--profile",
        help="start from a named profile of the preset instead of its default, e.g. paper "
        "(the paper-length recipe; `presets` lists each preset's profiles)",
    )
    p.add_argument("--out", help="write the results as JSON to this file")
    p.add_argument("--data-dir", help=f"folder with data sets (default: ${DATA_DIR_ENV})")
    p.add_argument("--no-cache", action="store_true", help="retrain the teacher even if cached")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set T=4 --set student=mlp-30 (repeatable)",
    )
    p.add_argument("--store", help=f"run store file (default: ${STORE_ENV} or {_DEFAULT_STORE})")
    p.add_argument("--no-store", action="store_true", help="do not record the run")
    p.add_argument(
        "--reuse", action="store_true", help="print an identical stored run instead of training"
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("runs", help="list the runs in the run store")
    p.add_argument("--store", help=f"run store file (default: ${STORE_ENV} or {_DEFAULT_STORE})")
    p.add_argument("--status", choices=STATUSES, help="only runs with this status")
    p.add_argument("--limit", type=int, help="at most this many, newest first")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.set_defaults(func=cmd_runs)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("epochs", "limit"):
        if getattr(args, flag, None) is not None and getattr(args, flag) < 1:
            print(f"error: --{flag} must be at least 1", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except (DataUnavailable, CheckpointError, StoreError, KeyError, ValueError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m kdcore runs --json | head`: the reader left early
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0
    except Exception as err:  # a run with --no-store: what the store would have recorded
        if os.environ.get("KD_DEBUG"):
            raise
        print(f"error: {failure_line(err, getattr(args, 'device', ''))}", file=sys.stderr)
        print("(KD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
