"""Supervisor process between the executor and a workload's command.

Run as `python -I -S _runner.py CONFIG_JSON` (stdlib only, so it starts in milliseconds).
It outlives a crash of the server, which is what makes re-adoption possible: it joins the
workload's cgroup or applies rlimits, starts the command in its own process group, forwards
SIGTERM/SIGINT/SIGHUP to that group, and when the command ends kills what the command left
behind and writes the exit code (negative for a signal, like Popen) atomically into the
`exit` file. Its stdout/stderr are the workload's log, which the command inherits.
"""

import json
import os
import signal
import subprocess
import sys

_child = None
_pending = []


def _say(message):
    sys.stderr.write(f"flowyard: {message}\n")
    sys.stderr.flush()


def _write_exit(path, code):
    tmp = f"{path}.tmp"  # atomic; not fsynced: the outputs it vouches for are not either
    with open(tmp, "w") as fh:
        fh.write(f"{code}\n")
    os.replace(tmp, path)


def _forward(signum, _frame):
    if _child is None:
        _pending.append(signum)
        return
    try:
        os.killpg(_child.pid, signum)
    except OSError:
        pass


def _limits(config):
    rlimit_as = config.get("rlimit_as") or 0
    cpus = config.get("cpus") or []

    def apply():
        if rlimit_as:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))
        if cpus:
            os.sched_setaffinity(0, cpus)

    return apply


def main(argv):
    global _child
    config = json.loads(argv[1])
    exit_path = config["exit"]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _forward)
    if config.get("cgroup"):
        try:
            with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError as exc:
            _say(f"cannot join cgroup {config['cgroup']} to enforce limits: {exc}")
            _write_exit(exit_path, 125)
            return 0
    try:
        _child = subprocess.Popen(
            config["command"],
            cwd=config.get("cwd"),
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=_limits(config),
        )
    except FileNotFoundError as exc:
        _say(f"cannot start {config['command'][0]!r}: {exc.strerror}: {exc.filename}")
        _write_exit(exit_path, 127)
        return 0
    except (OSError, subprocess.SubprocessError) as exc:
        _say(f"cannot start {config['command'][0]!r}: {exc}")
        _write_exit(exit_path, 126)
        return 0
    for signum in _pending:
        _forward(signum, None)
    code = _child.wait()
    try:
        os.killpg(_child.pid, signal.SIGKILL)  # leftovers of the command's process group
    except OSError:
        pass
    _write_exit(exit_path, code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
