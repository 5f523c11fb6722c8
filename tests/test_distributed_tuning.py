"""A real distributed search: a chief oracle and two workers on 127.0.0.1."""

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    '''
    import json, os, pathlib, sys, time
    import numpy as np
    import keras
    import kerasreg
    from kerasreg.tuning import log_uniform

    out = pathlib.Path(sys.argv[1])
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    if tuner_id == "chief":
        # Keras Tuner's chief, once the oracle has said STOPPED, re-checks
        # every 20 s whether all workers have left before it exits (a
        # hard-coded `time.sleep(20)` in keras_tuner/src/distribute/
        # oracle_chief.py, no setting for it). In this test only, its
        # sleeps are capped at 0.2 s; what it waits for is unchanged.
        import types
        from keras_tuner.src.distribute import oracle_chief

        oracle_chief.time = types.SimpleNamespace(
            sleep=lambda seconds: time.sleep(min(seconds, 0.2))
        )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 1.5])).astype("float32")[:, None]

    def build(hp):
        lr = log_uniform(hp, "learning_rate", 1e-3, 0.3)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
        return model

    class Recording(kerasreg.CoarseToFine):
        ran = []
        def run_trial(self, trial, *args, **kwargs):
            v = trial.hyperparameters.values
            self.ran.append([trial.trial_id, v["tuner/stage"], v["tuner/epochs"]])
            return super().run_trial(trial, *args, **kwargs)

    tuner = Recording(build, "val_loss", stages=((4, 1), (2, 2)), top_k=2,
                      seed=11, directory=str(out / "search"), project_name="dist")
    if tuner_id != "chief":
        # Both workers start searching together, so both take trials.
        (out / f"ready_{tuner_id}").touch()
        while not all((out / f"ready_tuner{i}").exists() for i in range(2)):
            time.sleep(0.2)
    tuner.search(x, y, validation_split=0.25, batch_size=8, verbose=0)
    result = {"ran": Recording.ran}
    if tuner_id == "chief":
        oracle = tuner.oracle
        result["stage_ranges"] = tuner.stage_ranges
        result["trials"] = {
            t.trial_id: [t.status, t.hyperparameters.values["tuner/stage"],
                         t.hyperparameters.values["learning_rate"], t.score]
            for t in oracle.trials.values()
        }
        result["best"] = oracle.get_best_trials(1)[0].trial_id
    (out / f"{tuner_id}.json").write_text(json.dumps(result))
    '''
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("grpc") is None,
    reason="Keras Tuner's distributed mode needs grpcio (TensorFlow brings it)",
)
def test_chief_and_two_workers_finish(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(SCRIPT)
    port = str(_free_port())
    base_env = {
        **os.environ,
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": port,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    procs = {}
    logs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        logs[tuner_id] = open(tmp_path / f"{tuner_id}.log", "w")
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            env={**base_env, "KERASTUNER_TUNER_ID": tuner_id},
            stdout=logs[tuner_id],
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
    try:
        for tuner_id in ("tuner0", "tuner1", "chief"):
            rc = procs[tuner_id].wait(timeout=420)
            log = (tmp_path / f"{tuner_id}.log").read_text()[-3000:]
            assert rc == 0, f"{tuner_id} exited with {rc}:\n{log}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for f in logs.values():
            f.close()

    chief = json.loads((tmp_path / "chief.json").read_text())
    workers = [json.loads((tmp_path / f"tuner{i}.json").read_text()) for i in range(2)]
    assert chief["ran"] == []  # the chief only serves the oracle
    ran = [r for w in workers for r in w["ran"]]
    # Every trial ran exactly once, spread over both workers, with the
    # epochs of its stage.
    assert sorted(r[0] for r in ran) == [str(i) for i in range(6)]
    assert all(len(w["ran"]) >= 1 for w in workers)
    assert sorted((r[1], r[2]) for r in ran) == [(0, 1)] * 4 + [(1, 2)] * 2
    trials = chief["trials"]
    assert all(status == "COMPLETED" for status, *_ in trials.values())
    # The chief's oracle advanced the stage: stage 1 lies inside the ranges
    # narrowed from the 2 best stage-0 trials.
    ranges = chief["stage_ranges"]
    assert len(ranges) == 2
    lo = ranges[1]["learning_rate"]["min_value"]
    hi = ranges[1]["learning_rate"]["max_value"]
    stage0 = sorted((t for t in trials.values() if t[1] == 0), key=lambda t: t[3])
    assert all(lo <= t[2] <= hi for t in stage0[:2])
    assert all(lo <= t[2] <= hi for t in trials.values() if t[1] == 1)
    # The chief carried stage 0's best into stage 1 as its first trial.
    assert trials["4"][1] == 1 and trials["4"][2] == stage0[0][2]
    assert trials[chief["best"]][1] == 1
