"""Checks what `sam build` produced, not what the source says.

1. The layer's package sits at python/carekey (where Lambda imports it from
   /opt/python), with its dependencies beside it.
2. Every native library in the layer is built for arm64 (aarch64 ELF), the
   functions' architecture.
3. The layer imports: the same layer Makefile is run for this machine's
   architecture, and every function's handler is imported in a bare Python
   3.12 whose path holds only that layer, the function's code and boto3 (as
   the Lambda runtime provides), nothing from this project's environment.
4. The zipped layer's size, against the 10 MB target.

Usage: python -m local.check_build .aws-sam/build
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from local.template import ROOT, Stack

AARCH64 = 183  # ELF e_machine


def _elf_machine(path: Path) -> int | None:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little")


def _zip_size(folder: Path) -> int:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder))
    return buf.tell()


def main(build_dir: str) -> int:
    build = Path(build_dir)
    layer = build / "CommonLayer"
    problems: list[str] = []
    if not (layer / "python" / "carekey" / "__init__.py").exists():
        problems.append("layer: python/carekey/__init__.py missing")
    if (layer / "python" / "python").exists():
        problems.append("layer: nested python/python folder (Lambda cannot import it)")

    natives = [p for p in layer.rglob("*.so*") if p.is_file()]
    wrong = [str(p.relative_to(layer)) for p in natives if _elf_machine(p) not in (None, AARCH64)]
    if not natives:
        problems.append("layer: no native libraries found (bcrypt, cryptography, pydantic_core expected)")
    if wrong:
        problems.append(f"layer: {len(wrong)} native libraries are not arm64, e.g. {wrong[:3]}")

    stack = Stack()
    functions = {lid: stack.handler_of(lid) for lid in stack.of_type("AWS::Serverless::Function")}
    for lid in functions:
        if not (build / lid / "app.py").exists():
            problems.append(f"{lid}: app.py missing from the build")

    size = _zip_size(layer)
    print(f"layer: {len(natives)} native libraries, all arm64: {not wrong}; zipped {size / 1e6:.2f} MB (target 10 MB)")
    if size > 10_000_000:
        problems.append(f"layer: zipped size {size / 1e6:.1f} MB is over the 10 MB target")

    problems += _import_check(functions, build)
    for p in problems:
        print(f"FAIL {p}")
    print("build check: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def native_layer(tmp: Path) -> tuple[Path, Path]:
    """The layer built by its own Makefile for this machine's architecture, and a
    folder holding only boto3 (what the Lambda runtime provides)."""
    arch = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}[platform.machine()]
    layer, runtime = tmp / "layer", tmp / "runtime"
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "layers" / "common"), "build-CommonLayer", f"ARTIFACTS_DIR={layer}", f"PLATFORM={arch}"],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts", "--target", str(runtime), "boto3"],
        check=True,
    )
    return layer / "python", runtime


def bare_python(paths: list[Path], code: str, *args: str) -> subprocess.CompletedProcess:
    """Run code in a Python 3.12 that sees only `paths` and the standard library."""
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"}
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    return subprocess.run([sys.executable, "-S", "-E", "-c", prelude + code, *args], env=env, capture_output=True, text=True)


def _import_check(functions: dict[str, tuple[Path, str]], build: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        layer, runtime = native_layer(Path(tmp))
        script = (
            "import importlib.util, os, sys\n"
            "failures = []\n"
            "for lid, code in [l.split('=', 1) for l in sys.argv[1:]]:\n"
            "    sys.path.insert(0, code)\n"
            "    try:\n"
            "        spec = importlib.util.spec_from_file_location('fn_' + lid, os.path.join(code, 'app.py'))\n"
            "        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "        assert callable(mod.lambda_handler)\n"
            "    except Exception as exc:\n"
            "        failures.append(f'{lid}: {type(exc).__name__}: {exc}')\n"
            "    sys.path.remove(code)\n"
            "print('\\n'.join(failures) or 'all handlers import')\n"
            "sys.exit(1 if failures else 0)\n"
        )
        done = bare_python([layer, runtime], script, *[f"{lid}={build / lid}" for lid in functions])
        print(done.stdout.strip() or done.stderr.strip()[-2000:])
        return [] if done.returncode == 0 else ["functions do not import from the built layer: " + done.stdout.strip()[:500]]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".aws-sam/build"))
