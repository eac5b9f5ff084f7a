/*
 * Launcher of the packaged {{ cookiecutter.formal_name }}: /usr/bin/{{ cookiecutter.app_name }}.
 *
 * Starts the system's Python {{ cookiecutter.python_version }} in isolated mode (PYTHONPATH, PYTHONHOME
 * and the user site are ignored, site-packages are not imported), puts the app's own folders
 * <prefix>/lib/{{ cookiecutter.app_name }}/app and .../app_packages on sys.path (prefix = the folder
 * above this binary's folder, so a package unpacked anywhere still finds its files), and runs
 * `python -m {{ cookiecutter.module_name }}` with this program's arguments.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>

static const char *BOOT =
    "import os, site, sys, runpy\n"
    "exe = os.path.realpath('/proc/self/exe')\n"
    "lib = os.path.join(os.path.dirname(os.path.dirname(exe)), 'lib', '{{ cookiecutter.app_name }}')\n"
    "sys.path.insert(0, os.path.join(lib, 'app'))\n"
    "site.addsitedir(os.path.join(lib, 'app_packages'))\n"
    "for extra in os.environ.get('LORADECK_PLUGIN_PATH', '').split(os.pathsep):\n"
    "    if extra:\n"
    "        site.addsitedir(extra)\n"
    "sys.argv[0] = exe\n"
    "# Embedded, sys.executable is empty; point it at the system Python with the app's folders on\n"
    "# PYTHONPATH, so helper subprocesses (python -c ...) import the same packages.\n"
    "sys.executable = '/usr/bin/python{{ cookiecutter.python_version }}'\n"
    "os.environ['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p.startswith(lib))\n"
    "runpy.run_module('{{ cookiecutter.module_name }}', run_name='__main__', alter_sys=True)\n";

static int fail(PyStatus status, PyConfig *config)
{
    if (config) {
        PyConfig_Clear(config);
    }
    if (PyStatus_IsExit(status)) {
        return status.exitcode;
    }
    Py_ExitStatusException(status);   /* prints the error and exits */
    return 1;
}

int main(int argc, char *argv[])
{
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;           /* file names and output in UTF-8 whatever the locale */
    PyStatus status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        return fail(status, NULL);
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;            /* no system dist-packages; BOOT adds the app's folders */
    config.install_signal_handlers = 1;
    config.parse_argv = 0;             /* arguments belong to the app, not to Python */
    config.write_bytecode = 0;         /* /usr/lib is read-only for users */
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (PyStatus_Exception(status)) {
        return fail(status, &config);
    }
    status = PyConfig_SetBytesString(&config, &config.program_name, "{{ cookiecutter.app_name }}");
    if (PyStatus_Exception(status)) {
        return fail(status, &config);
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        return fail(status, NULL);
    }
    /* SystemExit ends the process with its code inside PyRun_SimpleString; any other
       exception is printed with its traceback and gives -1 here. */
    int rc = PyRun_SimpleString(BOOT);
    if (Py_FinalizeEx() < 0 && rc == 0) {
        rc = 120;
    }
    return rc == 0 ? 0 : 1;
}
