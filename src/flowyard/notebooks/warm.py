"""Warm JupyterLab starts: the notebooks' zygote, on the shared one (`flowyard/executor/warm.py`).

Standalone and stdlib-only, used by path:

  python WARM serve SOCKET
      the zygote of an environment, a long-lived system service workload: imports JupyterLab,
      jupyter_server, tornado and the identity provider once (no event loop) and forks servers.
  python -I -S WARM launch SOCKET -- ARGS...
      a notebook's command: `python -m jupyterlab ARGS` forked by the zygote, supervised from
      here (signals, limits, exit status), or started cold when the zygote is absent or refuses
      (another interpreter or identity provider, a cgroup it cannot join).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "executor"))
import warm as _shared  # flowyard/executor/warm.py, not this file (which runs as __main__)

AUTH_MODULE = "flowyard_jupyter_auth"
PRELOAD = ["tornado.ioloop", "tornado.web", "jupyter_server.serverapp", "jupyterlab.labapp", f"?{AUTH_MODULE}"]


def main(argv):
    if len(argv) >= 3 and argv[1] == "serve":
        _shared.serve(argv[2], PRELOAD, AUTH_MODULE)
        return 0
    if len(argv) >= 4 and argv[1] == "launch" and argv[3] == "--":
        return _shared.launch(argv[2], ["python", "-m", "jupyterlab", *argv[4:]])
    sys.stderr.write("usage: warm.py serve SOCKET | launch SOCKET -- ARGS...\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
