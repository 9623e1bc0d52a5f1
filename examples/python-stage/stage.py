#!/usr/bin/env python3
"""folder-summary: a uda-pipe stage written in plain Python (standard library only).

It counts the files of its input folder by extension and writes `summary.json` and
`metrics.json`. It implements the whole stage contract of docs/writing-a-stage.md:

  folder-summary --describe
  folder-summary --out DIR --input data=PATH [--params FILE.json] [--param KEY=VALUE]...

progress as JSON lines on stderr when UDA_PROGRESS=jsonl, and an output folder that appears only
when the stage succeeded.

The runner finds a stage by its kind, so install this file under the name `folder-summary` in a
folder on UDA_STAGE_PATH, for example:

  mkdir -p my-stages && ln -s "$PWD/examples/python-stage/stage.py" my-stages/folder-summary
  UDA_STAGE_PATH=my-stages ./uda-pipe run my-pipeline.yaml
"""

import argparse
import fnmatch
import json
import os
import shutil
import sys
import time
from pathlib import Path

KIND = "folder-summary"

# What `--describe` prints. Each param's default also fixes its type for the runner: write a
# float default with a decimal point (0.0), so that integers are accepted for it too.
DESCRIPTION = {
    "kind": KIND,
    "doc": "Counts the files of a folder by extension (an example stage in Python)",
    "inputs": [
        {"name": "data", "doc": "the folder to summarise", "required": True},
    ],
    "outputs": [
        {"name": "summary.json", "doc": "files and bytes per extension, the largest files"},
        {"name": "metrics.json", "doc": "files, bytes"},
    ],
    "params": {
        "pattern": "*",  # only file names matching this glob
        "skip_hidden": True,  # skip files and folders whose name starts with "."
        "min_kib": 0.0,  # skip files smaller than this many KiB
        "largest": 3,  # how many of the largest files to list
    },
}


class StageError(Exception):
    """A failure to report as `error: KIND: message` with exit code 1."""


class UsageError(StageError):
    """Bad arguments (exit code 2)."""


class Progress:
    """`{"uda_progress": {...}}` lines on stderr under the runner, at most 4 a second."""

    def __init__(self, label, total):
        self.on = os.environ.get("UDA_PROGRESS") == "jsonl"
        self.label, self.total, self.done, self.last = label, total, 0, 0.0
        self._emit(force=True)

    def inc(self, n=1):
        self.done += n
        self._emit(force=self.done >= self.total)

    def _emit(self, force):
        if not self.on or (not force and time.monotonic() - self.last < 0.25):
            return
        self.last = time.monotonic()
        line = {"uda_progress": {"stage": KIND, "label": self.label, "done": self.done,
                                 "total": self.total, "message": ""}}
        print(json.dumps(line), file=sys.stderr, flush=True)


def split_assignment(text, flag):
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"{flag} '{text}' is not of the form NAME=VALUE")
    return name.strip(), value


def type_matches(value, default):
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def load_params(args):
    """`--params FILE` (JSON: the runner writes JSON), then each `--param KEY=VALUE` over it."""
    params = {}
    if args.params:
        try:
            params = json.loads(Path(args.params).read_text())
        except (OSError, ValueError) as e:
            raise StageError(f"cannot read params file {args.params}: {e}") from e
        if not isinstance(params, dict):
            raise StageError(f"params file {args.params}: expected a mapping of param names to values")
    for item in args.param:
        key, raw = split_assignment(item, "--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw  # a bare word is a string
    defaults = DESCRIPTION["params"]
    for key, value in params.items():
        if key not in defaults:
            raise StageError(f"bad params for stage {KIND}: unknown param '{key}' "
                             f"(it takes: {', '.join(defaults)})")
        if not type_matches(value, defaults[key]):
            raise StageError(f"bad params for stage {KIND}: param '{key}' must be like the "
                             f"default {json.dumps(defaults[key])}, found {json.dumps(value)}")
    if params.get("largest", 0) < 0:
        raise StageError("param largest must be >= 0")
    return {**defaults, **params}


def resolve_inputs(given):
    specs = {s["name"]: s for s in DESCRIPTION["inputs"]}
    inputs = {}
    for item in given:
        name, path = split_assignment(item, "--input")
        if name not in specs:
            raise StageError(f"unknown input '{name}' for stage {KIND}; it takes: {', '.join(specs)}")
        if not Path(path).exists():
            raise StageError(f"input '{name}' = {path}: no such file or folder")
        inputs[name] = Path(path)
    for name, spec in specs.items():
        if spec["required"] and name not in inputs:
            raise StageError(f"missing required input '{name}' (pass --input {name}=PATH)")
    return inputs


def summarise(inputs, params, out):
    """The stage's work: writes everything into `out` (the private staging folder)."""
    root = inputs["data"]
    if not root.is_dir():
        raise StageError(f"input data {root}: not a folder")
    files = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        if params["skip_hidden"]:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            names = [n for n in names if not n.startswith(".")]
        files += [Path(folder, n) for n in names if fnmatch.fnmatch(n, params["pattern"])]
    files.sort()
    progress = Progress("summarising", len(files))
    by_extension, sizes = {}, []
    for path in files:
        size = path.stat().st_size
        progress.inc()
        if size < params["min_kib"] * 1024:
            continue
        entry = by_extension.setdefault(path.suffix or "(none)", {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += size
        sizes.append((size, path.relative_to(root).as_posix()))
    sizes.sort(key=lambda s: (-s[0], s[1]))
    total = sum(size for size, _ in sizes)
    summary = {
        "files": len(sizes),
        "bytes": total,
        "by_extension": dict(sorted(by_extension.items())),
        "largest": [{"path": p, "bytes": s} for s, p in sizes[: params["largest"]]],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    # Headline numbers the runner keeps in entry.json and `uda-pipe show` prints: a flat object.
    (out / "metrics.json").write_text(json.dumps({"files": len(sizes), "bytes": total}, indent=2) + "\n")
    print(f"{len(sizes)} files, {total} bytes")  # ordinary output goes to the entry's log.txt


def main(argv):
    parser = argparse.ArgumentParser(prog=KIND, description=DESCRIPTION["doc"], allow_abbrev=False)
    parser.add_argument("--out", metavar="DIR", help="output folder (must not exist; written atomically)")
    parser.add_argument("--input", metavar="NAME=PATH", action="append", default=[])
    parser.add_argument("--params", metavar="FILE", help="JSON object of params")
    parser.add_argument("-p", "--param", metavar="KEY=VALUE", action="append", default=[],
                        help="set one param (VALUE read as JSON, else a string); wins over --params")
    parser.add_argument("--describe", action="store_true",
                        help="print inputs, outputs and params with defaults as JSON, then exit")
    args = parser.parse_args(argv)
    if args.describe:
        print(json.dumps(DESCRIPTION, indent=2))  # nothing else may go to stdout here
        return 0
    try:
        if not args.out:
            raise UsageError("--out DIR is required (the folder the stage's outputs go to)")
        params = load_params(args)
        inputs = resolve_inputs(args.input)
        out = Path(args.out)
        if out.exists():
            raise StageError(f"output folder {out} already exists; choose a new --out or remove it")
        # Write into a private sibling folder and rename it into place only on success, so an
        # interrupted or failed run never leaves a half-written `out` behind.
        staging = out.with_name(f"{out.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            summarise(inputs, params, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        staging.rename(out)
    except StageError as e:
        print(f"error: {KIND}: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
