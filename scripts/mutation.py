"""Mutation testing of the modules that carry the project's claims (cosmic-ray).

    .venv/bin/python scripts/mutation.py                     # a fixed sample per module (developers)
    .venv/bin/python scripts/mutation.py --all               # every mutant (the scheduled CI run)
    .venv/bin/python scripts/mutation.py --modules protocol,ble-rules --sample 40
    .venv/bin/python scripts/mutation.py --list              # the sampled mutants, without running

The modules, their source files and the tests that cover each are in
tools/mutation/modules.toml. cosmic-ray enumerates the mutants and applies each one to
the file on disk (so the firmware MicroPython reads is mutated too; the simulated
board's .mpy cache is keyed by source content and recompiles), runs the module's tests
with -x and a timeout, and puts the file back. Every source file is checked against its
snapshot at the end, and restored if an interruption left a mutant behind.

The sample is reproducible: each mutant has a key (file, operator, the text of its line,
columns, and a counter for identical ones) that does not move when other lines change,
and the sample is the N keys with the smallest hash under the seed. So two trees share
the mutants their common lines produce; --ids-from runs exactly the mutants of an
earlier run's JSON (--json), to compare before and after.

Prints per module: mutants run, killed, survived, timeouts, score, and each surviving
mutant (file:line, operator, diff). Exit 0 (it reports, it is no gate) unless a
module's tests fail unmutated (2) or --min-score is given and missed (1).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

from cosmic_ray.commands.init import init as cosmic_ray_init
from cosmic_ray.mutating import mutate_and_test
from cosmic_ray.work_db import WorkDB
from cosmic_ray.work_item import MutationSpec, TestOutcome, WorkerOutcome

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "tools" / "mutation" / "modules.toml"
PYTEST_ARGS = ("-x", "-q", "-p", "no:cacheprovider")
TIMEOUT_OUTPUT = "timeout"  # what cosmic-ray's run_tests reports for a test run it killed


@dataclass(frozen=True)
class Module:
    name: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()


@dataclass
class Mutant:
    key: str  # stable across trees: see key_of
    id: str  # short hash of the key
    spec: MutationSpec

    @property
    def where(self) -> str:
        return f"{self.spec.module_path}:{self.spec.start_pos[0]}"

    @property
    def operator(self) -> str:
        return str(self.spec.operator_name).removeprefix("core/")


@dataclass
class Outcome:
    id: str
    key: str
    where: str
    operator: str
    result: str  # killed, survived, timeout, incompetent
    seconds: float
    diff: str = ""


@dataclass
class ModuleReport:
    name: str
    tests: list[str]
    missing_tests: list[str]
    mutants_total: int
    baseline_s: float
    timeout_s: float
    outcomes: list[Outcome] = field(default_factory=list)
    absent_ids: list[str] = field(default_factory=list)  # asked for by --ids-from, not in this tree

    def count(self, result: str) -> int:
        return sum(o.result == result for o in self.outcomes)

    @property
    def score(self) -> float | None:
        """Killed (timeouts included) over killed plus survived; incompetent mutants
        (code that does not even load) count for neither."""
        killed = self.count("killed") + self.count("timeout")
        judged = killed + self.count("survived")
        return 100.0 * killed / judged if judged else None


def load_config(path: Path) -> tuple[dict[str, int | float], list[Module]]:
    data = tomllib.loads(path.read_text())
    modules = [
        Module(m["name"], tuple(m["files"]), tuple(m["tests"]), tuple(m.get("functions", ())))
        for m in data["module"]
    ]
    return data["run"], modules


def function_lines(source: str, qualnames: tuple[str, ...]) -> set[int]:
    """Line numbers of the named functions ("Class.method" or "function"), decorators included."""
    wanted = set(qualnames)
    lines: set[int] = set()

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qualname = prefix + child.name
                if qualname in wanted and not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    lines.update(range(first, (child.end_lineno or child.lineno) + 1))
                    wanted.discard(qualname)
                visit(child, qualname + ".")

    visit(ast.parse(source), "")
    if wanted:
        raise SystemExit(f"functions not found: {', '.join(sorted(wanted))}")
    return lines


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations are. A mutant there (``X | None`` to ``X & None``) is
    equivalent: the host modules start with ``from __future__ import annotations``, so
    annotations are never evaluated. Such mutants are left out."""
    if "from __future__ import annotations" not in source:
        return []
    spans = []
    for node in ast.walk(ast.parse(source)):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg | ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotations.append(node.returns)
        spans += [((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0))
                  for a in annotations if a is not None]
    return spans


def key_of(spec: MutationSpec, line_text: str) -> str:
    (_, start_col), (end_line, end_col) = spec.start_pos, spec.end_pos
    span = end_col - start_col if end_line == spec.start_pos[0] else f"{end_line - spec.start_pos[0]}l"
    return f"{spec.module_path}|{spec.operator_name}|{line_text.strip()}|{start_col}|{span}"


def enumerate_mutants(root: Path, module: Module, db_path: Path) -> list[Mutant]:
    """Every mutant cosmic-ray makes of the module's files (restricted to `functions`)."""
    db = WorkDB(str(db_path), WorkDB.Mode.create)
    try:
        cosmic_ray_init([Path(f) for f in module.files], db, {})
        specs = [item.mutations[0] for item in db.work_items]
    finally:
        db.close()
    sources = {f: (root / f).read_text() for f in module.files}
    lines = {f: s.splitlines() for f, s in sources.items()}
    keep = {f: function_lines(s, module.functions) for f, s in sources.items()} if module.functions else None
    annotations = {f: annotation_spans(s) for f, s in sources.items()}
    specs.sort(key=lambda s: (str(s.module_path), s.operator_name, s.occurrence))
    mutants: list[Mutant] = []
    seen: dict[str, int] = {}
    for spec in specs:
        path, line = str(spec.module_path), spec.start_pos[0]
        if keep is not None and line not in keep[path]:
            continue
        if any(start <= spec.start_pos < end for start, end in annotations[path]):
            continue
        base = key_of(spec, lines[path][line - 1])
        seen[base] = seen.get(base, 0) + 1  # identical lines or several mutations at one spot
        key = f"{base}|{seen[base]}"
        mutants.append(Mutant(key, hashlib.sha256(key.encode()).hexdigest()[:10], spec))
    return mutants


def sample(mutants: list[Mutant], n: int | None, seed: int) -> list[Mutant]:
    """The n mutants with the smallest seeded hash of their key: the same keys in any tree."""
    ranked = sorted(mutants, key=lambda m: hashlib.sha256(f"{seed}|{m.key}".encode()).digest())
    chosen = ranked if n is None else ranked[:n]
    return sorted(chosen, key=lambda m: (str(m.spec.module_path), m.spec.start_pos, m.key))


def test_command(python: str, tests: list[str]) -> str:
    return shlex.join([python, "-m", "pytest", *PYTEST_ARGS, *tests])


def present_tests(root: Path, tests: tuple[str, ...]) -> tuple[list[str], list[str]]:
    present = [t for t in tests if (root / t.split("::")[0]).exists()]
    return present, [t for t in tests if t not in present]


def short_diff(diff: str) -> str:
    """The changed lines only, without cosmic-ray's header."""
    return "\n".join(
        line for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("---", "+++"))
    )


def run_module(root: Path, module: Module, args: argparse.Namespace, settings: dict[str, int | float],
               ids_from: dict[str, list[str]] | None, work_dir: Path) -> ModuleReport:
    present, missing = present_tests(root, module.tests)
    command = test_command(args.python, present)
    mutants = enumerate_mutants(root, module, work_dir / f"{module.name}.sqlite")
    if ids_from is not None:
        wanted = ids_from.get(module.name, [])
        by_id = {m.id: m for m in mutants}
        chosen = [by_id[i] for i in wanted if i in by_id]
        absent = [i for i in wanted if i not in by_id]
    else:
        n = None if args.all else (args.sample or int(settings["sample"]))
        chosen, absent = sample(mutants, n, args.seed), []
    report = ModuleReport(module.name, present, missing, len(mutants), 0.0, 0.0, absent_ids=absent)
    print(f"\n== {module.name}: {len(chosen)} of {len(mutants)} mutants; tests: {command}", flush=True)
    for test in missing:
        print(f"   (not in this tree, left out: {test})")
    if args.list:
        for m in chosen:
            print(f"   {m.id} {m.where} {m.operator}")
        report.outcomes = [Outcome(m.id, m.key, m.where, m.operator, "listed", 0.0) for m in chosen]
        return report
    if not present:
        raise SystemExit(f"{module.name}: none of its tests is in this tree")
    start = time.monotonic()
    clean = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
    report.baseline_s = time.monotonic() - start
    if clean.returncode != 0:
        print(clean.stdout[-3000:] + clean.stderr[-2000:])
        raise SystemExit(f"{module.name}: the tests fail on the unmutated code; fix that first")
    report.timeout_s = max(float(settings["timeout_min_s"]), float(settings["timeout_factor"]) * report.baseline_s)
    print(f"   clean run {report.baseline_s:.1f} s, timeout per mutant {report.timeout_s:.0f} s", flush=True)
    for i, m in enumerate(chosen, 1):
        start = time.monotonic()
        result = mutate_and_test([m.spec], command, report.timeout_s)
        seconds = time.monotonic() - start
        if result.worker_outcome != WorkerOutcome.NORMAL:
            verdict = "incompetent"  # the mutation could not be applied or raised in cosmic-ray
        elif result.test_outcome == TestOutcome.SURVIVED:
            verdict = "survived"
        elif result.test_outcome == TestOutcome.KILLED:
            verdict = "timeout" if result.output == TIMEOUT_OUTPUT else "killed"
        else:
            verdict = "incompetent"
        report.outcomes.append(Outcome(m.id, m.key, m.where, m.operator, verdict, round(seconds, 1),
                                       short_diff(result.diff or "")))
        print(f"   [{i}/{len(chosen)}] {verdict:<11} {m.id} {m.where} {m.operator} ({seconds:.1f} s)", flush=True)
    return report


def print_summary(reports: list[ModuleReport]) -> None:
    print("\nmodule        run  killed  survived  timeouts  incompetent  score")
    totals = ModuleReport("total", [], [], 0, 0.0, 0.0)
    for r in reports:
        totals.outcomes += r.outcomes
        score = "-" if r.score is None else f"{r.score:.1f} %"
        print(f"{r.name:<12} {len(r.outcomes):>4} {r.count('killed'):>7} {r.count('survived'):>9} "
              f"{r.count('timeout'):>9} {r.count('incompetent'):>12}  {score}")
    score = "-" if totals.score is None else f"{totals.score:.1f} %"
    print(f"{'total':<12} {len(totals.outcomes):>4} {totals.count('killed'):>7} {totals.count('survived'):>9} "
          f"{totals.count('timeout'):>9} {totals.count('incompetent'):>12}  {score}")
    for r in reports:
        survivors = [o for o in r.outcomes if o.result == "survived"]
        if survivors:
            print(f"\nsurviving mutants, {r.name}:")
        for o in survivors:
            print(f"  {o.id} {o.where} {o.operator}")
            print("    " + o.diff.replace("\n", "\n    "))
        if r.absent_ids:
            print(f"\n{r.name}: {len(r.absent_ids)} mutants of --ids-from not in this tree: {' '.join(r.absent_ids)}")


def stop_test_runs() -> None:
    """cosmic-ray runs each test command in a session of its own; an interrupted run
    must not leave one going (with a mutant that loops it would never end)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(stat.parent.name), int(fields[1])
        if parent == os.getpid():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def snapshot(root: Path, modules: list[Module]) -> dict[Path, bytes]:
    return {root / f: (root / f).read_bytes() for m in modules for f in m.files}


def restore(saved: dict[Path, bytes]) -> None:
    for path, content in saved.items():
        if path.read_bytes() != content:
            path.write_bytes(content)
            print(f"restored {path} (a mutant was left in it)", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout to mutate (default: this one)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs the tests (default: this one)")
    parser.add_argument("--modules", help="comma-separated module names (default: all in the config)")
    how_many = parser.add_mutually_exclusive_group()
    how_many.add_argument("--sample", type=int, help="mutants per module (default: the config's)")
    how_many.add_argument("--all", action="store_true", help="every mutant (the scheduled CI run)")
    how_many.add_argument("--ids-from", type=Path, help="exactly the mutants of an earlier --json report")
    parser.add_argument("--seed", type=int, help="sampling seed (default: the config's)")
    parser.add_argument("--list", action="store_true", help="list the chosen mutants, run nothing")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--min-score", type=float, help="exit 1 if the total score is below this (percent)")
    args = parser.parse_args()

    settings, modules = load_config(args.config)
    if args.modules:
        names = args.modules.split(",")
        unknown = set(names) - {m.name for m in modules}
        if unknown:
            parser.error(f"unknown modules: {', '.join(sorted(unknown))}")
        modules = [m for m in modules if m.name in names]
    args.seed = int(settings["seed"]) if args.seed is None else args.seed
    ids_from = None
    if args.ids_from:
        earlier = json.loads(args.ids_from.read_text())
        ids_from = {m["name"]: [o["id"] for o in m["outcomes"]] for m in earlier["modules"]}
    root = args.root.resolve()
    os.chdir(root)  # cosmic-ray's paths and the test command are relative to the checkout

    # The tests' temporary files, the simulated board's .mpy cache (one per firmware
    # mutant) among them, go to a folder of this run's, removed at the end.
    work_dir = Path(tempfile.mkdtemp(prefix="insole-mutation-"))
    os.environ["TMPDIR"] = str(work_dir)
    tempfile.tempdir = None
    saved = snapshot(root, modules)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # unwind through the restore below

    signal.signal(signal.SIGTERM, terminate)
    reports: list[ModuleReport] = []
    try:
        for module in modules:
            reports.append(run_module(root, module, args, settings, ids_from, work_dir))
    except KeyboardInterrupt:
        stop_test_runs()
        print("\ninterrupted: the modules finished so far follow", file=sys.stderr)
    finally:
        restore(saved)
        shutil.rmtree(work_dir, ignore_errors=True)
    if not args.list:
        print_summary(reports)
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    total = ModuleReport("total", [], [], 0, 0.0, 0.0, [o for r in reports for o in r.outcomes])
    if args.json:
        args.json.write_text(json.dumps({
            "commit": commit, "seed": args.seed, "score": total.score,
            "modules": [asdict(r) | {"score": r.score} for r in reports],
        }, indent=1))
    if args.min_score is not None and (total.score or 0.0) < args.min_score:
        print(f"score {total.score or 0.0:.1f} % is below --min-score {args.min_score}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
