"""The pure parts of the executor: specs, admission rules, limits detection, GPU discovery."""

from pathlib import Path

import pytest

from flowyard.executor import InvalidWorkload, Quota, Resources, WorkloadSpec, WorkloadStatus
from flowyard.executor.admission import check_admission, never_fits
from flowyard.executor.gpus import _parse_smi, discover_gpus
from flowyard.executor.limits import Limiter, detect_limiter

HOST = Resources(cpu=2, memory=4 * 2**30, gpu=1)


def test_requests_default_to_limits_per_field():
    spec = WorkloadSpec(id="a", namespace="n", command=["x"],
                        requests=Resources(cpu=0.5), limits=Resources(cpu=2, memory=2**30))
    assert spec.effective_requests() == Resources(cpu=0.5, memory=2**30)
    assert WorkloadSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kwargs", [
    {"id": "Bad_Id"}, {"id": "-a"}, {"command": []}, {"namespace": ""}, {"kind": "daemon"},
    {"timeout": 0}, {"grace_period": -1}, {"env": {"A=B": "x"}},
])
def test_invalid_specs_are_rejected(kwargs):
    values = {"id": "ok", "namespace": "n", "command": ["x"], **kwargs}
    with pytest.raises(InvalidWorkload):
        WorkloadSpec(**values)


def test_resources_arithmetic():
    a = Resources.of(cpu="1500m", memory="1Gi", gpu=1)
    assert a + a == Resources(3, 2 * 2**30, 2)
    assert a - (a + a) == Resources()
    assert a.fits(HOST) and not (a + a).fits(HOST)
    assert a.describe() == "1.5 cpu, 1Gi memory, 1 gpu"
    with pytest.raises(InvalidWorkload, match="invalid memory quantity"):
        Resources.of(memory="1GB")
    with pytest.raises(InvalidWorkload):
        Resources(cpu=-1)


def test_status_round_trips():
    status = WorkloadStatus("a", "n", "batch", "Running", gpus=["0"], labels={"k": "v"})
    assert WorkloadStatus.from_dict(status.to_dict()) == status
    assert status.to_dict()["phase"] == "Running"


def test_admission_messages():
    want = Resources(cpu=2, memory=2**30)
    free = Resources(cpu=1.5, memory=2**30)
    verdict = check_admission(want, free, HOST, None, Resources(), "n")
    assert verdict.reason == "Insufficient"
    assert verdict.message == "waiting for 2 cpu: 1.5 of 2 free on this host"
    quota = Quota(memory=2 * 2**30)
    verdict = check_admission(want, HOST, HOST, quota, Resources(memory=1536 * 2**20), "n")
    assert (verdict.reason, verdict.message) == (
        "QuotaExceeded", "waiting for quota of namespace 'n': 1Gi memory: 512Mi of 2Gi left")
    assert check_admission(want, HOST, HOST, quota, Resources(), "n") is None
    assert never_fits(want, HOST, Quota(gpu=0), "n") is None  # 0 gpu allowed, 0 wanted
    assert never_fits(Resources(gpu=1), HOST, Quota(gpu=0), "n").reason == "QuotaExceeded"
    verdict = never_fits(Resources(memory=8 * 2**30), HOST, None, "n")
    assert verdict.message == "requests 8Gi memory but this host has 4Gi memory in total"


def test_limits_fall_back_to_rlimit_without_unified_hierarchy(tmp_path: Path):
    limiter = detect_limiter("key", mount=tmp_path)
    assert limiter.mode == "rlimit" and "no unified cgroup v2" in limiter.why
    plan = limiter.prepare("w", Resources(cpu=0.5, memory=2**30))
    assert plan.rlimit_as == 2**30 and len(plan.cpus) == 1
    assert "address space" in plan.description
    assert Limiter("rlimit").prepare("w", Resources()).description == "no limits set"


def test_gpu_discovery_override_and_parsing():
    assert [g.index for g in discover_gpus({"FLOWYARD_GPUS": "0, 1"})] == ["0", "1"]
    assert discover_gpus({"FLOWYARD_GPUS": "none"}) == []
    assert discover_gpus({"FLOWYARD_GPUS": ""}) == []
    gpus = _parse_smi("0, GPU-abc, NVIDIA H200, 143771\n1, GPU-def, NVIDIA H200, 143771\n")
    assert [(g.index, g.uuid, g.memory) for g in gpus] == [
        ("0", "GPU-abc", 143771 * 2**20), ("1", "GPU-def", 143771 * 2**20)]
