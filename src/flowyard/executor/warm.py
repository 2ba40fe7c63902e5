"""Warm starts: a pre-imported "zygote" per environment that forks `python -m MODULE` workloads.

Starting Python and importing a framework costs 70 ms (kfp's executor) to 2 s (JupyterLab) per
process; a zygote pays it once and forks. Standalone and stdlib-only (it runs with an
environment's interpreter, which need not have Flowyard installed), used by path:

  python WARM serve SOCKET [--stamp MODULE] [--idle SECONDS] ITEM...
      the zygote, a long-lived system service workload: sets each `NAME=VALUE` item in its
      environment, imports each `MODULE` item once (`?MODULE`: if it can be imported), listens
      on the Unix socket SOCKET and forks `python -m M ARGS` for M among (or a package of) the
      imported modules. `--stamp MODULE`: requests must see the same file of that module on
      their PYTHONPATH (a changed module means a new zygote). `--idle`: exit when unused.
  python -I -S WARM launch SOCKET -- python -m M ARGS...
      a workload's command (its runner supervises it): hands argv, env, cwd, stdio (SCM_RIGHTS),
      cgroup, address-space limit and CPU affinity to the zygote, relays signals to the forked
      process group and exits with its status. If the zygote is absent, refuses (another
      interpreter, a cgroup it cannot join) or fails, it execs the command cold.
  spawn(SOCKET, request, fds)  (imported by the local executor)
      the same request, but the zygote's helper *is* the workload's supervisor in place of
      `_runner.py`: it writes the exit code to `request["exit"]` and outlives the caller, so no
      interpreter starts at all.

The zygote keeps one helper forked ahead, waiting for the next request; it checks the peer's
uid, joins the cgroup and forks the workload in its own process group, forwards
SIGTERM/SIGINT/SIGHUP to that group, waits for it (a launcher's disconnect kills it), kills
what it left behind and reports the exit status (negative for a signal, like Popen). The
workload ends as an interpreter does: non-daemon threads are joined, atexit handlers run.
"""

import json
import os
import select
import signal
import socket
import struct
import sys

MAX_REQUEST = 64 << 20
_CGROUP_ROOT = "/sys/fs/cgroup"


def identity(bin_dir):
    """What must match between the requester's interpreter and the zygote's: the interpreter
    `bin_dir/python` and its virtualenv's creation stamp (a rebuilt environment differs)."""
    exe = os.path.join(os.path.abspath(bin_dir), "python")
    try:
        stamp = os.stat(os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "pyvenv.cfg")).st_mtime_ns
    except OSError:
        stamp = 0
    return [exe, stamp]


def _module_stamp(module, pythonpath):
    """(mtime, size) of `module`.py as found on `pythonpath`, or None."""
    if not module:
        return None
    for folder in (pythonpath or "").split(os.pathsep):
        if folder:
            try:
                st = os.stat(os.path.join(folder, f"{module}.py"))
            except OSError:
                continue
            return [st.st_mtime_ns, st.st_size]
    return None


def _own_cgroup():
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                if line.startswith("0::"):
                    return os.path.join(_CGROUP_ROOT, line[3:].strip().lstrip("/")).rstrip("/")
    except OSError:
        pass
    return None


def _connect(path, timeout=None):
    """Connect to a Unix socket; a path too long for sun_path (~107 bytes) goes through a
    descriptor of its folder (no chdir: the executor's process has other threads)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    folder = None
    try:
        if len(path.encode()) < 100:
            sock.connect(path)
        else:
            folder = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
            sock.connect(f"/proc/self/fd/{folder}/{os.path.basename(path)}")
    except OSError:
        sock.close()
        raise
    finally:
        if folder is not None:
            os.close(folder)
    return sock


def _send(sock, request, fds):
    data = json.dumps(request).encode()
    sock.sendmsg([struct.pack("!I", len(data))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   struct.pack(f"{len(fds)}i", *fds))])
    sock.sendall(data)


def _write_exit(path, code):
    tmp = f"{path}.tmp"  # atomic; not fsynced: the outputs it vouches for are not either
    with open(tmp, "w") as fh:
        fh.write(f"{code}\n")
    os.replace(tmp, path)


# -- clients ----------------------------------------------------------------------------------

def spawn(sock_path, request, fds, timeout=2.0):
    """Have the zygote start a workload it supervises: the helper's pid, or why not (a str:
    "unreachable", "timeout", "refused: <why>"; the caller starts the workload cold).

    `request`: identity, argv, env, cwd, cgroup (a folder), rlimit_as (bytes, 0: none), cpus,
    exit (the file that receives the exit code). `fds`: stdin, stdout, stderr."""
    try:
        sock = _connect(sock_path, timeout)
    except TimeoutError:
        return "timeout"
    except OSError:
        return "unreachable"
    try:
        _send(sock, {**request, "tether": False}, fds)
        first = sock.makefile("rb").readline().decode(errors="replace").split()
        if len(first) != 2 or first[0] != "ok":
            return "refused: " + (" ".join(first[1:]) or "no answer")
        sock.sendall(b"g")  # only now does the helper fork: a timed-out request never runs
        return int(first[1])
    except TimeoutError:
        return "timeout"
    except (OSError, ValueError) as exc:
        return f"refused: {exc}"
    finally:
        sock.close()


def _cold(argv):
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def launch(sock_path, argv):
    """Run `argv` (`python -m M ...`) forked by the zygote, supervised from here; cold if not."""
    import resource

    try:
        sock = _connect(sock_path)
    except OSError:
        return _cold(argv)
    request = {
        "identity": identity(os.path.dirname(sys.executable)), "argv": argv, "env": dict(os.environ),
        "cwd": os.getcwd(), "cgroup": _own_cgroup(), "rlimit_as": list(resource.getrlimit(resource.RLIMIT_AS)),
        "cpus": sorted(os.sched_getaffinity(0)), "exit": None, "tether": True,
    }
    reader = None
    try:
        _send(sock, request, (0, 1, 2))
        reader = sock.makefile("r")
        first = reader.readline().split()
        if len(first) == 2 and first[0] == "ok":
            sock.sendall(b"g")
    except OSError:
        first = []
    if len(first) != 2 or first[0] != "ok":
        sock.close()
        return _cold(argv)
    helper = int(first[1])

    def forward(signum, _frame):
        try:
            os.kill(helper, signum)  # the helper forwards it to the workload's group
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        last = reader.readline().split()
    except OSError:
        last = []
    if len(last) != 2 or last[0] != "exit":
        sys.stderr.write("flowyard: the warm process's supervisor vanished\n")
        return 1
    code = int(last[1])
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


# -- zygote -----------------------------------------------------------------------------------

def _recv_request(conn):
    head, fds = b"", []
    while len(head) < 4:
        msg, anc, _flags, _addr = conn.recvmsg(4 - len(head), socket.CMSG_SPACE(3 * 4))
        if not msg:
            raise EOFError("the client closed the connection")
        head += msg
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
    (size,) = struct.unpack("!I", head)
    if size > MAX_REQUEST:
        raise ValueError("request too large")
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(min(1 << 20, size - len(body)))
        if not chunk:
            raise EOFError("the client closed the connection")
        body += chunk
    return json.loads(body), fds


def _served(argv, modules):
    """M when argv is `python -m M ...` and M is (a package of) an imported module."""
    if len(argv) < 3 or not os.path.basename(argv[0]).startswith("python") or argv[1] != "-m":
        return None
    m = argv[2]
    return m if any(x == m or x.startswith(m + ".") for x in modules) else None


def _run_module(request, fds, module, base_path):
    """In the forked workload: become `python -m module ARGS`, never return."""
    code = 1
    try:
        os.setpgid(0, 0)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        import resource

        limit = request.get("rlimit_as") or 0
        want = tuple(limit) if isinstance(limit, list) else (limit, limit) if limit else None
        if want and want != tuple(resource.getrlimit(resource.RLIMIT_AS)):
            resource.setrlimit(resource.RLIMIT_AS, want)
        if request.get("cpus"):
            os.sched_setaffinity(0, request["cpus"])
        os.chdir(request["cwd"])
        env = request["env"]
        os.environ.clear()
        os.environ.update(env)
        extra = [p for p in (env.get("PYTHONPATH") or "").split(os.pathsep) if p]
        sys.path[:] = [request["cwd"], *extra, *[p for p in base_path if p not in extra]]  # as `python -m`
        sys.argv = [module, *request["argv"][3:]]
        import random
        import runpy

        random.seed()
        sys.modules.pop(module, None)  # it runs as __main__, as with `python -m`
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                sys.stderr.write(f"{exc.code}\n")
        except BaseException:  # noqa: BLE001 - the workload's own error: print it, exit 1
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            _finalize()
        finally:
            os._exit(code & 0xFF if isinstance(code, int) else 1)


def _finalize():
    """What the interpreter does at exit, before the forked workload's `os._exit`."""
    for step in ("threading", "atexit"):
        try:
            if step == "threading":
                import threading

                threading._shutdown()  # join non-daemon threads
            else:
                import atexit

                atexit._run_exitfuncs()  # logging.shutdown, the user's handlers
        except BaseException:  # noqa: BLE001 - as at exit: report, go on
            import traceback

            traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _serve_one(conn, zygote):
    """In the helper that accepted a request; returns its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)  # stopping the zygote (its group) leaves running workloads alone
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    if struct.unpack("3i", creds)[1] != os.getuid():
        conn.sendall(b"no foreign-user\n")
        return 0
    try:
        request, fds = _recv_request(conn)
    except (OSError, EOFError, ValueError) as exc:
        try:
            conn.sendall(f"no bad-request {type(exc).__name__}\n".encode())
        except OSError:
            pass
        return 0
    module = _served(request.get("argv") or [], zygote["modules"])
    if request.get("identity") != zygote["identity"] or len(fds) != 3 or module is None \
            or _module_stamp(zygote["stamp_module"], request["env"].get("PYTHONPATH")) != zygote["stamp"]:
        conn.sendall(b"no other-environment\n")
        return 0
    cgroup = (request.get("cgroup") or "").rstrip("/")
    if cgroup and cgroup != _own_cgroup():
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError:
            conn.sendall(b"no cgroup\n")
            return 0
    child, pending = [], []

    def forward(signum, _frame):
        if not child:
            pending.append(signum)
            return
        try:
            os.killpg(child[0], signum)
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        conn.sendall(f"ok {os.getpid()}\n".encode())
        if conn.recv(1) != b"g":
            return 0  # the client gave up: nothing runs
    except OSError:
        return 0
    tether, exit_path = bool(request.get("tether")), request.get("exit")
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_module(request, fds, module, zygote["base_path"])
    for fd in fds:
        os.close(fd)
    try:
        os.setpgid(pid, pid)  # also done by the child: whichever runs first
    except OSError:
        pass
    child.append(pid)
    for signum in pending:
        forward(signum, None)
    watched = [conn] if tether else []
    if not tether:
        conn.close()
    status = None
    pidfd = os.pidfd_open(pid)
    try:
        while status is None:
            ready, _, _ = select.select([pidfd, *watched], [], [])
            if conn in ready:
                try:
                    gone = conn.recv(1) == b""
                except OSError:
                    gone = True
                if gone:  # the launcher died (SIGKILL): the workload dies with it
                    _kill_group(pid)
                    watched = []
            if pidfd in ready:
                _, raw = os.waitpid(pid, 0)
                status = os.waitstatus_to_exitcode(raw)
    finally:
        os.close(pidfd)
    _kill_group(pid)  # leftovers of the workload's process group, like the runner
    if exit_path:
        _write_exit(exit_path, status)
    if tether:
        try:
            conn.sendall(f"exit {status}\n".encode())
        except OSError:
            pass
    return 0


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def serve(sock_path, items, stamp_module=None, idle=None):
    hidden = {os.path.dirname(os.path.abspath(p)) for p in (__file__, sys.argv[0]) if p}
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") not in hidden]  # not flowyard's modules
    modules = []
    for item in items:  # the point: set up and imported once, before the forks
        if "=" in item:
            name, _, value = item.partition("=")
            os.environ[name] = value
            continue
        optional, name = item.startswith("?"), item.lstrip("?")
        try:
            __import__(name)
        except ImportError:
            if not optional:
                raise
            continue
        modules.append(name)
    import locale  # noqa: F401  imported lazily by most `python -m` programs (argparse's help
    import shutil  # noqa: F401  formatter, text files): once here, not in every fork

    zygote = {"identity": identity(os.path.dirname(sys.executable)), "modules": modules,
              "stamp_module": stamp_module, "stamp": _module_stamp(stamp_module, os.environ.get("PYTHONPATH")),
              "base_path": [p for p in sys.path if p]}
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # helpers are reaped automatically
    directory, name = os.path.split(sock_path)
    os.makedirs(directory or ".", mode=0o700, exist_ok=True)
    os.chdir(directory or ".")
    tmp = f".{name}.{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        server.bind(tmp)
    finally:
        os.umask(old)
    server.listen(256)
    os.replace(tmp, name)  # atomically replaces a dead zygote's socket
    print(f"flowyard: warm {', '.join(modules)} ready on {sock_path} (pid {os.getpid()})", flush=True)
    taken_r, taken_w = os.pipe()
    alive_r, alive_w = os.pipe()  # only the zygote holds alive_w: its end is EOF for a waiting helper
    while True:  # one helper is always forked ahead, waiting in accept(): no fork on the request path
        try:
            pid = os.fork()
        except OSError as exc:
            print(f"flowyard: cannot fork: {exc}", flush=True)
            select.select([], [], [], 1.0)
            continue
        if pid == 0:
            code = 1
            try:
                os.close(taken_r)
                os.close(alive_w)
                if alive_r in select.select([server, alive_r], [], [])[0]:
                    os._exit(0)  # the zygote was killed: do not outlive it
                conn, _ = server.accept()
                server.close()
                os.close(alive_r)
                os.write(taken_w, b".")  # the zygote forks the next helper meanwhile
                os.close(taken_w)
                code = _serve_one(conn, zygote)
            finally:
                os._exit(code)
        try:
            spare = os.pidfd_open(pid)
        except OSError:  # already gone (and reaped)
            continue
        try:
            ready = select.select([taken_r, spare], [], [], idle)[0]
        finally:
            os.close(spare)
        if not ready:  # unused for `idle` seconds: end (the executor starts a new one when asked)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            os.unlink(name)
            print(f"flowyard: no request for {idle:g} s, exiting", flush=True)
            return
        if taken_r in ready:
            os.read(taken_r, 1)


def main(argv):
    if len(argv) >= 3 and argv[1] == "serve":
        rest, options = argv[3:], {"--stamp": None, "--idle": None}
        while rest[:1] and rest[0] in options and len(rest) >= 2:
            options[rest[0]], rest = rest[1], rest[2:]
        idle = float(options["--idle"]) if options["--idle"] else None
        serve(argv[2], rest, options["--stamp"], idle)
        return 0
    if len(argv) >= 5 and argv[1] == "launch" and argv[3] == "--":
        return launch(argv[2], argv[4:])
    sys.stderr.write("usage: warm.py serve SOCKET [--stamp MODULE] [--idle SECONDS] ITEM... | "
                     "launch SOCKET -- python -m M ARGS...\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
