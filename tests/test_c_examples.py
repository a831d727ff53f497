"""examples/c: the Makefile builds both float programs on the host and as static armhf binaries;
the host runs them, qemu-arm runs the ARM ones, and their numbers agree to 1e-5 relative.

Why 1e-5: both builds are IEEE float with -ffp-contract=off (no fused multiply-add), so every
+ - * / and sqrt is correctly rounded the same way; only libm's expf/log1pf/powf may differ
between glibc on x86-64 and on ARM, by an ulp (6e-8) per call, which the 200-odd Adam steps of
train_xor can amplify a hundredfold at most before the loss target stops them (measured: the
outputs are bit-identical today); a real ABI or float-promotion bug changes the numbers at 1e-3
or more.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import ROOT

EXAMPLES = ROOT / "examples" / "c"


def make(build: Path, *targets: str) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    cmd = ["make", "-C", str(EXAMPLES), f"B={build}", f"PYTHON={sys.executable}", f"ROOT={ROOT}", *targets]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


def numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+\.\d+(?:e[+-]?\d+)?", text)])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("cexamples")
    make(build, "all")
    return build


def test_both_programs_run_on_the_host(built: Path) -> None:
    train = subprocess.run([str(built / "train_xor")], capture_output=True, text=True, timeout=60)
    assert train.returncode == 0 and "reached" in train.stdout, train.stdout
    outs = [float(v) for v in re.findall(r"xor\(\S+ \S+ = (\S+)", train.stdout)]
    assert len(outs) == 4 and outs[0] < 0.5 < outs[1] and outs[2] > 0.5 > outs[3]
    infer = subprocess.run([str(built / "infer_iris")], capture_output=True, text=True, timeout=60)
    assert infer.returncode == 0, infer.stdout
    assert re.findall(r"class (\w+)", infer.stdout) == ["setosa", "versicolor", "virginica", "virginica"]


def test_armhf_under_qemu_equals_the_host(built: Path) -> None:
    for tool in ("arm-linux-gnueabihf-gcc", "qemu-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt: gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user)")
    make(built, "armhf")
    for program in ("train_xor", "infer_iris"):
        host = subprocess.run([str(built / program)], capture_output=True, text=True, timeout=60)
        arm = subprocess.run(["qemu-arm", str(built / f"{program}.armhf")], capture_output=True, text=True, timeout=120)
        assert arm.returncode == host.returncode == 0, arm.stdout + arm.stderr
        a, h = numbers(arm.stdout), numbers(host.stdout)
        assert a.size == h.size > 4
        assert np.all(np.abs(a - h) <= 1e-5 * np.maximum(np.abs(h), 1e-30) + 1e-30), (program, a, h)


def test_cortex_m4_objects_build(built: Path) -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (apt: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    make(built, "arm")
    for obj in ("xor.m4.o", "iris_classifier.m4.o", "train_xor.m4.o", "iris_classifier_params.m4.o"):
        symbols = subprocess.run(["arm-none-eabi-nm", "-u", str(built / obj)], capture_output=True, text=True).stdout
        assert "__aeabi_d" not in symbols and not re.search(r"\b(exp|log|log1p|tanh|sqrt|pow)\b", symbols), symbols
