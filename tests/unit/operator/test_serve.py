"""``spec.serve``: the server's Deployment and Service as rendered, and when the operator runs them.

The rendering half checks the pure ``build_serve_*`` functions (the command line of
``stylegan serve``, probes, ports, owner, security, GPU scheduling, names at the longest run
names); the decision half plays reconciles in the in-memory world of ``test_lifecycle``,
extended with the server's two objects and server-side applies.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from tests.unit.operator.invalid_specs import BASE_SPEC, apply_patch
from tests.unit.operator.test_lifecycle import T0, UID, World, make_run, running_world

from stylegan_operator.api.names import GPU_RESOURCE
from stylegan_operator.api.validation import validate_spec
from stylegan_operator.reconcile import render
from stylegan_operator.reconcile.conditions import SERVING, SUCCEEDED, condition
from stylegan_operator.reconcile.decide import decide
from stylegan_operator.reconcile.observe import LifecycleConfig, Observed
from stylegan_operator.reconcile.plan import Plan
from stylegan_operator.reconcile.pods import gpu_node_affinity, pod_template
from stylegan_operator.reconcile.serve_render import (
    ANNOTATION_SERVE_DIGEST,
    SERVE_PORT,
    build_serve_deployment,
    build_serve_service,
    serve_args,
    serve_name,
    serve_url,
)

META = {"name": "faces", "namespace": "ml", "uid": "0d9a6c1e-1111-2222-3333-444455556666"}
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CHECKPOINT = {"uri": "gs://ckpt/faces/ckpt-000100.pt", "kimg": 100.0,
              "time": "2026-05-01T12:00:00Z"}


def spec_with(serve: dict[str, Any] | None = None, **patch: Any) -> Any:
    return validate_spec(apply_patch(BASE_SPEC, {"serve": {"enabled": True, **(serve or {})},
                                                 **patch}))


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "server"
    return container


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


# --------------------------------------------------------------------------- rendering
def test_the_server_runs_stylegan_serve_on_the_runs_checkpoints_with_the_spec_settings() -> None:
    spec = spec_with({"truncationPsi": 0.5, "maxBatch": 32, "batchWaitMs": 7,
                      "reloadSeconds": 90})
    container = server(build_serve_deployment(META, spec))
    assert container["command"] == ["stylegan", "serve"]
    args = container["args"]
    assert flag(args, "--checkpoint") == "gs://checkpoints/run"  # spec.checkpoints.uri
    assert flag(args, "--host") == "0.0.0.0" and flag(args, "--port") == str(SERVE_PORT)
    assert flag(args, "--device") == "cpu"
    assert flag(args, "--psi") == "0.5"
    assert flag(args, "--max-batch") == "32"
    assert flag(args, "--batch-wait-ms") == "7"
    assert flag(args, "--reload-seconds") == "90"
    # Defaults: psi 0.7, reload every 30 s.
    defaults = serve_args(spec_with())
    assert flag(defaults, "--psi") == "0.7" and flag(defaults, "--reload-seconds") == "30"


def test_probes_and_the_named_port() -> None:
    container = server(build_serve_deployment(META, spec_with()))
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_the_deployment_is_owned_by_the_run_and_rolls_without_dropping_serving() -> None:
    deployment = build_serve_deployment(META, spec_with({"replicas": 3}))
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    meta = deployment["metadata"]
    assert meta["name"] == "faces-faces" and meta["namespace"] == "ml"
    assert meta["ownerReferences"] == [render.owner_reference(META)]
    assert meta["labels"][render.LABEL_RUN] == "faces"
    assert meta["labels"]["app.kubernetes.io/component"] == "server"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    # The headless rendezvous Service must not pick up server pods, nor the server trainers.
    trainer_labels = pod_template(META, spec_with(), 1, 2)["metadata"]["labels"]
    assert not render.pod_selector("faces").items() <= pod_labels.items()
    assert not spec["selector"]["matchLabels"].items() <= trainer_labels.items()
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"


def test_the_server_pod_is_restricted_and_reads_storage_like_the_trainer() -> None:
    spec = spec_with(resources={
        "serviceAccountName": "gcs-reader", "image": "registry.example/trainer:1",
        "imagePullPolicy": "Always",
        "env": [{"name": "STORAGE_EMULATOR_HOST", "value": "http://gcs:4443"},
                {"name": "HOME", "value": "/home/x"}]})
    deployment = build_serve_deployment(META, spec, image="ignored/when:spec-names-one")
    pod = deployment["spec"]["template"]["spec"]
    trainer_pod = pod_template(META, spec, 1, 2)["spec"]
    assert pod["securityContext"] == trainer_pod["securityContext"]
    container = server(deployment)
    assert container["securityContext"] == trainer_pod["containers"][0]["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["serviceAccountName"] == "gcs-reader"
    assert pod["automountServiceAccountToken"] is False  # storage only, never the API
    assert container["image"] == "registry.example/trainer:1"
    assert container["imagePullPolicy"] == "Always"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_EMULATOR_HOST"] == "http://gcs:4443"
    assert env["HOME"] == "/home/x"  # the spec's entry replaces the operator's
    assert [e["name"] for e in container["env"]].count("HOME") == 1
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/cache"} <= mounts


def test_the_operators_image_is_used_when_the_spec_names_none() -> None:
    deployment = build_serve_deployment(META, spec_with(), image="registry.example/t:2")
    assert server(deployment)["image"] == "registry.example/t:2"
    assert server(build_serve_deployment(META, spec_with()))["image"] == (
        render.DEFAULT_TRAINER_IMAGE)


def test_a_checkpoint_claim_is_mounted_read_only() -> None:
    spec = spec_with(checkpoints={"uri": "/checkpoints/faces", "claimName": "ckpt"})
    deployment = build_serve_deployment(META, spec)
    assert flag(server(deployment)["args"], "--checkpoint") == "/checkpoints/faces"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "ckpt",
                                                               "readOnly": True}
    mount = next(m for m in server(deployment)["volumeMounts"] if m["name"] == "checkpoints")
    assert mount == {"name": "checkpoints", "mountPath": "/checkpoints", "readOnly": True}


def test_a_gpu_server_asks_for_one_gpu_and_is_scheduled_like_the_trainers() -> None:
    spec = spec_with({"device": "gpu", "resources": {"requests": {"cpu": "2"},
                                                     "limits": {"memory": "8Gi"}}},
                     resources={"nodeSelector": {"pool": "train"},
                                "tolerations": [{"key": "spot", "operator": "Exists"}]})
    deployment = build_serve_deployment(META, spec, gpu_type_label="example.com/gpu")
    container = server(deployment)
    assert container["resources"] == {"requests": {"cpu": "2", GPU_RESOURCE: 1},
                                      "limits": {"memory": "8Gi", GPU_RESOURCE: 1}}
    assert flag(container["args"], "--device") == "cuda"
    pod = deployment["spec"]["template"]["spec"]
    trainer = pod_template(META, spec, 1, 2, gpu_type_label="example.com/gpu")["spec"]
    assert pod["affinity"] == trainer["affinity"] == gpu_node_affinity(
        "nvidia-tesla-v100", "example.com/gpu")
    assert pod["nodeSelector"] == {"pool": "train"}
    assert pod["tolerations"] == trainer["tolerations"]
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"]


def test_a_cpu_server_asks_for_no_gpu_and_avoids_the_gpu_pool() -> None:
    spec = spec_with({"resources": {"requests": {"cpu": "1"}}},
                     resources={"nodeSelector": {"pool": "train"},
                                "tolerations": [{"key": "spot", "operator": "Exists"}]})
    deployment = build_serve_deployment(META, spec)
    assert server(deployment)["resources"] == {"requests": {"cpu": "1"}}
    pod = deployment["spec"]["template"]["spec"]
    assert "affinity" not in pod and "nodeSelector" not in pod
    assert all(t["key"] not in (GPU_RESOURCE, "spot") for t in pod["tolerations"])


def test_the_service_sends_port_80_to_the_servers_http_port() -> None:
    service = build_serve_service(META)
    assert service["metadata"]["name"] == "faces-faces"
    assert service["metadata"]["ownerReferences"] == [render.owner_reference(META)]
    spec = service["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                              "protocol": "TCP"}]
    pod_labels = build_serve_deployment(META, spec_with())["spec"]["template"]["metadata"][
        "labels"]
    assert spec["selector"].items() <= pod_labels.items()
    assert serve_url("faces", "ml") == "http://faces-faces.ml.svc"


@pytest.mark.parametrize("length", [57, 58, 63, 100, 253])
def test_names_fit_at_the_longest_run_names(length: int) -> None:
    run = "9" + "a.b-" * (length // 4) + "z" * (length % 4 - 1 if length % 4 else 0)
    run = run[:length]
    other = run[:-1] + ("q" if run[-1] != "q" else "r")
    name = serve_name(run)
    assert len(name) <= 63 and DNS_1035.match(name), name
    assert name.endswith("-faces")
    assert serve_name(other) != name
    meta = {**META, "name": run}
    for obj in (build_serve_deployment(meta, spec_with()), build_serve_service(meta)):
        assert obj["metadata"]["name"] == name
        assert all(len(v) <= 63 for v in obj["metadata"]["labels"].values())


def test_the_digest_moves_with_what_the_pods_get_and_only_then() -> None:
    def digest(spec: Any, **kw: Any) -> str:
        return build_serve_deployment(META, spec, **kw)["metadata"]["annotations"][
            ANNOTATION_SERVE_DIGEST]

    base = digest(spec_with())
    assert digest(spec_with()) == base
    assert digest(spec_with({"truncationPsi": 0.9})) != base
    assert digest(spec_with({"replicas": 2})) != base
    assert digest(spec_with(), image="other/image:1") != base


# --------------------------------------------------------------------------- decisions
class ServeWorld(World):
    """The lifecycle world with the server's Deployment and Service, applied server-side."""

    def __init__(self, run: dict[str, Any], config: LifecycleConfig | None = None) -> None:
        super().__init__(run, config)
        self.serving: dict[str, dict[str, Any]] = {}  # kind -> object

    def observed(self) -> Observed:
        service = self.others.get(("Service", render.service_name(self.run["metadata"]["name"])))
        accounts = [o for (kind, _), o in self.others.items()
                    if kind in ("ServiceAccount", "Role", "RoleBinding")]
        return Observed.from_api(self.run, self.jobs.values(), self.pods,
                                 self.config_maps.values(), service, accounts,
                                 self.serving.get("Deployment"), self.serving.get("Service"))

    def step(self, now: datetime) -> Plan:
        plan = decide(self.run, self.observed(), now, self.config)
        self.plans.append(plan)
        for obj in plan.applies:  # server-side apply: the object as sent, its status kept
            kept = self.serving.get(obj["kind"], {})
            self.serving[obj["kind"]] = {**copy.deepcopy(obj), "status": kept.get("status", {})}
        for kind, name in plan.deletes:
            if kind in self.serving:
                assert self.serving[kind]["metadata"]["name"] == name
                del self.serving[kind]
        _apply_rest(self, plan)
        return plan

    def ready(self, count: int) -> None:
        self.serving["Deployment"]["status"] = {"readyReplicas": count}


def _apply_rest(world: World, plan: Plan) -> None:
    """Creates, Job deletions and the status, as ``test_lifecycle.World.step`` applies them."""
    for obj in plan.creates:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Job" and name not in world.jobs:
            world.jobs[name] = {**copy.deepcopy(obj), "status": {}}
            world.jobs[name]["metadata"]["uid"] = f"job-uid-{name}"
        elif obj["kind"] == "ConfigMap":
            world.config_maps.setdefault(name, copy.deepcopy(obj))
        elif obj["kind"] != "Job":
            world.others.setdefault((obj["kind"], name), copy.deepcopy(obj))
    for kind, name in plan.deletes:
        if kind == "Job":
            world.jobs.pop(name, None)
    for key, value in plan.status.items():
        if value is None:
            world.run["status"].pop(key, None)
        else:
            world.run["status"][key] = copy.deepcopy(value)


def serve_world(serve: dict[str, Any] | None = None, checkpoint: bool = True) -> ServeWorld:
    """A running run with ``spec.serve`` (enabled unless ``serve`` says otherwise)."""
    base = running_world()
    world = ServeWorld(make_run({"serve": {"enabled": True, **(serve or {})}}))
    world.jobs, world.pods, world.config_maps, world.others = (
        base.jobs, base.pods, base.config_maps, base.others)
    world.run["status"] = copy.deepcopy(base.status)
    if checkpoint:
        world.run["status"]["progress"] = {"kimg": 100.0, "lastCheckpoint": CHECKPOINT}
    return world


def serving_condition(world: World) -> dict[str, Any] | None:
    return condition(world.status, SERVING)  # type: ignore[return-value]


LATER = T0 + timedelta(minutes=10)


def test_the_server_waits_for_the_first_checkpoint_then_starts() -> None:
    world = serve_world(checkpoint=False)
    plan = world.step(LATER)
    assert plan.applies == [] and world.serving == {}
    cond = serving_condition(world)
    assert cond is not None and cond["status"] == "False"
    assert cond["reason"] == "WaitingForCheckpoint" and "gs://ckpt/faces" in cond["message"]
    assert "serve" not in world.status

    world.run["status"]["progress"] = {"kimg": 100.0, "lastCheckpoint": CHECKPOINT}
    plan = world.step(LATER + timedelta(seconds=20))
    assert [o["kind"] for o in plan.applies] == ["Service", "Deployment"]
    assert world.status["serve"] == {"url": "http://faces-faces.ml.svc", "replicas": 1,
                                     "readyReplicas": 0}
    cond = serving_condition(world)
    assert cond["status"] == "False" and cond["reason"] == "ServerStarting"
    # The trainer goes on untouched.
    assert plan.creates == [] and world.status["phase"] == "Running"


def test_serving_is_true_once_a_pod_is_ready_and_says_so_once() -> None:
    world = serve_world()
    world.step(LATER)
    world.ready(1)
    plan = world.step(LATER + timedelta(seconds=5))
    cond = serving_condition(world)
    assert cond["status"] == "True" and cond["reason"] == "ServerReady"
    assert "1/1 server pods ready at http://faces-faces.ml.svc" in cond["message"]
    assert [e.reason for e in plan.events] == ["Serving"]
    assert "kubectl port-forward svc/faces-faces 8080:80" in plan.events[0].message
    assert world.status["serve"]["readyReplicas"] == 1
    again = world.step(LATER + timedelta(seconds=10))
    assert again.events == [] and again.applies == []  # nothing changed, nothing sent


def test_a_spec_change_reapplies_the_deployment_only_and_is_not_pending() -> None:
    world = serve_world()
    world.step(LATER)
    world.run["spec"]["serve"]["truncationPsi"] = 0.5
    world.run["metadata"]["generation"] = 2
    plan = world.step(LATER + timedelta(seconds=5))
    assert [o["kind"] for o in plan.applies] == ["Deployment"]
    assert "0.5" in server(plan.applies[0])["args"]
    pending = condition(world.status, "SpecChangePending")
    assert pending is None or pending["status"] == "False"


def test_a_deleted_deployment_is_made_again_with_an_event() -> None:
    world = serve_world()
    world.step(LATER)
    del world.serving["Deployment"]
    plan = world.step(LATER + timedelta(seconds=5))
    assert [o["kind"] for o in plan.applies] == ["Deployment"]
    assert "Recreated" in [e.reason for e in plan.events]


def test_a_terminating_deployment_is_left_to_finish_first() -> None:
    world = serve_world()
    world.step(LATER)
    world.serving["Deployment"]["metadata"]["deletionTimestamp"] = "2026-05-01T12:10:01Z"
    assert world.step(LATER + timedelta(seconds=5)).applies == []


def test_disabling_deletes_both_objects_and_the_status() -> None:
    world = serve_world()
    world.step(LATER)
    world.run["spec"]["serve"]["enabled"] = False
    plan = world.step(LATER + timedelta(seconds=5))
    assert sorted(plan.deletes) == [("Deployment", "faces-faces"), ("Service", "faces-faces")]
    assert world.serving == {} and "serve" not in world.status
    cond = serving_condition(world)
    assert cond["status"] == "False" and cond["reason"] == "ServeDisabled"
    assert world.step(LATER + timedelta(seconds=10)).deletes == []


def test_a_run_that_never_served_gets_no_serving_condition() -> None:
    world = running_world()
    plan = world.step(LATER)
    assert plan.applies == [] and serving_condition(world) is None
    assert "serve" not in plan.status


def test_without_while_training_the_server_waits_for_success() -> None:
    world = serve_world({"whileTraining": False})
    assert world.step(LATER).applies == []
    assert serving_condition(world)["reason"] == "WaitingForSuccess"
    world.finish_pods(1, 0, LATER)
    world.set_job_condition(1, "Complete", completion=LATER)
    plan = world.step(LATER + timedelta(seconds=1))
    assert plan.phase == SUCCEEDED
    assert [o["kind"] for o in plan.applies] == ["Service", "Deployment"]
    # A finished run keeps its server, and repairs it.
    del world.serving["Service"]
    assert [o["kind"] for o in world.step(LATER + timedelta(hours=1)).applies] == ["Service"]


def test_zero_replicas_keep_the_objects_and_say_so() -> None:
    world = serve_world({"replicas": 0})
    plan = world.step(LATER)
    assert plan.applies[1]["spec"]["replicas"] == 0
    assert serving_condition(world)["reason"] == "ScaledToZero"


def test_the_operators_image_and_gpu_label_reach_the_server() -> None:
    world = serve_world({"device": "gpu"})
    world.config = LifecycleConfig(trainer_image="registry.example/t:3",
                                   gpu_type_label="example.com/gpu")
    deployment = world.step(LATER).applies[1]
    assert server(deployment)["image"] == "registry.example/t:3"
    terms = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert any(e["key"] == "example.com/gpu" for t in terms for e in t["matchExpressions"])


def test_server_pods_are_no_attempts_pods() -> None:
    run = make_run({"serve": {"enabled": True}})
    deployment = build_serve_deployment({**run["metadata"]}, validate_spec(run["spec"]))
    template = deployment["spec"]["template"]
    pod = {"metadata": {"name": "faces-faces-abc-x", "uid": "p1",
                        "labels": dict(template["metadata"]["labels"]),
                        "ownerReferences": [{"kind": "ReplicaSet", "uid": "rs",
                                             "controller": True}]},
           "spec": template["spec"], "status": {"phase": "Running"}}
    observed = Observed.from_api(run, pods=[pod], serving=deployment)
    assert observed.pods == [] and observed.serving is deployment
    foreign = {**deployment, "metadata": {**deployment["metadata"], "ownerReferences": [
        {**deployment["metadata"]["ownerReferences"][0], "uid": "another-run"}]}}
    assert Observed.from_api(run, serving=foreign).serving is None
    assert UID == run["metadata"]["uid"]
