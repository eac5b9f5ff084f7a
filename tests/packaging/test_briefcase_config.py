"""The briefcase configuration agrees with the project it packages (cheap: no build here).

The .deb itself is built and smoke-tested by packaging/briefcase/build_linux_deb.py (docs/packaging.md).
"""
from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
BRIEFCASE = PYPROJECT["tool"]["briefcase"]
APP = BRIEFCASE["app"]["loradeck"]
TEMPLATE = REPO / "packaging" / "briefcase" / "linux-system-template"


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0].lower().replace("_", "-")


def _all_requires() -> list[tuple[str, list[str]]]:
    """Every `requires` list in the briefcase tables (global, app, per platform / format)."""
    found = []

    def walk(where: str, table: dict) -> None:
        for key, value in table.items():
            if key == "requires":
                found.append((where, value))
            elif isinstance(value, dict) and key != "document_type":
                walk(f"{where}.{key}", value)

    walk("tool.briefcase", {k: v for k, v in BRIEFCASE.items() if k != "app"})
    walk("tool.briefcase.app.loradeck", APP)
    return found


def test_identity_and_metadata():
    assert BRIEFCASE["bundle"] + ".loradeck" == "org.loradeck.loradeck"
    assert APP["formal_name"] == "LoRA Deck"
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", BRIEFCASE["project_name"])   # a PEP 621 name
    assert len(APP["description"]) <= 80 and APP["long_description"].strip()
    # The version comes from [project]; a second copy here could only drift.
    assert "version" not in BRIEFCASE and "version" not in APP
    assert BRIEFCASE["license"] == "Apache-2.0" and PROJECT["license"]["text"] == "Apache-2.0"
    for f in BRIEFCASE["license-files"]:
        assert (REPO / f).is_file(), f
    assert (REPO / "packaging/briefcase/CHANGELOG.md").read_text().count(f"## {PROJECT['version']}") == 1


def test_requires_add_nothing_to_the_project_dependencies():
    """briefcase installs [project].dependencies plus every `requires`; those must not add packages."""
    deps = {_name(d) for d in PROJECT["dependencies"]}
    assert {"pyside6-essentials", "llama-cpp-python", "filelock", "huggingface-hub", "gguf", "platformdirs",
            "numpy"} <= deps
    for where, reqs in _all_requires():
        extra = [r for r in reqs if _name(r) not in deps]
        assert not extra, f"{where}.requires adds {extra}; add them to [project].dependencies instead"
    assert "torch" not in deps                      # the installers stay without the torch extra


def test_sources_cover_every_package_and_the_entry_module():
    sources = APP["sources"]
    assert len({s.rsplit("/", 1)[-1] for s in sources}) == len(sources)      # briefcase copies by folder name
    for s in sources:
        assert (REPO / s).is_dir(), s
    # Each top-level package of the wheel is copied from the folder setuptools takes it from.
    package_dir = PYPROJECT["tool"]["setuptools"].get("package-dir", {})
    top_level = {p.split(".")[0] for p in PYPROJECT["tool"]["setuptools"]["packages"]}
    for pkg in sorted(top_level):
        assert package_dir.get(pkg, pkg) in sources, f"package {pkg} is not in the briefcase sources"
    # briefcase runs `python -m loradeck`: that package must be a source and hand over to the launcher.
    assert "packaging/briefcase/loradeck" in sources
    main = (REPO / "packaging/briefcase/loradeck/__main__.py").read_text()
    assert "desktop_app.launcher" in main and PROJECT["scripts"]["loradeck"] == "desktop_app.launcher:main"


def test_entry_points_travel_into_the_bundle():
    """The dist-info source carries [project.entry-points] and [project.scripts] unchanged."""
    name = f"loradeck-{PROJECT['version']}.dist-info"
    src = f"packaging/briefcase/bundle/{name}"
    assert src in APP["sources"], f"rename the dist-info source to {name} (version changed?)"
    # First, so that under `briefcase dev` (sources' parents on PYTHONPATH, in order) this dist-info
    # is the `loradeck` distribution Python finds before the entry-point-less one briefcase writes.
    assert APP["sources"][0] == src
    eps = configparser.ConfigParser(delimiters=("=",))
    eps.optionxform = str
    eps.read(REPO / src / "entry_points.txt")
    assert dict(eps["loradeck.plugins"]) == PROJECT["entry-points"]["loradeck.plugins"]
    assert dict(eps["console_scripts"]) == PROJECT["scripts"]
    meta = (REPO / src / "METADATA").read_text()
    assert "Name: loradeck\n" in meta and f"Version: {PROJECT['version']}\n" in meta
    # The built-in fallback list (used if a bundle ever loses dist-info) says the same.
    from adapters_backend.plugins.manager import BUILTIN_ENTRY_POINTS
    assert BUILTIN_ENTRY_POINTS == PROJECT["entry-points"]["loradeck.plugins"]


def test_demo_assets_are_inside_a_source():
    assert "adapters_backend" in APP["sources"]
    assert "assets/*" in PYPROJECT["tool"]["setuptools"]["package-data"]["adapters_backend.demo"]
    root = REPO / "adapters_backend" / "demo" / "assets"
    manifest = json.loads((root / "manifest.json").read_text())
    wanted = [manifest["model"]["file"], manifest["model"]["tokenizer"]]
    wanted += [a[k] for a in manifest["adapters"] for k in ("path", "gguf")]
    for rel in wanted:
        assert (root / rel).exists(), rel


def test_document_types():
    docs = APP["document_type"]
    assert {d["extension"] for d in docs.values()} == {"gguf", "safetensors"}
    for doc_id, d in docs.items():
        assert d["extension"].isalnum() and d["description"] and d["url"].startswith("https://")
        assert re.fullmatch(r"application/[\w.+-]+", d["mime_type"])
        for size in (16, 32, 64, 128, 256, 512):
            assert (REPO / f"{d['icon']}-{size}.png").is_file(), (doc_id, size)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("stem", ["loradeck", "gguf", "safetensors"])
def test_icon_sets(stem):
    icons = REPO / "packaging" / "briefcase" / "icons"
    for size in (16, 32, 48, 64, 128, 256, 512, 1024):
        assert _png_size(icons / f"{stem}-{size}.png") == (size, size)
    ico = (icons / f"{stem}.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1) and count >= 5
    icns = (icons / f"{stem}.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    assert APP["icon"] == "packaging/briefcase/icons/loradeck"


def _render_template_file(rel: str) -> str:
    jinja2 = pytest.importorskip("jinja2")
    context = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    context.update(document_types={k: dict(v) for k, v in APP["document_type"].items()})
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((TEMPLATE / rel).read_text()).render(cookiecutter=context)


def test_linux_template_is_local_and_complete():
    assert APP["linux"]["template"] == "packaging/briefcase/linux-system-template"
    fmt = TEMPLATE / "{{ cookiecutter.format }}"
    for rel in ("bootstrap/main.c", "bootstrap/Makefile", "{{ cookiecutter.app_name }}.1", "Dockerfile"):
        assert (fmt / rel).is_file(), rel
    index = tomllib.loads(_render_template_file("{{ cookiecutter.format }}/briefcase.toml"))
    paths = index["paths"]
    assert "briefcase" not in index        # Linux system: briefcase declares no target_version
    assert paths["app_path"].endswith("/usr/lib/loradeck/app")
    assert paths["app_packages_path"].endswith("/usr/lib/loradeck/app_packages")
    for size in paths["icon"]:
        assert (REPO / f"{APP['icon']}-{size}.png").is_file(), size
    assert set(paths["document_type_icon"]) == set(APP["document_type"])
    desktop = _render_template_file(
        "{{ cookiecutter.format }}/{{ cookiecutter.app_name }}-{{ cookiecutter.version }}/usr/share/applications/"
        "{{ cookiecutter.bundle_identifier }}.desktop")
    assert "Exec=/usr/bin/loradeck %F" in desktop and "Icon=org.loradeck.loradeck" in desktop
    assert "MimeType=application/x-gguf;application/x-safetensors;" in desktop


def test_bundle_entry_opens_files_and_passes_commands_through(tmp_path):
    spec = importlib.util.spec_from_file_location("bundle_main", REPO / "packaging/briefcase/loradeck/__main__.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    folder = tmp_path / "adapter"
    folder.mkdir()
    assert mod.opened_files([str(model), str(folder)]) == [model, folder]
    assert mod.opened_files([]) is None
    assert mod.opened_files(["inspect", str(model)]) is None       # a command, not files
    assert mod.opened_files([str(tmp_path / "missing.gguf")]) is None
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert mod.opened_files([str(notes)]) is None


@pytest.mark.skipif(os.name != "posix", reason="stands in for the launcher with a shell script")
def test_a_packaged_launcher_runs_the_chat_template_helper(tmp_path, monkeypatch):
    """In the packaged app sys.executable is the app's launcher, not a Python (briefcase's stub): the chat
    template helper is then the launcher given HELPER_ARG, which the bundle's __main__ hands to it."""
    import sys

    from adapters_backend.chat import template_sandbox

    launcher = tmp_path / "loradeck"                  # what /usr/bin/loradeck does: run the bundle's __main__
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO / 'packaging/briefcase/loradeck/__main__.py'} \"$@\"\n")
    launcher.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(launcher))
    assert template_sandbox._helper_command() == [str(launcher), template_sandbox.HELPER_ARG]
    monkeypatch.setenv("PYTHONPATH", str(REPO))       # the bundle's own folders, as the stub sets them
    monkeypatch.setattr(template_sandbox, "isolated_env", lambda: dict(os.environ))
    sandbox = template_sandbox.TemplateSandbox()
    try:
        prompt, special = sandbox.render("{% for m in messages %}[{{ m['content'] }}]{% endfor %}", "", "", True,
                                         [{"role": "user", "content": "hi"}])
        assert (prompt, special) == ("[hi]", True)
        assert sandbox._helper.proc.args[0] == str(launcher)
    finally:
        sandbox.close()


def test_launcher_links_the_system_libpython_whatever_python_is_first_on_path(tmp_path):
    """The template's Makefile, as `briefcase build` runs it (`make -C bootstrap install`), with another
    Python's python3.X-config first on PATH (a pyenv install, say): the launcher must still link the
    system Python's libpython, which the package runs on, with no RPATH/RUNPATH (issue #19)."""
    system = Path("/usr/bin/python3")
    if not system.exists() or shutil.which("cc") is None or shutil.which("readelf") is None:
        pytest.skip("needs the system Python, a C compiler and readelf")
    probe = ("import sysconfig as s, os; print(s.get_python_version()); print(s.get_paths()['include']); "
             "print(s.get_config_var('LIBDIR')); "
             "print(os.path.realpath(os.path.join(s.get_config_var('LIBDIR'), s.get_config_var('INSTSONAME'))))")
    version, include, libdir, libpython = subprocess.run([system, "-c", probe], capture_output=True, text=True,
                                                         check=True).stdout.split()
    if not (Path(include) / "Python.h").is_file():
        pytest.skip("the system Python's headers are not installed (python3-dev)")
    values = {"app_name": "loradeck", "module_name": "loradeck", "formal_name": "LoRA Deck", "version": "0.1.0",
              "python_version": version}
    bootstrap = tmp_path / "bootstrap"
    bootstrap.mkdir()
    for name in ("Makefile", "main.c"):
        text = (TEMPLATE / "{{ cookiecutter.format }}" / "bootstrap" / name).read_text()
        text = re.sub(r"\{\{ cookiecutter\.(\w+) \}\}", lambda m: values[m.group(1)], text)
        assert "{{" not in text and "{%" not in text, name
        (bootstrap / name).write_text(text)
    # What pyenv's shims put first on PATH: a python3.X-config whose flags compile fine but link with a
    # RUNPATH to that other Python's lib folder (where its own libpython would be found first).
    other = tmp_path / "other-python" / "bin"
    other.mkdir(parents=True)
    for tool in (f"python{version}-config", "python3-config"):
        (other / tool).write_text(f'#!/bin/sh\ncase "$*" in *--includes*) echo -I{include};;\n'
                                  f'*) echo -L{libdir} -lpython{version} -Wl,-rpath,/opt/other/lib;; esac\n')
        (other / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{other}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["make", "-C", str(bootstrap), "install"], env=env, check=True, capture_output=True)
    launcher = tmp_path / "loradeck-0.1.0" / "usr" / "bin" / "loradeck"
    dynamic = subprocess.run(["readelf", "-d", launcher], capture_output=True, text=True, check=True).stdout
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
    ldd = subprocess.run(["ldd", launcher], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    found = re.search(r"libpython\S+ => (\S+)", ldd)
    assert found and os.path.realpath(found.group(1)) == libpython, ldd
