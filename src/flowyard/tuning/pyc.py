"""`python -m flowyard.tuning.pyc CODE [ARG...]` behaves like `python -c CODE [ARG...]`.

A trial's `python -c` command in the default environment is run this way so the executor can
fork it from a warm zygote (which imported this module once) instead of starting a runner and
an interpreter per trial: the program, its arguments, `__name__ == "__main__"` and its exit
status are the same.
"""

import sys


def main() -> None:
    code, args = sys.argv[1], sys.argv[2:]
    sys.argv = ["-c", *args]
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__doc__": None}
    exec(compile(code, "<string>", "exec"), namespace)  # noqa: S102 - running the user's program is the point


if __name__ == "__main__":
    main()
