"""The same audit split over a Ray cluster with Ray Data (`auditor check --engine ray`).

The driver lists the samples only to count them; the audit is cut into shards (every
n-th sample, see `engine.run_shard`), and Ray Data hands the shard numbers to a pool of
actors. Each actor holds one loaded model (one onnxruntime session), reads and decodes
its shard's files itself, perturbs and scores them, and sends back the shard's partial
statistics; `engine.merge` sums them into the same `AuditResults` as the local engine.
A shard whose actor dies is re-run by Ray (actor restarts and task retries), and a
shard's statistics are exact sums, so the merged result does not change.

Ray is imported lazily: it is the optional `ray` extra.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from auditor import data
from auditor.config import AuditConfig
from auditor.engine.partial import ShardResult
from auditor.errors import AuditorError, ConfigError
from auditor.results import AuditResults

Progress = Callable[[int, int], None]  # (units done, units in all)
MISSING_RAY = 'the Ray engine needs the `ray` extra: pip install "auditor[ray]"'
SHARDS_PER_ACTOR = 4  # small shards balance the pool and make a re-run cheap
RESTARTS = 4  # a dead actor is restarted, and its shard retried, at most this often
LOOPBACK = "127.0.0.1"
CPU_PROVIDERS = ("cpu", "cpuexecutionprovider")  # any other provider gets the GPUs


class ClusterError(AuditorError):
    """The Ray cluster cannot be reached or cannot run the audit."""


@dataclass(frozen=True)
class Pool:
    """The actor pool: how many actors and what each reserves."""

    actors: int
    num_cpus: float
    num_gpus: float


def run_audit_ray(
    config: AuditConfig,
    progress: Progress | None = None,
    *,
    address: str | None = None,
    worker: type[ShardWorker] | None = None,
) -> AuditResults:
    """Run the audit `config` describes on Ray and return the same results as `run_audit`.

    `address` (default `config.ray_address`): a running cluster (`ray start --head`
    prints it; `auto` finds this node's); None starts a private Ray on this machine,
    bound to loopback, for this audit only. `worker`: the actor class (a `ShardWorker`).
    """
    from auditor.engine.run import merge

    if config.resume:
        raise ConfigError("--resume is for the local engine; Ray re-runs failed shards itself")
    total_samples, units = _preflight(config)
    ray = import_ray()
    with connected(ray, address or config.ray_address):
        pool = plan_pool(ray, _provider(config))
        shards = max(1, min(total_samples, pool.actors * SHARDS_PER_ACTOR))
        parts, used = _run_shards(ray, config, shards, pool, worker or ShardWorker, progress, units)
        cluster = {**_describe_cluster(ray, pool, shards), "nodes_used": len(used)}
        environment = {**parts[0].environment, "ray": cluster}
    stopped = [p.shard[0] for p in parts if p.done != p.total]
    if stopped:  # an actor was asked to stop (SIGTERM) and ended its shard early
        raise ClusterError(f"shards {stopped} stopped before their end; run the audit again")
    return dataclasses.replace(merge(parts), environment=environment)


def import_ray() -> Any:
    """Import and return `ray` (with Ray Data), or fail with one line naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401  (the pipeline needs it; the extra installs it)
    except ImportError:
        raise ConfigError(MISSING_RAY) from None
    return ray


class ShardWorker:
    """A Ray Data actor: one loaded model, and `run_shard` for every shard it is handed."""

    def __init__(self, config: AuditConfig, shards: int, cwd: str) -> None:
        # Relative paths in `config` mean what they meant to the driver.
        relative = not (config.model_path.is_absolute() and config.data_path.is_absolute())
        _enter(cwd, needed=relative)
        from auditor.engine.pipeline import plan_tuning
        from auditor.model.adapter import load_model

        self.config = config
        self.shards = shards
        # The threads `run_shard` would give the session it opens itself.
        tuning = plan_tuning(config.workers, config.streams, config.model.threads)
        self.model = load_model(config.model_path, replace(config.model, threads=tuning.threads))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        numbers = [int(i) for i in batch["shard"]]
        parts = [pickle.dumps(self.audit(i), protocol=pickle.HIGHEST_PROTOCOL) for i in numbers]
        node = ray.get_runtime_context().get_node_id()
        return {
            "shard": np.asarray(numbers),
            "partial": np.asarray(parts, dtype=object),
            "node": np.asarray([node] * len(numbers)),
        }

    def audit(self, shard: int) -> ShardResult:
        """Audit shard `shard` with this actor's session; a copy keeps shards independent."""
        from auditor.engine.run import run_shard

        # A worker thread, not the actor's main thread: the engine then installs no
        # signal handlers, and Ray's SIGTERM stops the actor at once.
        with ThreadPoolExecutor(1) as thread:
            job = thread.submit(
                run_shard, self.config, (shard, self.shards), None, copy.copy(self.model)
            )
            return job.result()


def _enter(cwd: str, needed: bool) -> None:
    try:
        os.chdir(cwd)
    except OSError as exc:
        if not needed:
            return
        raise ClusterError(
            f"the driver's working folder {cwd} is missing on this node ({exc.strerror}); "
            "every node needs the same files at the same paths"
        ) from None


def _preflight(config: AuditConfig) -> tuple[int, int]:
    """Check on the driver what fails fast, before Ray starts; return (samples, work units)."""
    from auditor.engine.plan import build_plan
    from auditor.engine.run import _check_config
    from auditor.model.adapter import load_model

    _check_config(config, (0, 1))
    plan = build_plan(config)
    options = config.model
    if hasattr(options, "provider"):  # the driver only reads the model: no GPU needed
        cpu: dict[str, Any] = {"provider": "cpu"}
        options = dataclasses.replace(options, **cpu)
    load_model(config.model_path, options)
    samples = len(data.discover(config.data_path, config.limit).samples)
    return samples, samples * plan.units_per_sample


def _provider(config: AuditConfig) -> str:
    """The execution provider asked for (`--provider`), where the option exists."""
    return str(getattr(config.model, "provider", None) or "cpu").lower()


@contextmanager
def connected(ray: Any, address: str | None) -> Iterator[None]:
    """Join the cluster at `address`, or start a private loopback-only Ray; stop after.

    A Ray this process has already joined (a notebook on a cluster, a test) is used as
    it is and left running.
    """
    _quiet(ray)
    # Ray prints its workers' failures (retried or not, with tracebacks) on stdout,
    # which is for machine output; they are in Ray's logs, and a failure that stops
    # the audit is reported as one line.
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        if ray.is_initialized():
            if address:
                raise ClusterError("Ray is already initialized in this process; drop the address")
            yield
            return
        with _shut_down_after(ray):
            start_or_join(ray, address)
            yield


def start_or_join(ray: Any, address: str | None) -> None:
    """`ray.init` for an audit: join `address`, or start a private Ray on loopback only."""
    if address:
        _init(ray, address=address)
        return
    with _loopback(ray):
        _init(ray, address="local", include_dashboard=False, _node_ip_address=LOOPBACK)
    _check_loopback(ray)


@contextmanager
def _shut_down_after(ray: Any) -> Iterator[None]:
    try:
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()


def _init(ray: Any, **kwargs: Any) -> None:
    import logging

    try:
        # Ray's notices (token authentication, progress) would drown ours; its errors
        # still reach stderr.
        ray.init(log_to_driver=False, logging_level=logging.ERROR, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = kwargs.get("address")
        raise ClusterError(f"cannot connect to Ray at {where}: {_first_line(exc)}") from None


@contextmanager
def _loopback(ray: Any) -> Iterator[None]:
    """Make Ray take 127.0.0.1 as this node's address, so it listens on loopback only.

    Ray maps 127.0.0.1 to the machine's outward address unless it runs as a single-node
    instance (its mode for desktops); that mode is switched on for the start only.
    """
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def _check_loopback(ray: Any) -> None:
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    if addresses != {LOOPBACK}:
        raise ClusterError(
            f"the local Ray did not bind to loopback only (node addresses: "
            f"{', '.join(sorted(addresses))}); start a cluster and pass --ray-address"
        )


def _quiet(ray: Any) -> None:
    """Ray Data prints nothing: stdout stays clean, and stderr carries only our lines.

    Its progress, notices and the tracebacks of failed tasks still go to its log files;
    the driver reports a failure as one line (`_auditor_error`).
    """
    import logging

    with warnings.catch_warnings():  # its first use warns of its own renamed settings
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
    logging.getLogger("ray").setLevel(logging.ERROR)
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler) is not logging.FileHandler and isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.CRITICAL + 1)


def plan_pool(ray: Any, provider: str) -> Pool:
    """One actor per GPU when GPUs are asked for and present, else one per node."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    gpus = int(sum(r.get("GPU", 0) for r in nodes))
    if gpus and provider not in CPU_PROVIDERS:
        return Pool(actors=gpus, num_cpus=1, num_gpus=1)
    cpus = [r["CPU"] for r in nodes if r.get("CPU", 0) >= 1]
    if not cpus:
        raise ClusterError("the Ray cluster has no node with a CPU to run the audit on")
    # Each actor's engine uses every core of its node (threads), so one per node;
    # reserving the smallest node's CPUs keeps two actors off one node.
    return Pool(actors=len(cpus), num_cpus=min(cpus), num_gpus=0)


def _run_shards(
    ray: Any,
    config: AuditConfig,
    shards: int,
    pool: Pool,
    worker: type[ShardWorker],
    progress: Progress | None,
    units: int,
) -> tuple[list[ShardResult], set[str]]:
    """Audit every shard in the actor pool; return the partial results in shard order
    and the ids of the nodes that ran them."""
    # The actors journal nothing: Ray's retries are their crash safety.
    config = dataclasses.replace(config, journal_path=None, resume=False)
    items = ray.data.from_items([{"shard": i} for i in range(shards)], override_num_blocks=shards)
    with warnings.catch_warnings():
        # max_restarts and max_task_retries have no named parameter yet in Ray Data
        warnings.simplefilter("ignore")
        scored = items.map_batches(
            worker,
            fn_constructor_kwargs={"config": config, "shards": shards, "cwd": os.getcwd()},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=pool.actors),
            num_cpus=pool.num_cpus,
            num_gpus=pool.num_gpus,
            max_restarts=RESTARTS,
            max_task_retries=RESTARTS,
        )
    parts: dict[int, ShardResult] = {}
    nodes: set[str] = set()
    try:
        for row in scored.iter_rows():
            part: ShardResult = pickle.loads(row["partial"])
            parts.setdefault(part.shard[0], part)
            nodes.add(str(row["node"]))
            if progress:
                progress(sum(p.done for p in parts.values()), units)
    except Exception as exc:
        raise _auditor_error(exc) from None
    return _in_order(parts, shards), nodes


def _in_order(parts: dict[int, ShardResult], shards: int) -> list[ShardResult]:
    missing = sorted(set(range(shards)) - set(parts))
    if missing:
        raise ClusterError(f"Ray returned {len(parts)} of {shards} shards (missing: {missing})")
    return [parts[i] for i in range(shards)]


def _auditor_error(exc: BaseException) -> AuditorError:
    """The `AuditorError` an actor raised, from the traceback text Ray wraps it in;
    else a `ClusterError` with the first line of Ray's error."""
    known = _error_classes(AuditorError)
    texts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(texts) < 10:
        texts += [str(current), str(getattr(current, "error_msg", ""))]
        current = current.__cause__ or current.__context__
    for text in texts:
        found = RAISED.findall(text)
        if found and found[-1][0] in known:
            name, message = found[-1]
            return known[name](message.strip())
    return ClusterError(f"the audit failed on the Ray cluster: {_first_line(exc)}")


RAISED = re.compile(r"^auditor\.[\w.]*?(\w+): (.+)$", re.M)


def _error_classes(root: type[AuditorError]) -> dict[str, type[AuditorError]]:
    """`root` and its subclasses by name."""
    found = {root.__name__: root}
    for sub in root.__subclasses__():
        found.update(_error_classes(sub))
    return found


def _describe_cluster(ray: Any, pool: Pool, shards: int) -> dict[str, Any]:
    """The `ray` entry of the results' environment section."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    return {
        "version": ray.__version__,
        "nodes": len(nodes),
        "actors": pool.actors,
        "actor_resources": {"CPU": pool.num_cpus, "GPU": pool.num_gpus},
        "shards": shards,
    }


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]
