"""``make package``: the detector's Lambda package, one per (runtime, architecture) the stacks deploy.

Each package is ``build/lambda/<runtime>-<architecture>/``: the ``functions/detector`` sources as the
``detector`` package (handler ``detector.handler.lambda_handler``) beside its dependencies from
``functions/detector/requirements.txt``, pinned by ``constraints.txt``. ``orjson`` and ``xxhash`` are
compiled, so pip is told the target instead of the machine it runs on: ``--platform`` (manylinux for the
stage's ``lambdaArchitecture``), ``--python-version`` and ``--implementation cp`` (the stage's ``lambdaRuntime``),
``--only-binary=:all:`` (a wheel, never a local build for this machine's CPU) and ``--target``.
Docs: repost.aws/knowledge-center/lambda-python-package-compatible ("pip install --platform
manylinux2014_x86_64 --target ... --implementation cp --python-version ... --only-binary=:all:"); the
Lambda Python runtimes run on Amazon Linux 2023 (glibc 2.34), which manylinux2014 wheels support.

Run: ``python -m tools.package [--stack dev --stack prod] [--out build/lambda]``. The Pulumi component
zips ``package_dir(runtime, architecture)``; a test checks that the arm64 package holds aarch64 binaries.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from tools import harness, stackfile

ROOT: Final = harness.ROOT
PACKAGE_ROOT: Final = ROOT / "build" / "lambda"
SOURCES: Final = ROOT / "functions" / "detector"
REQUIREMENTS: Final = SOURCES / "requirements.txt"
CONSTRAINTS: Final = ROOT / "constraints.txt"
STAMP: Final = ".packaged"
# lambdaArchitecture -> the pip platform tags of wheels that run there (newest first).
PLATFORMS: Final = {
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
# ELF e_machine of each architecture's binaries (the System V ABI's machine numbers).
ELF_MACHINES: Final = {"arm64": 0xB7, "x86_64": 0x3E}


def package_name(runtime: str, architecture: str) -> str:
    """The folder name of one package, ``python3.12-arm64``."""
    if architecture not in PLATFORMS:
        raise ValueError(f"lambdaArchitecture {architecture!r}: expected one of {', '.join(PLATFORMS)}")
    if not runtime.startswith("python3."):
        raise ValueError(f"lambdaRuntime {runtime!r}: expected python3.<minor>")
    return f"{runtime}-{architecture}"


def pip_command(runtime: str, architecture: str, target: Path) -> list[str]:
    """The pip command that vendors the detector's dependencies for this runtime and architecture."""
    package_name(runtime, architecture)  # validates both
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
    ]
    for platform in PLATFORMS[architecture]:
        command += ["--platform", platform]
    command += [
        "--implementation", "cp",
        "--python-version", runtime.removeprefix("python"),
        "--only-binary=:all:",
        "--target", str(target),
        "-r", str(REQUIREMENTS),
        "-c", str(CONSTRAINTS),
    ]  # fmt: skip
    return command


def build(runtime: str, architecture: str, out: Path = PACKAGE_ROOT) -> Path:
    """Build one package from scratch; return its folder."""
    folder = out / package_name(runtime, architecture)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    subprocess.run(pip_command(runtime, architecture, folder), check=True)
    code = folder / "detector"
    code.mkdir()
    for source in sorted(SOURCES.glob("*.py")):
        shutil.copy2(source, code / source.name)
    (folder / STAMP).write_text(f"{runtime} {architecture}\n")
    return folder


def elf_machine(path: Path) -> int | None:
    """The e_machine field of an ELF file (None if the file is not ELF)."""
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF" or len(header) < 20:
        return None
    byteorder = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], byteorder)


def targets(stacks: list[str]) -> list[tuple[str, str]]:
    """Every (runtime, architecture) the given stacks deploy, each once, in order."""
    found: list[tuple[str, str]] = []
    for name in stacks:
        settings = stackfile.load(name).settings
        pair = (settings.lambda_runtime, settings.lambda_architecture)
        if pair not in found:
            found.append(pair)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.package", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stack", action="append", help="a stack whose package to build (default: every stack)"
    )
    parser.add_argument("--out", type=Path, default=PACKAGE_ROOT)
    args = parser.parse_args(argv)
    for runtime, architecture in targets(args.stack or stackfile.stacks()):
        folder = build(runtime, architecture, args.out)
        print(f"packaged {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
