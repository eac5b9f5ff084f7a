"""`loradeck FILE…` in a development install: the app opens with the files handed to it as if dropped
on the window (as the installed app does for a file manager's "Open with"), while `loradeck COMMAND`
stays the command line even where a folder of that name exists."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOUT = REPO / "adapters_backend" / "demo" / "assets" / "adapters" / "shout-peft"


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), LORADECK_DATA_DIR=str(tmp_path / "data"),
               LORADECK_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("LORADECK_SELF_TEST", None)
    return env


def _launch(args, tmp_path, **kw):
    code = "import sys\nfrom desktop_app.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_loradeck_folder_opens_the_app_and_installs_it(tmp_path):
    adapter = tmp_path / "my-shout"
    shutil.copytree(SHOUT, adapter)
    # the same content as a demo adapter would be taken for it: make it distinct
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 15
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    index = tmp_path / "data" / "library" / "index.json"
    proc = _launch([adapter.name], tmp_path)
    try:
        deadline = time.monotonic() + 90
        names = []
        while time.monotonic() < deadline and proc.poll() is None:
            if index.is_file():
                try:
                    raw = json.loads(index.read_text())
                except ValueError:
                    raw = {}
                entries = raw.get("entries", raw) if isinstance(raw, dict) else raw
                names = [e.get("name") for e in (entries.values() if isinstance(entries, dict) else entries)]
                if "my-shout" in names:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0]
        assert "my-shout" in names
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_a_command_name_stays_a_command_even_beside_a_folder_of_that_name(tmp_path):
    (tmp_path / "plugins").mkdir()
    proc = _launch(["plugins"], tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "peft" in out and "formats" in out


def test_launcher_choice():
    from desktop_app.launcher import opened_files
    assert opened_files([str(SHOUT)]) == [SHOUT]
    assert opened_files(["inspect", str(SHOUT)]) is None
    assert opened_files(["--help"]) is None and opened_files([]) is None
