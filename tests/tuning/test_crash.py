"""SIGKILL the server in the middle of an experiment: after a restart it finishes, and no trial ran twice."""

from __future__ import annotations

import signal
import time

from katib import EXPERIMENTS, experiment, trials_of, wait_done


def test_killed_server_resumes_the_experiment_without_rerunning_trials(server, tmp_path) -> None:
    ran = tmp_path / "ran.txt"
    code = (f"import os, time; open({str(ran)!r}, 'a').write(os.environ['FLOWYARD_TRIAL_NAME'] + '\\n'); "
            "time.sleep(1.0); x=float('${trialParameters.x}'); print(f'loss={x*x}')")
    with server.client() as c:
        assert c.post(EXPERIMENTS, json=experiment("crash", code=code, algorithm="tpe", max_trials=6,
                                                   parallel=2)).status_code == 201
        deadline = time.monotonic() + 60
        while True:
            st = c.get(f"{EXPERIMENTS}/crash").json().get("status", {})
            if st.get("trialsSucceeded", 0) >= 2 and st.get("trialsRunning", 0) >= 1:
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)

    server.stop(signal.SIGKILL)
    time.sleep(0.5)
    server.start()

    with server.client() as c:
        st = wait_done(c, "crash")["status"]
        assert st["phase"] == "Succeeded" and st["trials"] == 6 and st["trialsSucceeded"] == 6, st
        names = sorted(t["metadata"]["name"] for t in trials_of(c, "crash"))
    runs = sorted(ran.read_text().split())
    assert runs == names, "every trial ran exactly once"
