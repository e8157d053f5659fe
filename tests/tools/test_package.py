"""The Lambda package carries compiled dependencies for the architecture the stage deploys on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

import orjson
import pytest

from components.detector import package_dir
from tools import package, stackfile


def test_pip_is_told_the_target_not_this_machine(tmp_path: Path) -> None:
    command = package.pip_command("python3.12", "arm64", tmp_path)
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--implementation") + 1] == "cp"
    assert "--only-binary=:all:" in command
    assert command[command.index("--target") + 1] == str(tmp_path)
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms
    assert all(p.endswith("_aarch64") for p in platforms)
    x86 = package.pip_command("python3.13", "x86_64", tmp_path)
    assert all(x86[i + 1].endswith("_x86_64") for i, arg in enumerate(x86) if arg == "--platform")
    with pytest.raises(ValueError, match="lambdaArchitecture 'riscv'"):
        package.pip_command("python3.12", "riscv", tmp_path)


def test_the_elf_check_can_fail() -> None:
    # This machine's own orjson binary is not an aarch64 one unless the machine is.
    (native,) = Path(orjson.__file__).parent.glob("orjson*.so")
    machine = package.elf_machine(native)
    assert machine is not None
    assert (machine == package.ELF_MACHINES["arm64"]) == (
        sys.platform == "linux" and "aarch64" in native.name
    )
    assert package.elf_machine(Path(__file__)) is None


# The detector's compiled dependencies (functions/detector/requirements.txt): each package must hold a
# binary of each, built for the stage's architecture and runtime.
COMPILED: Final = ("orjson", "xxhash")


@pytest.mark.parametrize("stage", stackfile.stacks())
def test_each_stage_package_holds_binaries_for_its_architecture(stage: str) -> None:
    settings = stackfile.load(stage).settings
    folder = package_dir(settings.lambda_runtime, settings.lambda_architecture)
    assert (folder / package.STAMP).is_file(), f"{folder} is not built: run `make package`"
    assert (folder / "detector" / "handler.py").is_file()
    for name in COMPILED:
        assert sorted((folder / name).glob("*.so")), f"no {name} binary in {folder}"
    binaries = sorted(folder.rglob("*.so"))
    for binary in binaries:
        assert package.elf_machine(binary) == package.ELF_MACHINES[settings.lambda_architecture], binary
        assert f"cpython-{settings.lambda_runtime.removeprefix('python').replace('.', '')}" in binary.name


def test_the_arm64_package_holds_aarch64_binaries() -> None:
    arm = [s for s in stackfile.stacks() if stackfile.load(s).settings.lambda_architecture == "arm64"]
    assert arm, "no stage deploys on arm64"
    settings = stackfile.load(arm[0]).settings
    folder = package_dir(settings.lambda_runtime, settings.lambda_architecture)
    for name in COMPILED:
        binaries = sorted((folder / name).glob("*.so"))
        assert binaries, name
        assert all(package.elf_machine(b) == 0xB7 for b in binaries)  # EM_AARCH64
        assert all("aarch64" in b.name for b in binaries)
