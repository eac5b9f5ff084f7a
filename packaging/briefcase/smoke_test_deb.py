"""Smoke-test LoRA Deck's .deb the way a user meets it: installed by dpkg, started from its menu entry.

    python3 packaging/briefcase/smoke_test_deb.py DEB        (build_linux_deb.py runs it after a build)

1. The launcher is linked to the system Python's own libpython (the one /usr/bin/python3.X's sysconfig
   names) and carries no RPATH/RUNPATH: a launcher linked to another Python (pyenv, conda) stops with
   "No module named 'binascii'" on the system's standard library.
2. The package's Depends are installed on this machine (they are what a desktop start needs here).
3. `dpkg --root` installs the package into an empty dpkg root (maintainer scripts and all, without
   touching this machine's own packages).
4. In a fresh desktop-like session — an Xvfb display, PATH=/usr/local/bin:/usr/bin:/bin, a throwaway
   HOME and XDG folders, and nothing else from this shell (no pyenv, PYTHONPATH, LD_LIBRARY_PATH,
   QT_QPA_PLATFORM) — the desktop entry's Exec line is run as the menu runs it, and must put the main
   window on the screen (seen by the X server, not by the app); SIGTERM must then close it cleanly.
5. The same launcher's command line (`plugins --json`, `inspect` on the demo adapter) and a
   LORADECK_SELF_TEST=1 start (plugins, entry points, demo assets as the app sees them).
6. `dpkg --root … -r` removes the package; the user's library in ~/.local/share/loradeck stays.

Needs: dpkg, binutils (readelf), xvfb and x11-utils (xwininfo). Prints one `SMOKE {json}` line; exit
status 0 only if every check passed.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW_TIMEOUT_S = 180
BUILTIN_PLUGINS = {"architectures", "peft", "ludwig", "kohya", "gguf"}


def launcher_linkage(exe: Path) -> dict:
    """The launcher's RPATH/RUNPATH entries, the libpython it needs, where the loader finds it, and
    where the system Python's sysconfig says its libpython is."""
    dynamic = subprocess.run(["readelf", "-d", exe], capture_output=True, text=True, check=True).stdout
    runpaths = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r\w*path: \[(.*)\]", dynamic)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(libpython[^\]]+)\]", dynamic)
    result = {"runpath": runpaths, "libpython": needed, "loaded": None, "system": None}
    if len(needed) != 1:
        return result
    version = re.match(r"libpython(\d+\.\d+)", needed[0]).group(1)
    python = Path(f"/usr/bin/python{version}")
    if python.exists():
        result["system"] = subprocess.run(
            [python, "-c", "import os, sysconfig as s; "
                           "print(os.path.realpath(os.path.join(s.get_config_var('LIBDIR'), s.get_config_var('INSTSONAME'))))"],
            capture_output=True, text=True, check=True).stdout.strip()
    ldd = subprocess.run(["ldd", exe], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    found = re.search(rf"{re.escape(needed[0])} => (\S+)", ldd)
    result["loaded"] = os.path.realpath(found.group(1)) if found else None
    return result


def missing_dependencies(deb: Path) -> list[str]:
    """The package's Depends that no installed package satisfies (version constraints aside)."""
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True,
                             check=True).stdout
    missing = []
    for group in filter(None, (g.strip() for g in depends.split(","))):
        names = [re.split(r"[\s(:]", alt.strip())[0] for alt in group.split("|")]
        if not any(_installed(n) for n in names):
            missing.append(group)
    return missing


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.startswith("ii")


def dpkg_root(root: Path) -> list[str]:
    for sub in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    # --force-depends: the empty root's dpkg database does not know this machine's libraries
    # (checked against the machine's own database by missing_dependencies instead).
    return ["dpkg", f"--root={root}", "--force-not-root", "--force-depends"]


def dpkg(args: list, root: Path) -> None:
    out = subprocess.run([*dpkg_root(root), *map(str, args)], capture_output=True, text=True)
    print(f"+ dpkg --root={root} {' '.join(map(str, args))}: exit {out.returncode}")
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)


def as_installed(root: Path) -> list[str]:
    """A command prefix that runs a program seeing the package at its real place, /usr, as `apt install`
    puts it there: a private mount namespace in which `root`/usr is laid over /usr (read-only overlay),
    this machine's /usr untouched. The launcher finds Python's standard library from its own path, so
    starting it anywhere else would not test what users get."""
    script = 'mount -t overlay loradeck-smoke -o "lowerdir=$1/usr:/usr" /usr && shift && exec "$@"'
    prefix = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix += ["--user", "--map-root-user"]
    prefix += ["sh", "-c", script, "sh", str(root)]
    probe = subprocess.run([*prefix, "test", "-x", "/usr/bin/loradeck"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError("cannot lay the package over /usr in a private mount namespace "
                           f"({probe.stderr.strip()}): run the smoke test as root, or allow user namespaces")
    return prefix


@contextlib.contextmanager
def xvfb():
    """A fresh X server; yields its DISPLAY (":N", the number Xvfb picked itself)."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1600x1000x24",
                               "-nolisten", "tcp"], pass_fds=(write_end,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        # Xvfb writes the number and the newline separately, and stops if the second write fails:
        # read up to the newline, and keep the pipe open while the server runs.
        said = b""
        while not said.endswith(b"\n"):
            chunk = os.read(read_end, 32)
            if not chunk:
                raise RuntimeError("Xvfb did not start")
            said += chunk
        yield f":{said.decode().strip()}"
    finally:
        server.terminate()
        server.wait(10)
        os.close(read_end)


def desktop_environment(home: Path, display: str) -> dict:
    """What a graphical session gives a program started from its menu, and nothing from this shell."""
    runtime = home / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    user = os.environ.get("USER") or "user"
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "USER": user, "LOGNAME": user,
            "SHELL": "/bin/sh", "LANG": "C.UTF-8", "DISPLAY": display, "XDG_SESSION_TYPE": "x11",
            "XDG_RUNTIME_DIR": str(runtime), "XDG_DATA_HOME": str(home / ".local/share"),
            "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_DIRS": "/usr/local/share:/usr/share", "XDG_CONFIG_DIRS": "/etc/xdg"}


def desktop_command(root: Path) -> tuple[str, list[str]]:
    """The Exec line of the installed desktop entry, and the command it runs with no file given (field
    codes dropped)."""
    entries = sorted((root / "usr/share/applications").glob("*.desktop"))
    if len(entries) != 1:
        raise RuntimeError(f"expected one desktop entry, found {entries}")
    line = next(ln for ln in entries[0].read_text(encoding="utf-8").splitlines() if ln.startswith("Exec="))
    args = [a for a in shlex.split(line[len("Exec="):]) if not re.fullmatch(r"%[fFuUick]", a)]
    if not (root / args[0].lstrip("/")).is_file():
        raise RuntimeError(f"the desktop entry runs a program the package does not install: {line}")
    return line, args


def mapped_window(display: str, prefix: str) -> str | None:
    """The name of a viewable top-level window whose title starts with `prefix`, as the X server sees it."""
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": display}
    tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True, env=env).stdout
    for wid, name in re.findall(r"^\s+(0x[0-9a-f]+) \"([^\"]*)\"", tree, re.MULTILINE):
        if name.startswith(prefix):
            info = subprocess.run(["xwininfo", "-id", wid], capture_output=True, text=True, env=env).stdout
            if "Map State: IsViewable" in info:
                return name
    return None


def start_from_menu(command: list[str], env: dict, display: str) -> dict:
    """Start the app as the desktop does, wait for its main window on the X server, then SIGTERM it."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=env["HOME"])
        window = None
        while window is None and proc.poll() is None and time.monotonic() - t0 < WINDOW_TIMEOUT_S:
            time.sleep(0.5)
            window = mapped_window(display, "LoRA Deck")
        seconds = round(time.monotonic() - t0, 1)
        exit_status = proc.poll()
        if exit_status is None:
            proc.send_signal(signal.SIGTERM)
            try:
                exit_status = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_status = f"still running 60 s after SIGTERM (killed: {proc.wait()})"
        out.seek(0)
        output = out.read()
    print(output[-3000:])
    return {"window": window, "seconds_to_window": seconds if window else None,
            "exit_after_sigterm": exit_status, "output_tail": output[-500:]}


def cli_checks(run_installed: list[str], env: dict, root: Path) -> dict:
    found = sorted((root / "usr/lib/loradeck/app/adapters_backend").glob("**/adapters/shout-peft"))
    demo = "/" + found[0].relative_to(root).as_posix() if found else "(the demo adapter is missing)"
    answers = {}
    for key, args in (("plugins", ["plugins", "--json"]), ("inspect", ["inspect", demo, "--json"])):
        out = subprocess.run([*run_installed, "/usr/bin/loradeck", *args], env=env, capture_output=True, text=True, timeout=300, cwd=env["HOME"])
        print(out.stdout[-2000:], out.stderr[-2000:])
        try:
            answers[key] = json.loads(out.stdout)
        except ValueError:
            answers[key] = {}
    rows = answers["plugins"].get("plugins") or []
    return {"plugins": {r["name"]: (r["ok"], r["distribution"]) for r in rows},
            "inspect_scale": answers["inspect"].get("scale")}


def self_test(run_installed: list[str], env: dict) -> dict | None:
    gui = subprocess.run([*run_installed, "/usr/bin/loradeck"], env={**env, "LORADECK_SELF_TEST": "1"}, capture_output=True, text=True,
                         timeout=600, cwd=env["HOME"])
    print(gui.stdout[-3000:], gui.stderr[-3000:])
    line = next((ln for ln in gui.stdout.splitlines() if ln.startswith("LORADECK_SELF_TEST ")), None)
    return json.loads(line.split(" ", 1)[1]) if line else None


def smoke_test(deb: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="loradeck-deb-"))
    root, home = work / "root", work / "home"
    home.mkdir()
    results: dict = {"deb": str(deb), "root": str(root)}
    results["missing_dependencies"] = missing_dependencies(deb)
    dpkg(["-i", deb], root)
    run_installed = as_installed(root)
    exe = root / "usr/bin/loradeck"
    results["launcher"] = launcher_linkage(exe)
    app = root / "usr/lib/loradeck/app"
    results["bytecode"] = all(any(p.parent.glob(f"__pycache__/{p.stem}.*.pyc")) for p in app.rglob("*.py"))
    with xvfb() as display:
        env = desktop_environment(home, display)
        results["exec"], command = desktop_command(root)
        results["desktop_start"] = start_from_menu([*run_installed, *command], env, display)
        results.update(cli_checks(run_installed, env, root))
        results["self_test"] = self_test(run_installed, env)
    # The user's library lives in the data folder, outside the package: removing the package must
    # leave it alone.
    data = home / ".local/share/loradeck"
    before = sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) if data.exists() else []
    dpkg(["-r", "loradeck"], root)
    after = sorted(p.relative_to(data).as_posix() for p in data.rglob("*")) if data.exists() else []
    results["package_files_left"] = exe.exists() or app.exists()
    results["data_files"] = len(before)
    results["data_kept_after_removal"] = before == after
    shutil.rmtree(work, ignore_errors=True)
    return results


def failures(results: dict) -> list[str]:
    """What went wrong, in words; empty when the package passed."""
    problems = []
    link = results["launcher"]
    if link["runpath"]:
        problems.append(f"the launcher has an RPATH/RUNPATH ({link['runpath']}): it must use the system libpython")
    if link["loaded"] is None or link["loaded"] != link["system"]:
        problems.append(f"the launcher loads {link['loaded']}, not the system Python's {link['system']}")
    if results["missing_dependencies"]:
        problems.append("dependencies not installed here: " + ", ".join(results["missing_dependencies"]))
    start = results["desktop_start"]
    if not start["window"]:
        problems.append("started from the desktop entry, the main window never came up")
    if start["exit_after_sigterm"] != 0:
        problems.append(f"after SIGTERM the app ended with {start['exit_after_sigterm']}, not 0")
    plugins = results["plugins"]
    if not BUILTIN_PLUGINS <= set(plugins) or not all(ok for ok, _dist in plugins.values()):
        problems.append(f"`loradeck plugins`: {plugins or 'no answer'}")
    if results["inspect_scale"] != 2.0:      # the demo `shout` adapter: alpha 16, rank 8
        problems.append(f"`loradeck inspect` on the demo adapter gave scale {results['inspect_scale']}")
    gui = results["self_test"] or {}
    if not gui.get("visible") or not BUILTIN_PLUGINS <= set(gui.get("entry_points") or ()) or gui.get("demo_model") is not True:
        problems.append(f"self test: {gui or 'no report'}")
    if not results["bytecode"]:
        problems.append("the bundle is not byte-compiled")
    if results["package_files_left"] or not results["data_kept_after_removal"]:
        problems.append("removing the package did not remove exactly its own files")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    results = smoke_test(Path(argv[0]).resolve())
    print("SMOKE " + json.dumps(results))
    problems = failures(results)
    for p in problems:
        print("FAILED:", p, file=sys.stderr)
    print("smoke test " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
