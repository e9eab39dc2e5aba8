"""Write ``snapshots.json`` or ``snapshots-avx2.json``: the golden digests of every case in ``snapshot_cases.py``.

Which file is this machine's depends on numpy's SIMD loops (``snapshot_cases.simd_family``): an
AVX-512 machine writes ``snapshots.json``, an AVX2 one ``snapshots-avx2.json``. Both must come from
the same commit (a test checks it), so an intended change of results regenerates both, each on a
machine of its family.

Run it against COMMITTED code only, and only when a change of results is intended (and explained in
the commit message that updates ``snapshots.json``):

    python tests/core/make_snapshots.py            # with the descentlab of the commit to snapshot

It records the commit of the descentlab it imported (``git rev-parse HEAD`` in that code's
repository) and refuses to run if that code has uncommitted changes under core/ or plugins/
(``--allow-dirty`` overrides, for experiments; never commit such a file). To snapshot a commit
other than the working tree's, check it out in a separate worktree with its own venv:

    git worktree add /tmp/snapshot-head HEAD
    python3 -m venv /tmp/snapvenv && /tmp/snapvenv/bin/pip install -q -e /tmp/snapshot-head
    /tmp/snapvenv/bin/python tests/core/make_snapshots.py
    git worktree remove --force /tmp/snapshot-head
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # simd_family
os.environ["DESCENTLAB_NO_ENTRY_POINTS"] = "1"  # as tests/conftest.py: installed plugins cannot change results
os.environ.pop("DESCENTLAB_PLUGINS", None)

import snapshot_cases  # noqa: E402


def _git(code_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(code_dir), *args], check=True, capture_output=True, text=True
    ).stdout.rstrip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    family = snapshot_cases.simd_family()
    default = HERE / snapshot_cases.GOLDEN_FILES.get(family, f"snapshots-{family}.json")
    parser.add_argument("--output", type=Path, default=default, help=f"default: this machine's file, {default.name}")
    parser.add_argument(
        "--allow-dirty", action="store_true", help="snapshot code with uncommitted changes (for experiments only)"
    )
    args = parser.parse_args(argv)

    import descentlab

    code_dir = Path(descentlab.__file__).resolve().parent
    print(f"descentlab imported from {descentlab.__file__}")
    commit = _git(code_dir, "rev-parse", "HEAD")
    root = Path(_git(code_dir, "rev-parse", "--show-toplevel"))
    dirty = _git(root, "status", "--porcelain", "--", "core", "plugins")
    if dirty and not args.allow_dirty:
        print(f"refusing: {root} has uncommitted changes in core/ or plugins/:\n{dirty}", file=sys.stderr)
        return 1
    print(f"snapshotting commit {commit} ({root}) on numpy's {family} loops")

    warnings.simplefilter("error", RuntimeWarning)  # as the repo's pytest config
    registry = snapshot_cases.snapshot_registry()
    started = time.perf_counter()
    cases = {}
    for case in snapshot_cases.CASES:
        cases[case.name] = snapshot_cases.digests(snapshot_cases.run_case(case, registry))
    print(f"{len(cases)} cases in {time.perf_counter() - started:.1f} s")

    document = {
        "_comment": (
            f"Golden SHA-256 digests of the runner's results, generated from commit {commit}"
            f"{' WITH UNCOMMITTED CHANGES' if dirty else ''}. Regenerate only when a change of "
            "results is intended (say why in the commit message): run "
            "`python tests/core/make_snapshots.py` with a descentlab installed from that commit. "
            "Cases and digest rules: tests/core/snapshot_cases.py."
        ),
        "_commit": commit,
        **cases,
    }
    args.output.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
