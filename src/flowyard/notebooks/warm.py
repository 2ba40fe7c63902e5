"""Warm JupyterLab starts: a pre-imported "zygote" per environment that forks a notebook server.

Standalone and stdlib-only (it runs with an environment's interpreter, which need not have
Flowyard installed), used by path:

  python WARM serve SOCKET
      the zygote, a long-lived system service workload per environment: imports JupyterLab,
      jupyter_server, tornado and the identity provider once (no event loop), listens on the
      Unix socket SOCKET and forks a server per request.
  python -I -S WARM launch SOCKET -- ARGS...
      a notebook's command (the runner supervises it like any other): hands its argv, env, cwd,
      stdin/stdout/stderr (SCM_RIGHTS), cgroup, address-space limit and CPU affinity to the
      zygote, relays signals to the server's process group and exits with the server's status.
      If the zygote is absent, refuses (another interpreter or identity provider, a cgroup it
      cannot join) or fails before the server starts, it execs the cold `python -m jupyterlab ARGS`.

Per request the zygote forks a helper that checks the peer's uid, joins the notebook's cgroup
and forks the server; the helper waits for the server (or the launcher's disconnect, which
kills the server's group) and reports the status.
"""

import json
import os
import select
import signal
import socket
import struct
import sys

MAX_REQUEST = 64 << 20
AUTH_MODULE = "flowyard_jupyter_auth"


def _cold(args):
    argv = ["python", "-m", "jupyterlab", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def _auth_stamp(pythonpath):
    """(mtime, size) of the identity provider module the environment would import."""
    for folder in (pythonpath or "").split(os.pathsep):
        if not folder:
            continue
        try:
            st = os.stat(os.path.join(folder, f"{AUTH_MODULE}.py"))
        except OSError:
            continue
        return [st.st_mtime_ns, st.st_size]
    return None


def _identity(env):
    """What must match between the launcher's interpreter and the zygote's (the launcher runs
    with -S, so not sys.prefix: the environment is told by the interpreter's path)."""
    exe = os.path.abspath(sys.executable)
    try:
        stamp = os.stat(os.path.join(os.path.dirname(os.path.dirname(exe)), "pyvenv.cfg")).st_mtime_ns
    except OSError:
        stamp = 0
    return [exe, sys.version, stamp, _auth_stamp(env.get("PYTHONPATH"))]


def _own_cgroup():
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def _connect(path):
    """Connect by a path relative to its folder (socket paths are limited to ~107 bytes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = os.open(".", os.O_RDONLY)
    try:
        os.chdir(os.path.dirname(path) or ".")
        sock.connect(os.path.basename(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.fchdir(here)
        os.close(here)
    return sock


# -- launcher ---------------------------------------------------------------------------------

def launch(sock_path, args):
    import resource

    try:
        sock = _connect(sock_path)
    except OSError:
        return _cold(args)
    env = dict(os.environ)
    request = {
        "identity": _identity(env),
        "argv": ["jupyter-lab", *args],
        "env": env,
        "cwd": os.getcwd(),
        "cgroup": _own_cgroup(),
        "rlimit_as": list(resource.getrlimit(resource.RLIMIT_AS)),
        "cpus": sorted(os.sched_getaffinity(0)),
    }
    data = json.dumps(request).encode()
    reader = None
    try:
        sock.sendmsg([struct.pack("!I", len(data))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                       struct.pack("3i", 0, 1, 2))])
        sock.sendall(data)
        reader = sock.makefile("r")
        first = reader.readline().split()
    except OSError:
        first = []
    if len(first) != 2 or first[0] != "ok":
        sock.close()
        return _cold(args)
    pid = int(first[1])

    def forward(signum, _frame):
        try:
            os.killpg(pid, signum)
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        last = reader.readline().split()
    except OSError:
        last = []
    if len(last) != 2 or last[0] != "exit":
        sys.stderr.write("flowyard: the warm notebook server's supervisor vanished\n")
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
            raise EOFError("launcher closed the connection")
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
            raise EOFError("launcher closed the connection")
        body += chunk
    return json.loads(body), fds


def _run_server(request, fds, base_path):
    """In the forked server: become the notebook, run JupyterLab, never return."""
    code = 1
    try:
        os.setpgid(0, 0)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        import resource

        soft, hard = request["rlimit_as"]
        if (soft, hard) != tuple(resource.getrlimit(resource.RLIMIT_AS)):
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        if request["cpus"]:
            os.sched_setaffinity(0, request["cpus"])
        os.chdir(request["cwd"])
        env = request["env"]
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(request["argv"])
        extra = [p for p in (env.get("PYTHONPATH") or "").split(os.pathsep) if p]
        sys.path[:] = [request["cwd"], *extra, *[p for p in base_path if p not in extra]]  # as `python -m`
        import random

        random.seed()
        from jupyterlab.labapp import LabApp

        try:
            LabApp.launch_instance(argv=sys.argv[1:])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, (int, type(None))):
                sys.stderr.write(f"{exc.code}\n")
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF if isinstance(code, int) else 1)


def _serve_one(conn, cgroup_root, identity, base_path):
    """In the per-request helper forked by the zygote; returns its exit code."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)  # stopping the zygote (its group) leaves running servers alone
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
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
    if request.get("identity") != identity or len(fds) != 3:
        conn.sendall(b"no other-environment\n")
        return 0
    cgroup = request.get("cgroup")
    if cgroup and cgroup != _own_cgroup():
        try:
            with open(os.path.join(cgroup_root, cgroup.lstrip("/"), "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
        except OSError:
            conn.sendall(b"no cgroup\n")
            return 0
    pid = os.fork()
    if pid == 0:
        conn.close()
        _run_server(request, fds, base_path)
    for fd in fds:
        os.close(fd)
    try:
        os.setpgid(pid, pid)  # also done by the child: whichever runs first
    except OSError:
        pass
    try:
        conn.sendall(f"ok {pid}\n".encode())
    except OSError:
        pass
    status = None
    pidfd = os.pidfd_open(pid)
    try:
        while status is None:
            ready, _, _ = select.select([pidfd, conn], [], [])
            if conn in ready:
                try:
                    gone = conn.recv(1) == b""
                except OSError:
                    gone = True
                if gone:  # the launcher died (SIGKILL): the server dies with it
                    _kill_group(pid)
                    ready = [pidfd]
            if pidfd in ready:
                _, raw = os.waitpid(pid, 0)
                status = os.waitstatus_to_exitcode(raw)
    finally:
        os.close(pidfd)
    _kill_group(pid)  # leftovers of the server's process group (kernels), like the runner
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


def serve(sock_path):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]  # not flowyard's modules
    identity = _identity(os.environ)
    # The point: imported once, before the forks; no event loop is created here.
    import tornado.ioloop  # noqa: F401
    import tornado.web  # noqa: F401
    import jupyter_server.serverapp  # noqa: F401
    import jupyterlab.labapp  # noqa: F401

    try:
        __import__(AUTH_MODULE)
    except ImportError:
        pass
    base_path = [p for p in sys.path if p]
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
    cgroup_root = "/sys/fs/cgroup"
    print(f"flowyard: warm JupyterLab ready on {sock_path} (pid {os.getpid()})", flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except InterruptedError:
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            print(f"flowyard: cannot fork: {exc}", flush=True)
            conn.close()
            continue
        if pid == 0:
            server.close()
            code = 1
            try:
                code = _serve_one(conn, cgroup_root, identity, base_path)
            finally:
                os._exit(code)
        conn.close()


def main(argv):
    if len(argv) >= 3 and argv[1] == "serve":
        serve(argv[2])
        return 0
    if len(argv) >= 4 and argv[1] == "launch" and argv[3] == "--":
        return launch(argv[2], argv[4:])
    sys.stderr.write("usage: warm.py serve SOCKET | launch SOCKET -- ARGS...\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
