"""Rendering a run into Kubernetes objects: golden files, names, security, failure policy.

Golden files: tests/unit/operator/golden/<example>.yaml hold ``stylegan render -f
manifests/examples/<example>.yaml`` (attempt 1). After an intended change, regenerate them
with ``STYLEGAN_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/operator/test_render.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from tests.unit.operator.invalid_specs import BASE_SPEC, apply_patch

from stylegan_operator.api.names import GPU_TYPE_LABEL, MAX_NODES
from stylegan_operator.api.spec import RunSpec
from stylegan_operator.api.validation import validate_spec
from stylegan_operator.cli.resource_commands import render_cmd
from stylegan_operator.reconcile.jobs import build_job
from stylegan_operator.reconcile.manifest import render_run, to_yaml_stream
from stylegan_operator.reconcile.render import (
    ANNOTATION_RESUME,
    C10D_PORT,
    CONFIG_PATH,
    DEFAULT_TRAINER_IMAGE,
    METRICS_PORT,
    SCRATCH_OUTDIR,
    build_config_map,
    build_service,
    config_map_name,
    job_name,
    label_value,
    resume_uri_for,
    service_name,
    trainer_options,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("STYLEGAN_UPDATE_GOLDEN") == "1"

META = {
    "name": "faces",
    "namespace": "ml",
    "uid": "0d9a6c1e-1111-2222-3333-444455556666",
    "generation": 3,
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def spec_with(patch: dict[str, Any] | None = None) -> RunSpec:
    return validate_spec(apply_patch(BASE_SPEC, patch or {}))


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def trainer(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(job)["containers"]
    assert container["name"] == "trainer"
    return container


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --------------------------------------------------------------------------- golden
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_render_matches_golden(example: Path) -> None:
    resource = yaml.safe_load(example.read_text())
    text = to_yaml_stream(render_run(resource))
    golden = GOLDEN / f"{example.stem}.yaml"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"missing {golden}: regenerate with STYLEGAN_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"{example.name} renders differently from {golden.name}; if intended, regenerate with "
        "STYLEGAN_UPDATE_GOLDEN=1 and review the diff"
    )


def test_render_command_prints_the_golden_stream() -> None:
    example = REPO / "manifests" / "examples" / "ffhq1024-v100.yaml"
    result = CliRunner().invoke(render_cmd, ["-f", str(example)])
    assert result.exit_code == 0, result.output
    assert result.output == (GOLDEN / "ffhq1024-v100.yaml").read_text()
    kinds = [d["kind"] for d in yaml.safe_load_all(result.output)]
    assert kinds == ["Service", "ConfigMap", "Job"]


def test_render_command_json_is_one_list_of_the_same_objects(tmp_path: Path) -> None:
    example = REPO / "manifests" / "examples" / "ffhq1024-v100.yaml"
    out = tmp_path / "objects.json"
    result = CliRunner().invoke(render_cmd, ["-f", str(example), "-o", "json",
                                             "--output-file", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    listed = json.loads(out.read_text())
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert listed["items"] == list(yaml.safe_load_all((GOLDEN / "ffhq1024-v100.yaml").read_text()))


def test_render_command_attempt_and_resume() -> None:
    example = REPO / "manifests" / "examples" / "ffhq256-a100.yaml"
    result = CliRunner().invoke(
        render_cmd, ["-f", str(example), "--attempt", "3", "--resume", "gs://c/ckpt-000100.pt"]
    )
    assert result.exit_code == 0, result.output
    _, config_map, job = yaml.safe_load_all(result.output)
    assert job["metadata"]["name"] == "ffhq256-a100-a3"
    assert job["metadata"]["annotations"][ANNOTATION_RESUME] == "gs://c/ckpt-000100.pt"
    # Informative only: the trainer reads latest.json at start-up, as under the operator.
    assert yaml.safe_load(config_map["data"]["train.yaml"])["resume"] == "latest"


def test_render_command_refuses_a_bad_spec_with_exit_64_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load((REPO / "manifests" / "examples" / "cpu-lfw.yaml").read_text())
    doc["spec"]["resources"]["gpusPerNode"] = 99
    bad.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(render_cmd, ["-f", str(bad)])
    assert result.exit_code == 64
    assert "spec.resources.gpusPerNode" in result.output
    assert str(bad) in result.output


def test_render_command_refuses_a_file_without_a_run(tmp_path: Path) -> None:
    other = tmp_path / "cm.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = CliRunner().invoke(render_cmd, ["-f", str(other)])
    assert result.exit_code == 64
    assert "exactly one StyleGANRun" in result.output


def test_render_command_refuses_a_run_without_spec(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("apiVersion: stylegan.dev/v1alpha1\nkind: StyleGANRun\nmetadata: {name: x}\n")
    result = CliRunner().invoke(render_cmd, ["-f", str(bare)])
    assert result.exit_code == 64
    assert "spec: is required" in result.output


def test_stylegan_cli_finds_render_and_crd() -> None:
    from stylegan_operator.cli.main import main

    example = REPO / "manifests" / "examples" / "cpu-lfw.yaml"
    result = CliRunner().invoke(main, ["render", "-f", str(example)])
    assert result.exit_code == 0, result.output
    assert result.output == (GOLDEN / "cpu-lfw.yaml").read_text()


# --------------------------------------------------------------------------- names
def test_short_names_are_kept_verbatim() -> None:
    assert job_name("faces", 1) == "faces-a1"
    assert job_name("faces", 12) == "faces-a12"
    assert service_name("faces") == "faces-workers"
    assert config_map_name("faces", 2) == "faces-a2-config"
    assert label_value("faces") == "faces"


@pytest.mark.parametrize("length", [40, 56, 57, 63, 100, 253])
def test_long_names_are_truncated_to_fit_63_with_hostnames(length: int) -> None:
    run = ("a" * (length - 1)) + "z"
    for attempt in (1, 9, 123):
        job = job_name(run, attempt)
        hostname = f"{job}-{MAX_NODES - 1}"  # the largest pod index
        assert len(hostname) <= 63 and DNS_LABEL.match(hostname), hostname
        assert job.endswith(f"-a{attempt}")
    svc = service_name(run)
    assert len(svc) <= 63 and DNS_1035.match(svc)
    assert len(label_value(run)) <= 63
    assert len(f"{job_name(run, 1)}-0.{svc}") <= 253


def test_truncated_names_stay_distinct_and_deterministic() -> None:
    a, b = "x" * 80 + "-one", "x" * 80 + "-two"
    assert job_name(a, 1) != job_name(b, 1)
    assert service_name(a) != service_name(b)
    assert label_value(a) != label_value(b)
    assert job_name(a, 1) == job_name(a, 1)


def test_dotted_and_digit_names_become_valid_labels() -> None:
    # "a.b" and "a-b" would collide if the dot were just replaced: the hash keeps them apart.
    assert job_name("faces.v2", 1) != job_name("faces-v2", 1)
    assert DNS_LABEL.match(job_name("faces.v2", 1))
    svc = service_name("2024-faces")
    assert DNS_1035.match(svc), svc


def test_long_run_renders_valid_names_everywhere() -> None:
    run = "celeba-hq.1024." + "x" * 200
    objects = render_run(
        {"kind": "StyleGANRun", "metadata": {"name": run, "uid": "u"}, "spec": BASE_SPEC}
    )
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
    job = objects[2]
    assert job["metadata"]["annotations"]["stylegan.dev/run-name"] == run


# --------------------------------------------------------------------------- service
def test_service_is_headless_and_selects_the_trainer_pods() -> None:
    spec = spec_with()
    svc = build_service(META, spec)
    job = build_job(META, spec, 1)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["ports"][0]["port"] == C10D_PORT
    assert svc["metadata"]["name"] == pod_spec(job)["subdomain"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    # Shared by every attempt: it selects on the run, not on the attempt.
    assert "stylegan.dev/attempt" not in svc["spec"]["selector"]


# --------------------------------------------------------------------------- job
def test_indexed_job_shape() -> None:
    spec = spec_with()
    job = build_job(META, spec, 2)
    s = job["spec"]
    assert job["metadata"]["name"] == "faces-a2"
    assert job["metadata"]["namespace"] == "ml"
    assert s["completionMode"] == "Indexed"
    assert s["completions"] == s["parallelism"] == 2
    assert s["backoffLimit"] == 0
    assert s["podReplacementPolicy"] == "Failed"
    assert "ttlSecondsAfterFinished" not in s  # the operator applies it to the run
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["metadata"]["annotations"]["stylegan.dev/generation"] == "3"


def test_pod_failure_policy_fails_on_exit_64_and_ignores_disruption() -> None:
    rules = build_job(META, spec_with(), 1)["spec"]["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob"]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert fail == [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [64]},
        }
    ]
    assert ignore == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
    # Exit 75 (retryable) matches no rule, so it counts and fails the Job for a group restart.
    assert not any(75 in r.get("onExitCodes", {}).get("values", []) for r in rules)


def test_torchrun_flags() -> None:
    spec = spec_with({"resources": {"nodes": 4, "gpusPerNode": 8}, "training": {"batchSize": 64}})
    job = build_job(META, spec, 3)
    container = trainer(job)
    args = container["args"]
    assert container["command"] == ["stylegan", "torchrun"]  # keeps the workers' 64 and 75
    assert flag(args, "--nnodes") == "4"
    assert flag(args, "--nproc-per-node") == "8"
    assert flag(args, "--node-rank") == "$(JOB_COMPLETION_INDEX)"
    assert flag(args, "--rdzv-backend") == "c10d"
    assert flag(args, "--rdzv-endpoint") == f"faces-a3-0.faces-workers:{C10D_PORT}"
    assert flag(args, "--rdzv-id") == f"{META['uid']}-a3"
    assert flag(args, "--max-restarts") == "0"
    assert args[-4:] == ["stylegan", "train", "--config", CONFIG_PATH]
    # The Job controller sets JOB_COMPLETION_INDEX; defining it too would shadow it.
    assert "JOB_COMPLETION_INDEX" not in {e["name"] for e in container["env"]}


def test_elastic_attempt_uses_the_node_count_it_is_given() -> None:
    spec = spec_with({"resources": {"nodes": None, "minNodes": 1, "maxNodes": 4}})
    assert build_job(META, spec, 1)["spec"]["parallelism"] == 4
    job = build_job(META, spec, 2, nodes=2)
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert flag(trainer(job)["args"], "--nnodes") == "2"
    with pytest.raises(ValueError, match=r"nodes=3 .*\[4, 2, 1\]"):
        build_job(META, spec, 2, nodes=3)  # 32 images over 12 GPUs do not split evenly


def test_env_names_the_pod_node_and_run() -> None:
    spec = spec_with(
        {
            "resources": {
                "env": [
                    {"name": "HOME", "value": "/scratch"},
                    {"name": "STORAGE_EMULATOR_HOST", "value": "h:1"},
                ]
            }
        }
    )
    env = {e["name"]: e for e in trainer(build_job(META, spec, 1))["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["STYLEGAN_RUN_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.namespace"
    )
    assert env["STYLEGAN_RUN_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['stylegan.dev/run-name']"
    )
    assert env["STYLEGAN_RUN"]["value"] == "faces"
    assert env["STYLEGAN_ATTEMPT"]["value"] == "1"
    assert env["HOME"]["value"] == "/scratch"  # the spec's entry replaces the default
    assert env["STORAGE_EMULATOR_HOST"]["value"] == "h:1"
    names = [e["name"] for e in trainer(build_job(META, spec, 1))["env"]]
    assert len(names) == len(set(names))


def test_gpu_run_requests_gpus_selects_the_type_and_tolerates_the_taint() -> None:
    spec = spec_with(
        {
            "resources": {
                "nodeSelector": {"pool": "training"},
                "tolerations": [{"key": "spot", "operator": "Exists"}],
            }
        }
    )
    job = build_job(META, spec, 1)
    resources = trainer(job)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 4
    assert resources["requests"]["nvidia.com/gpu"] == 4
    pod = pod_spec(job)
    assert pod["nodeSelector"] == {"pool": "training"}  # the type is the affinity's
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert terms[0]["matchExpressions"] == [
        {"key": GPU_TYPE_LABEL, "operator": "In", "values": ["nvidia-tesla-v100"]}]
    assert pod["tolerations"][0] == {
        "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert pod["tolerations"][-1] == {"key": "spot", "operator": "Exists"}


def test_cpu_run_has_no_gpu_limits_selector_or_toleration() -> None:
    spec = spec_with({"resources": {"gpuType": "cpu"}, "training": {"mixedPrecision": "none"}})
    job = build_job(META, spec, 1)
    resources = trainer(job)["resources"]
    assert "nvidia.com/gpu" not in resources.get("limits", {})
    assert "nvidia.com/gpu" not in resources.get("requests", {})
    pod = pod_spec(job)
    assert GPU_TYPE_LABEL not in pod.get("nodeSelector", {}) and "affinity" not in pod
    assert not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
    options = yaml.safe_load(build_config_map(META, spec, 1)["data"]["train.yaml"])
    assert options["device"] == "cpu"


def test_queue_name_creates_the_job_suspended_with_the_kueue_label() -> None:
    queued = build_job(META, spec_with({"queueName": "team-a"}), 1)
    assert queued["spec"]["suspend"] is True
    assert queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    plain = build_job(META, spec_with(), 1)
    assert plain["spec"]["suspend"] is False
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]


def test_suspended_spec_renders_a_suspended_job() -> None:
    assert build_job(META, spec_with({"suspend": True}), 1)["spec"]["suspend"] is True


def test_deadline_is_the_runs_unless_the_operator_passes_what_is_left() -> None:
    spec = spec_with({"runPolicy": {"activeDeadlineSeconds": 86400}})
    assert build_job(META, spec, 1)["spec"]["activeDeadlineSeconds"] == 86400
    job = build_job(META, spec, 2, active_deadline_seconds=3600)
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert "activeDeadlineSeconds" not in build_job(META, spec_with(), 1)["spec"]


def test_labels_and_owner_reference_on_every_object() -> None:
    spec = spec_with()
    objects = [build_service(META, spec), build_config_map(META, spec, 2), build_job(META, spec, 2)]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "stylegan-trainer"
        assert labels["app.kubernetes.io/instance"] == "faces"
        assert labels["app.kubernetes.io/component"] == "trainer"
        assert labels["app.kubernetes.io/managed-by"] == "stylegan-operator"
        assert labels["app.kubernetes.io/part-of"] == "stylegan-operator"
        assert labels["stylegan.dev/run"] == "faces"
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "stylegan.dev/v1alpha1",
                "kind": "StyleGANRun",
                "name": "faces",
                "uid": META["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    job = objects[2]
    assert job["metadata"]["labels"]["stylegan.dev/attempt"] == "2"
    assert job["spec"]["template"]["metadata"]["labels"]["stylegan.dev/attempt"] == "2"


def test_rendering_is_deterministic() -> None:
    spec = spec_with()
    assert build_job(META, spec, 1) == build_job(META, spec, 1)
    assert to_yaml_stream(render_run({"metadata": {"name": "x"}, "spec": BASE_SPEC})) == (
        to_yaml_stream(render_run({"metadata": {"name": "x"}, "spec": BASE_SPEC}))
    )


def test_bad_arguments_name_what_is_wrong() -> None:
    spec = spec_with()
    with pytest.raises(ValueError, match="attempt must be an integer >= 1"):
        build_job(META, spec, 0)
    with pytest.raises(ValueError, match="metadata.uid"):
        build_job({"name": "x", "namespace": "y"}, spec, 1)


def test_image_from_spec_then_operator_default() -> None:
    assert trainer(build_job(META, spec_with(), 1))["image"] == DEFAULT_TRAINER_IMAGE
    assert trainer(build_job(META, spec_with(), 1, image="reg/t:1"))["image"] == "reg/t:1"
    spec = spec_with({"resources": {"image": "reg/mine:2", "imagePullPolicy": "Always"}})
    container = trainer(build_job(META, spec, 1, image="reg/t:1"))
    assert container["image"] == "reg/mine:2"
    assert container["imagePullPolicy"] == "Always"


def test_service_account_token_only_when_the_operator_hands_one_out() -> None:
    plain = pod_spec(build_job(META, spec_with(), 1))
    assert plain["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in plain
    own = pod_spec(build_job(META, spec_with({"resources": {"serviceAccountName": "gcs"}}), 1))
    assert own["serviceAccountName"] == "gcs" and own["automountServiceAccountToken"] is False
    reporting = pod_spec(build_job(META, spec_with(), 1, service_account_name="faces-trainer"))
    assert reporting["serviceAccountName"] == "faces-trainer"
    assert reporting["automountServiceAccountToken"] is True


# --------------------------------------------------------------------------- pod security
BASELINE_CAPS = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The checks of the Pod Security Standards' ``restricted`` level (v1.25+), for one pod."""
    out: list[str] = []
    psc = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(key)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(f"volume {volume['name']}: {kinds}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile {seccomp}")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds {caps['add']}")
        if set(caps.get("add", [])) - BASELINE_CAPS:
            out.append(f"{name}: adds non-baseline capabilities")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
    return out


def test_the_checker_catches_violations() -> None:
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    found = restricted_violations(bad)
    assert len(found) >= 6


@pytest.mark.parametrize(
    "patch",
    [
        {},
        {"resources": {"gpuType": "cpu"}, "training": {"mixedPrecision": "none"}},
        {
            "dataset": {"uri": "/datasets/x.zip", "claimName": "d"},
            "checkpoints": {"uri": "/checkpoints/r", "claimName": "c"},
        },
    ],
    ids=["nvidia", "cpu", "claims"],
)
def test_pods_pass_the_restricted_pod_security_level(patch: dict[str, Any]) -> None:
    job = build_job(META, spec_with(patch), 1)
    assert restricted_violations(pod_spec(job)) == []
    sc = trainer(job)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_writable_scratch_shm_and_config_mounts() -> None:
    spec = spec_with({"resources": {"shmSize": "8Gi"}})
    job = build_job(META, spec, 1)
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    mounts = {m["mountPath"]: m for m in trainer(job)["volumeMounts"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert mounts["/dev/shm"]["name"] == "dshm"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts["/cache"]["name"]]
    assert volumes["config"]["configMap"]["name"] == config_map_name("faces", 1)
    assert mounts["/etc/stylegan"]["readOnly"] is True


def test_claims_are_mounted_where_the_uris_point() -> None:
    spec = spec_with(
        {
            "dataset": {"uri": "/datasets/ffhq.zip", "claimName": "ffhq"},
            "checkpoints": {"uri": "/checkpoints/run", "claimName": "ckpt"},
        }
    )
    job = build_job(META, spec, 1)
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    mounts = {m["mountPath"]: m for m in trainer(job)["volumeMounts"]}
    assert volumes[mounts["/datasets"]["name"]]["persistentVolumeClaim"] == {
        "claimName": "ffhq",
        "readOnly": True,
    }
    assert mounts["/datasets"]["readOnly"] is True
    assert volumes[mounts["/checkpoints"]["name"]]["persistentVolumeClaim"] == {"claimName": "ckpt"}
    assert not mounts["/checkpoints"].get("readOnly")


# --------------------------------------------------------------------------- config
def test_config_map_holds_the_trainer_options() -> None:
    spec = spec_with(
        {
            "model": {"augment": "fixed", "augmentP": 0.25, "r1Gamma": 10, "channelBase": 16384},
            "training": {"mixedPrecision": "bf16"},
            "checkpoints": {"intervalKimg": 20},
        }
    )
    cm = build_config_map(META, spec, 2)
    assert cm["metadata"]["name"] == "faces-a2-config"
    assert cm["immutable"] is True
    options = yaml.safe_load(cm["data"]["train.yaml"])
    assert options == {
        "dataset": "gs://datasets/ffhq256.zip",
        "xflip": True,
        "preset": "paper256",
        "resolution": 256,
        "augment": "fixed:0.25",
        "kimg": 1000,
        "batch": 32,
        "snapshot_kimg": 20,  # checkpoints every 20 kimg beat samples every 50
        "mixed_precision": "bf16",
        "seed": 0,
        "device": "cuda",
        "outdir": SCRATCH_OUTDIR,  # gs:// checkpoints: grids are also copied to <uri>/samples/
        "resume": "latest",
        "progress_bar": "off",
        "metrics_port": METRICS_PORT,
        "checkpoint_uri": "gs://checkpoints/run",
        "keep_checkpoints": 3,
        "overrides": {"channel_base": 16384, "r1_gamma": 10.0},
    }


def test_the_trainer_serves_metrics_on_the_port_the_pod_monitor_scrapes() -> None:
    spec = spec_with()
    ports = {p["name"]: p for p in trainer(build_job(META, spec, 1))["ports"]}
    assert ports["metrics"] == {"name": "metrics", "containerPort": 9400, "protocol": "TCP"}
    options = yaml.safe_load(build_config_map(META, spec, 1)["data"]["train.yaml"])
    assert options["metrics_port"] == ports["metrics"]["containerPort"]
    pod_monitor = REPO / "charts" / "stylegan-operator" / "templates" / "monitoring"
    assert "- port: metrics\n" in (pod_monitor / "podmonitor.yaml").read_text()


def test_config_without_checkpoints_uses_scratch_and_latest() -> None:
    options = yaml.safe_load(
        build_config_map(META, spec_with({"checkpoints": None}), 1)["data"]["train.yaml"]
    )
    assert options["outdir"] == SCRATCH_OUTDIR
    assert options["resume"] == "latest"
    assert "checkpoint_uri" not in options and "overrides" not in options


def test_checkpoints_on_a_claim_keep_samples_beside_them() -> None:
    spec = spec_with({"checkpoints": {"uri": "/checkpoints/faces", "claimName": "ckpt"}})
    options = trainer_options(spec)
    assert options["outdir"] == options["checkpoint_uri"] == "/checkpoints/faces"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_trainer_accepts_the_rendered_options(example: Path, tmp_path: Path) -> None:
    """The contract with ``stylegan train --config``: every key known, every value valid."""
    from stylegan_trainer.cli.train_commands import build_options

    _, config_map, *_ = render_run(yaml.safe_load(example.read_text()))
    path = tmp_path / "train.yaml"
    path.write_text(config_map["data"]["train.yaml"])
    options = build_options(str(path), {})
    assert options.dataset == yaml.safe_load(example.read_text())["spec"]["dataset"]["uri"]


def test_resume_from_is_only_the_trainers_fallback_to_latest() -> None:
    spec = spec_with({"checkpoints": {"resumeFrom": "gs://pretrained/ffhq.pt"}})
    options = yaml.safe_load(build_config_map(META, spec, 3)["data"]["train.yaml"])
    assert options["resume"] == "latest"
    assert options["resume_fallback"] == "gs://pretrained/ffhq.pt"
    assert options["checkpoint_uri"] == "gs://checkpoints/run"
    assert "resume_fallback" not in trainer_options(spec_with())


def test_init_from_reaches_the_trainer_only_when_set(tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import build_options

    assert "init_from" not in trainer_options(spec_with())
    spec = spec_with({"initFrom": "gs://pretrained/ffhq-res256-mirror-paper256-noaug.pkl"})
    path = tmp_path / "train.yaml"
    path.write_text(build_config_map(META, spec, 1)["data"]["train.yaml"])
    options = build_options(str(path), {})  # the trainer accepts what the operator wrote
    assert options.init_from == "gs://pretrained/ffhq-res256-mirror-paper256-noaug.pkl"
    assert options.resume == "latest" and options.resume_fallback is None


def test_the_resume_annotation_names_what_the_operator_knew() -> None:
    spec = spec_with({"checkpoints": {"resumeFrom": "gs://pretrained/ffhq.pt"}})
    assert resume_uri_for(spec, None) == "gs://pretrained/ffhq.pt"
    assert resume_uri_for(spec, "gs://checkpoints/run/c2.pt") == "gs://checkpoints/run/c2.pt"
    assert resume_uri_for(spec_with({"checkpoints": None}), None) is None


def test_batch_per_gpu_reaches_the_trainer_only_when_set(tmp_path: Path) -> None:
    from stylegan_trainer.cli.train_commands import build_options

    assert "batch_per_gpu" not in trainer_options(spec_with())
    cm = build_config_map(META, spec_with({"training": {"batchPerGPU": 2}}), 1)
    path = tmp_path / "train.yaml"
    path.write_text(cm["data"]["train.yaml"])
    assert build_options(str(path), {}).batch_per_gpu == 2
