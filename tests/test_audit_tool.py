"""`make audit-verify` and `make audit-export` say in one line when they have
nothing to talk to, instead of a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from local import audit_tool
from local.template import ROOT


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "local.audit_tool", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _env(tmp_path, **extra: str) -> dict[str, str]:
    import os

    from local.template import Stack

    service = set(Stack().service_environment())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "STACK_NAME" and k not in service}
    return {**env, "PATH": os.environ["PATH"], **extra}


def test_without_make_dev_or_stack_name_each_verb_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    # Given no emulator state file and no STACK_NAME
    monkeypatch.setattr(audit_tool, "STATE", tmp_path / "missing.json")
    monkeypatch.delenv("STACK_NAME", raising=False)
    for verb in (["verify"], ["export", "ada@example.com"]):
        # When the tool runs
        code = audit_tool.main(verb)
        out = capsys.readouterr()
        # Then it prints one line naming both ways out, and exits 2
        assert code == 2
        lines = out.out.strip().splitlines()
        assert len(lines) == 1 and "make dev" in lines[0] and "STACK_NAME" in lines[0], out.out
        assert "Traceback" not in out.out + out.err


def test_a_stale_make_dev_state_is_one_line_too(tmp_path, monkeypatch, capsys):
    # Given the state file of a `make dev` that has stopped
    from local.runner import free_port

    state = tmp_path / "emulator.json"
    state.write_text(json.dumps({"endpoint": f"http://127.0.0.1:{free_port()}", "stack": "carekey-local", "pid": 1}))
    monkeypatch.setattr(audit_tool, "STATE", state)
    monkeypatch.delenv("STACK_NAME", raising=False)
    code = audit_tool.main(["verify"])
    out = capsys.readouterr()
    assert code == 2
    assert out.out.count("\n") == 1 and "does not answer" in out.out


def test_the_make_verbs_print_one_line_without_a_traceback(tmp_path):
    # Given a shell with no STACK_NAME, no AWS settings and no running `make dev`
    env = _env(tmp_path)
    if (ROOT / ".local" / "emulator.json").exists():
        env["STACK_NAME"] = ""  # a developer's own `make dev` state is not ours to move
    done = _run("export", "", env=env)
    # Then a missing EMAIL is a usage line
    assert done.returncode == 2 and done.stdout.strip() == "usage: make audit-export EMAIL=person@example.com"
    assert "Traceback" not in done.stderr
