"""The `casbusi` command's answers to the mistakes a new user makes: one line, exit code 1."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from casbusi_assets.cli import main


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_generate_into_a_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["--home", str(tmp_path / "h"), "generate", str(target)]) == 1
    err = _error_lines(capsys.readouterr().err)
    assert err == [
        f"casbusi: error: {target} exists and is not a folder; give a folder to "
        "write the batches into"
    ]


def test_generate_rejects_zero_batches(tmp_path: Path, capsys) -> None:
    assert (
        main(["--home", str(tmp_path / "h"), "generate", str(tmp_path / "o"), "--batches", "0"])
        == 1
    )
    assert "at least 1" in capsys.readouterr().err


def test_sql_on_a_new_home_says_so_and_creates_nothing(tmp_path: Path, capsys) -> None:
    home = tmp_path / "new_home"
    assert main(["--home", str(home), "sql", "SELECT 1"]) == 1
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "nothing has been ingested" in err[0]
    assert not home.exists()


def test_delete_of_an_unknown_batch_is_an_error(tmp_path: Path, capsys) -> None:
    home = tmp_path / "h"
    assert main(["--home", str(home), "delete-batch", "batch_404"]) == 1
    err = _error_lines(capsys.readouterr().err)
    assert err == [f"casbusi: error: no batch 'batch_404' in {home.resolve()} (batches: none)"]


@pytest.mark.parametrize("argv", [["--help"], ["sql", "--help"]])
def test_help_exits_zero(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0


def test_run_batch_prestarts_the_pool_the_ingest_step_takes() -> None:
    # The CLI starts the ingest workers before importing Dagster; the step must ask for the
    # same pool, and the workers must import the module the ingest items run in.
    import importlib

    from casbusi_assets import cli
    from casbusi_assets.ingest import assets as ingest_assets
    from casbusi_assets.pixels import member

    assert cli.INGEST_POOL == ingest_assets.POOL_PURPOSE
    assert importlib.import_module(cli.INGEST_WORKER_MODULE) is member
    assert set(ingest_assets.ingest_batch.keys_by_output_name) == cli.INGEST_ASSETS


def _exit_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "leave.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import atexit, sys, threading, time
            from pathlib import Path
            from casbusi_assets.cli import exit_promptly
            out = Path({str(tmp_path)!r})
            atexit.register(lambda: (out / "atexit_ran").write_text("yes"))
            print("result line")  # buffered: stdout is a pipe
            {body}
            exit_promptly(3)
            """
        )
    )
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True)


def test_the_command_exits_promptly_with_its_code_output_and_exit_handlers(
    tmp_path: Path,
) -> None:
    done = _exit_script(tmp_path, "")
    assert done.returncode == 3
    assert done.stdout == "result line\n"
    assert (tmp_path / "atexit_ran").read_text() == "yes"


def test_a_running_thread_is_waited_for_before_exit(tmp_path: Path) -> None:
    # a non-daemon thread still working: the normal exit waits for it, and so does the command
    body = (
        "threading.Thread(target=lambda: (time.sleep(0.3), "
        '(out / "thread_done").write_text("yes"))).start()'
    )
    done = _exit_script(tmp_path, body)
    assert done.returncode == 3
    assert (tmp_path / "thread_done").read_text() == "yes"
    assert (tmp_path / "atexit_ran").read_text() == "yes"


def test_the_console_script_is_the_prompt_exit() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "casbusi"]
    assert script.value == "casbusi_assets.cli:run"
