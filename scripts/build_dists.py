#!/usr/bin/env python3
"""Build the wheel and the sdist of every Levered distribution, as ``./dev dist`` does.

Each distribution is built by PEP 517 (``python -m build``: the sdist, then the wheel from
that sdist) from a clean copy of its files, not in place: a stale ``build/`` or ``*.egg-info``
in the checkout cannot leak into a wheel, and the checkout is left as it was. The files copied
are those git tracks or would track (untracked, not ignored); outside a git checkout, the
directory less the usual build litter. Run it with an interpreter that has ``build``.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Litter skipped when there is no git to say what belongs to a distribution.
IGNORED = ("tests", ".git", ".tox", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".demo")


def distributions() -> list[pathlib.Path]:
    """The directories of the shipped distributions: the core, the built-in plugins, the server, levered-cli."""
    return [ROOT, *sorted((ROOT / "plugins").glob("levered-*")), ROOT / "server", ROOT / "packaging" / "levered-cli"]


def _tracked(directory: pathlib.Path) -> list[pathlib.Path] | None:
    """Files under ``directory`` that git tracks or would track; None outside a git checkout."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                                cwd=directory, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [directory / name for name in listed.decode().split("\0") if name]


def copy_sources(directory: pathlib.Path, target: pathlib.Path) -> None:
    """Copy one distribution's files into ``target``: symlinks resolved, nested distributions and the
    top-level ``tests/`` (they need the whole repository) left out."""
    nested = [d for d in distributions() if d != directory and directory in d.parents]
    if (files := _tracked(directory)) is None:
        shutil.copytree(directory, target, ignore=shutil.ignore_patterns(*IGNORED, *(d.name for d in nested)))
        return
    for path in files:
        relative = path.relative_to(directory)
        if any(d in path.parents for d in nested) or relative.parts[0] == "tests" or not path.is_file():
            continue  # another distribution's, the repository's tests, or deleted but not yet committed
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)  # follows symlinks: the shared LICENSE lands as a file


def build(directory: pathlib.Path, outdir: pathlib.Path, isolation: bool = True) -> None:
    """Build ``directory``'s sdist and wheel into ``outdir``."""
    with tempfile.TemporaryDirectory(prefix="levered-build-") as scratch:
        source = pathlib.Path(scratch) / directory.name
        copy_sources(directory, source)
        command = [sys.executable, "-m", "build", "--outdir", str(outdir), str(source)]
        done = subprocess.run([*command, *([] if isolation else ["--no-isolation"])], capture_output=True, text=True)
        if done.returncode != 0:  # build's own report says what failed; a success needs no report
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"building {directory} failed (exit {done.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=pathlib.Path, default=ROOT / "dist",
                        help="where the wheels and sdists go (default: dist/)")
    parser.add_argument("--no-isolation", action="store_true",
                        help="build with this interpreter's setuptools instead of a fresh one per build")
    args = parser.parse_args()
    outdir = args.outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in [path for pattern in ("levered[-_]*.whl", "levered[-_]*.tar.gz") for path in outdir.glob(pattern)]:
        stale.unlink()  # an earlier version's files: `pip install dist/*.whl` must find one of each
    for directory in distributions():
        build(directory, outdir, isolation=not args.no_isolation)
        print(f"built {directory.relative_to(ROOT).as_posix() if directory != ROOT else '.'}", flush=True)
    print(f"Wheels and sdists in {outdir}:")
    for path in sorted(outdir.iterdir()):
        print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
