"""Where the dashboards' data comes from: the real operator on the real control plane.

``metrics_source`` (one per module, since its start-up with a failed attempt takes a
while) runs ``stylegan operator`` as a subprocess against the session's cluster (etcd,
kube-apiserver, controller-manager, scheduler, KWOK nodes), authenticated with its own
ServiceAccount token (``operator_kubeconfig``), watching two restricted namespaces with
one StyleGANRun each.
Everything the operator exports is its own work: the KWOK pods' real lifetimes priced into
cost, burn rate and GPU-seconds; phases, budgets and the projection; one attempt that fails
after training past its checkpoint, so ``stylegan_run_restarts_total`` and the lost-work
cost are real, non-zero series.

The two runs: ``faces-256`` displays JPY (its money series come in USD and JPY) and has a
budget far above its projection; ``faces-1024`` is priced in USD with a budget it passes
within seconds, and ``budgetAction: Warn`` keeps it running, so the budget alerts must
fire for it and stay silent for the other. A query that forgets ``currency="$currency"``
or the namespace selection returns the wrong series. Prices are 1 USD per GPU-second
(``spec.cost.pricePerGpuHour`` 3600 USD, 392,400 JPY), so seconds of pod life are visible
money.

Progress is the trainer's own reporting code, run in this process for each run's rank 0:
``progress.Reporter`` with the ``status_report.StatusReporter`` hook that merge-patches
``status.progress`` with a token of the run's own ServiceAccount (the per-run Role is what
allows it), and the ``metrics_export.MetricsExporter`` tick hook, as the training loop
wires them. :meth:`OperatorOnCluster.advance` feeds them tick reports.

The one stand-in is where the trainer's exporter runs: the trainer pods are KWOK pods, in
which nothing runs, so each run's ``MetricsExporter`` serves ``/metrics`` from this process
on a local port, and Prometheus scrapes it with the ``namespace``/``run`` labels set on
the target, as the chart's PodMonitor relabelling sets them from the pod. (A restarted
attempt keeps the same endpoint here; on a cluster the new pod is a new target.)

Tests use :class:`OperatorOnCluster` (``runs``, ``scrape_configs()``, ``advance()``), the
plan's constants below (run names, the expected lost work) and the API server for the runs'
status.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from stylegan_operator.cost.pricing import DEFAULT_EXCHANGE_RATES
from stylegan_operator.reconcile.children import service_account_name
from stylegan_trainer.report.metrics_export import MetricsExporter
from stylegan_trainer.report.progress import Reporter, TickReport
from stylegan_trainer.report.status import StatusReporter, kubernetes_sender
from stylegan_trainer.train.checkpoint import checkpoint_name
from tests.integration.conftest import Runs, gpu_run, token_kubeconfig
from tests.support import Kubectl, OperatorProcess, restricted_namespace, wait_for

USD_PER_GPU_HOUR = 3600.0
"""1 USD per GPU-second: a few seconds of a KWOK pod's life are visible money."""
JPY_PER_USD = DEFAULT_EXCHANGE_RATES["JPY"]
GPUS = 8
TARGET_KIMG = 1000
SEC_PER_KIMG = 34.0
KIMG_PER_ADVANCE = 10.0


@dataclass(frozen=True)
class RunPlan:
    name: str
    currency: str
    budget: float
    """In ``currency``."""
    budget_action: str
    kimg: float
    """Where the run's training stands when the tests start."""

    def manifest(self, namespace: str) -> dict[str, Any]:
        rate = JPY_PER_USD if self.currency == "JPY" else 1.0
        return gpu_run(
            self.name, namespace,
            resources={"nodes": 1, "gpusPerNode": GPUS},
            training={"kimg": TARGET_KIMG, "batchSize": 64},
            checkpoints={"uri": f"gs://ckpt/{self.name}"},
            cost={"pricePerGpuHour": USD_PER_GPU_HOUR * rate, "currency": self.currency,
                  "budget": self.budget, "budgetAction": self.budget_action},
        )  # fmt: skip


JPY_RUN = "faces-256"
OVER_BUDGET_RUN = "faces-1024"
RESTARTED_RUN = JPY_RUN
CHECKPOINTED_KIMG = 10.0
KIMG_AT_FAILURE = 12.0
LOST_WORK_USD = (
    (KIMG_AT_FAILURE - CHECKPOINTED_KIMG) * SEC_PER_KIMG * GPUS * USD_PER_GPU_HOUR / 3600
)
"""The restarted run's lost work: 2 kimg x 34 s/kimg on 8 GPUs at 1 USD per GPU-second."""
RUNS = (
    # 1e9 JPY (9.2M USD) is far above its projection: (1000 kimg x 34 s) x 8 USD/s, 0.3M USD.
    # It trains on from the checkpoint its failed attempt left (OperatorOnCluster.restart).
    RunPlan(JPY_RUN, "JPY", budget=1e9, budget_action="Suspend", kimg=CHECKPOINTED_KIMG),
    # 100 USD is spent after 12.5 s of pod life; Warn lets it train on past the budget.
    # kimg 25 + 10 n never equals the other run's 10 + 10 m, so a wait on one run's kimg
    # cannot be met by the other's.
    RunPlan(OVER_BUDGET_RUN, "USD", budget=100.0, budget_action="Warn", kimg=25.0),
)


class TrainerRank0:
    """One run's rank 0 reporting, in this process, built from the trainer's own parts."""

    def __init__(self, namespace: str, run: str, kubeconfig: dict[str, Any],
                 outdir: Path) -> None:
        self.namespace = namespace
        self.run = run
        self.outdir = outdir
        self.api = kubernetes.config.new_client_from_config_dict(kubeconfig)
        self.exporter = MetricsExporter()
        self.exporter.serve(0, addr="127.0.0.1")
        self.status: StatusReporter | None = None
        self.reporter: Reporter | None = None
        self.ticks = 0

    @property
    def port(self) -> int:
        assert self.exporter.port is not None
        return self.exporter.port

    def start_attempt(self, attempt: int) -> None:
        """A new trainer process: a fresh reporter, as the loop builds it in each pod."""
        if self.status is not None:
            self.status.close()
        self.status = StatusReporter(
            kubernetes_sender(self.namespace, self.run, self.api),
            f"gs://ckpt/{self.run}", attempt,
            description=f"styleganruns/{self.run}/status in {self.namespace}",
        )
        self.reporter = Reporter(
            self.outdir / f"a{attempt}", TARGET_KIMG, progress_bar="off", hooks=[self.status],
            out=io.StringIO(), tick_hooks=[self.exporter],
        )  # fmt: skip

    def tick(self, kimg: float) -> None:
        """One tick's report at ``kimg``: the gauges move and the status gets the progress."""
        reporter = self.reporter
        assert reporter is not None
        self.ticks += 1
        report = TickReport(
            tick=self.ticks, kimg=kimg, total_kimg=TARGET_KIMG, time_s=60.0 * self.ticks,
            sec_per_tick=KIMG_PER_ADVANCE * SEC_PER_KIMG, sec_per_kimg=SEC_PER_KIMG,
            maintenance_s=0.2, cpumem_gb=3.1, gpumem_gb=9.5, augment_p=0.12,
            stats={"Loss/G/loss": 2.1 + kimg * 1e-4, "Loss/D/loss": 0.6,
                   "Loss/r1_penalty": 0.05, "Loss/pl_penalty": 0.3},
        )  # fmt: skip
        self._deliver(lambda: reporter.tick(report), f"kimg {kimg}")

    def checkpoint(self, kimg: float) -> None:
        """A checkpoint written at ``kimg``, under the trainer's own object name."""
        reporter = self.reporter
        assert reporter is not None
        name = checkpoint_name(round(kimg * 1000))
        self._deliver(lambda: reporter.checkpoint(name), name)

    def _deliver(self, report: Callable[[], None], what: str) -> None:
        """Report, and wait until the patch reached the API server. A rejected patch (the
        run's Role bound a moment after its pods started) is what the trainer retries with
        its next report; here the same record goes again at once."""
        assert self.status is not None and self.reporter is not None
        status, reporter = self.status, self.reporter
        before = status.sent
        report()

        def sent() -> bool:
            status.flush()
            if status.sent > before:
                return True
            reporter.update()
            return False

        wait_for(sent, timeout=30, interval=0.5,
                 what=f"the progress report ({what}) of {self.namespace}/{self.run} accepted")

    def close(self) -> None:
        if self.status is not None:
            self.status.close()
        self.exporter.close()
        self.api.close()


@dataclass
class OperatorOnCluster:
    """The operator serving two namespaces, their runs, and each run's rank-0 reporting."""

    kubectl: Kubectl
    operator_kubeconfig: Path
    workdir: Path
    runs: list[tuple[str, str]] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)
    """Run name -> its namespace."""
    trainers: dict[str, TrainerRank0] = field(default_factory=dict)
    kimg: dict[str, float] = field(default_factory=dict)
    operator: OperatorProcess | None = None

    def start(self) -> None:
        for plan in RUNS:
            self.namespaces[plan.name] = restricted_namespace(self.kubectl)
            self.runs.append((self.namespaces[plan.name], plan.name))
        first, *others = (self.namespaces[plan.name] for plan in RUNS)
        self.operator = OperatorProcess(
            self.operator_kubeconfig, first, self.workdir / "operator.log",
            extra_args=[arg for namespace in others for arg in ("--namespace", namespace)],
        )
        self.operator.start()
        for plan in RUNS:
            self.runs_in(plan.name).apply(plan.manifest(self.namespaces[plan.name]))
        for plan in RUNS:
            runs = self.runs_in(plan.name)
            runs.running_pods(plan.name, 1, 1)
            runs.wait_phase(plan.name, "Running")
            self.trainers[plan.name] = self._trainer(plan.name)
            self.trainers[plan.name].start_attempt(1)
        self.restart(RESTARTED_RUN)
        for plan in RUNS:
            if plan.name != RESTARTED_RUN:
                self.trainers[plan.name].tick(plan.kimg)
                self.trainers[plan.name].checkpoint(plan.kimg)
            self.kimg[plan.name] = plan.kimg

    def runs_in(self, run: str) -> Runs:
        return Runs(self.kubectl, self.namespaces[run])

    def _trainer(self, run: str) -> TrainerRank0:
        namespace = self.namespaces[run]
        account = service_account_name(run)
        wait_for(lambda: self.kubectl("get", "serviceaccount", account, namespace=namespace,
                                      check=False).returncode == 0,
                 what=f"the run's ServiceAccount {namespace}/{account}")
        token = self.kubectl("create", "token", account, "--duration=1h",
                             namespace=namespace).stdout.strip()
        config = token_kubeconfig(self.kubectl.kubeconfig, token, account)
        return TrainerRank0(namespace, run, config, self.workdir / run)

    def restart(self, run: str) -> None:
        """Attempt 1 trains past its checkpoint and fails; attempt 2 resumes from it."""
        runs, trainer = self.runs_in(run), self.trainers[run]
        trainer.tick(CHECKPOINTED_KIMG)
        trainer.checkpoint(CHECKPOINTED_KIMG)
        trainer.tick(KIMG_AT_FAILURE)
        # The operator prices the lost work from the progress it has seen: wait for it.
        runs.wait_status(run, lambda s: s.get("kimg") == KIMG_AT_FAILURE
                         and (s.get("lastCheckpoint") or {}).get("kimg") == CHECKPOINTED_KIMG,
                         f"{run}'s status to show kimg {KIMG_AT_FAILURE} and its checkpoint")
        runs.exit_pods(runs.pods(run, 1), 1)
        runs.wait_status(run, lambda s: s.get("attempt") == 2 and s.get("restarts") == 1,
                         f"{run}'s attempt 2 after the failure")
        runs.running_pods(run, 2, 1)
        runs.wait_phase(run, "Running")
        trainer.start_attempt(2)
        trainer.tick(CHECKPOINTED_KIMG)  # resumed from the checkpoint

    def scrape_configs(self) -> list[dict]:
        assert self.operator is not None
        return [
            # The run metrics carry their own namespace/run labels: keep them.
            {"job_name": "stylegan-operator", "scrape_interval": "1s", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{self.operator.metrics_port}"]}]},
            # Trainers get namespace/run from their target, as the pod relabelling gives them.
            {"job_name": "stylegan-trainer", "scrape_interval": "1s",
             "static_configs": [
                 {"targets": [f"127.0.0.1:{self.trainers[run].port}"],
                  "labels": {"namespace": namespace, "run": run}}
                 for namespace, run in self.runs]},
        ]

    def advance(self) -> float:
        """One tick of every run's trainer: 10 kimg more, reported to its status."""
        for plan in RUNS:
            self.kimg[plan.name] += KIMG_PER_ADVANCE
            self.trainers[plan.name].tick(self.kimg[plan.name])
        return self.kimg[RUNS[0].name]

    def print_operator_log(self) -> None:
        if self.operator is not None:
            print(f"--- operator log ({self.operator.log_path}) ---\n"
                  f"{self.operator.log_tail(200)}")

    def stop(self) -> None:
        for trainer in self.trainers.values():
            trainer.close()
        if self.operator is not None and self.operator.process is not None \
                and self.operator.process.poll() is None:
            # Delete the runs while the operator runs, so kopf drops its finalizer.
            for namespace in self.namespaces.values():
                self.kubectl("delete", "styleganruns", "--all", "--wait=false",
                             namespace=namespace, check=False)
            wait_for(lambda: not any(self.kubectl.json("styleganruns", namespace=ns)["items"]
                                     for ns in self.namespaces.values()),
                     timeout=60, what="the runs to be deleted")
        if self.operator is not None:
            self.operator.stop()
        for namespace in self.namespaces.values():
            self.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def metrics_source(
    kubectl: Kubectl, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorOnCluster]:
    source = OperatorOnCluster(kubectl, operator_kubeconfig, tmp_path_factory.mktemp("monitoring"))
    failed_before = request.session.testsfailed
    try:
        source.start()
    except BaseException:
        source.print_operator_log()
        source.stop()
        raise
    try:
        yield source
    finally:
        if request.session.testsfailed > failed_before:
            source.print_operator_log()
        source.stop()
