"""`--engine ray`: the same results as the local engine, on a private local Ray, on a
two-node loopback cluster, and after an actor dies mid-audit.

Tests marked `ray` start Ray (select them with `-m ray`); they skip where the `ray`
extra is not installed. The others check the one-line errors and need no Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import without_run_specifics

from auditor import AuditConfig, run_audit
from auditor.cli import main
from auditor.engine.distributed import ShardWorker, run_audit_ray
from auditor.errors import DataError
from auditor.report.provenance import findings_of
from auditor.results import AuditResults, load_json, to_json

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "deepfake"


def comparable(results: AuditResults | dict) -> dict:
    """The results JSON less timestamps, environment and report identity."""
    data = json.loads(to_json(results)) if isinstance(results, AuditResults) else dict(results)
    return without_run_specifics(data)


@pytest.fixture(scope="module")
def ray_installed() -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    pytest.importorskip("ray.data", reason="the ray extra is not installed")


@pytest.fixture(scope="class")
def running_ray(ray_installed) -> Iterator[None]:
    """One private loopback Ray for the tests that need not start their own (stopped
    before the cluster test, whose `ray stop` ends every Ray on the machine)."""
    import ray

    from auditor.engine.distributed import start_or_join

    start_or_join(ray, None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sample_config() -> AuditConfig:
    """The bundled samples, kept short: 60 images, two perturbations."""
    return AuditConfig(
        model_path=SAMPLES / "detector_a.onnx",
        data_path=SAMPLES / "data",
        perturbations=("gaussian_noise", "jpeg_compression:quality=50,10"),
        limit=60,
    )


@pytest.fixture(scope="module")
def local_results(sample_config: AuditConfig) -> dict:
    return comparable(run_audit(sample_config))


def check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.output


# --- one-line errors, no Ray needed ---------------------------------------------------


def test_missing_ray_names_the_extra(binary_model, data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, out = check(str(binary_model), "--data", str(data_dir), "--engine", "ray")
    assert code == 2
    assert 'pip install "auditor[ray]"' in out
    assert "Traceback" not in out


def test_ray_address_needs_the_ray_engine(binary_model, data_dir):
    code, out = check(str(binary_model), "--data", str(data_dir), "--ray-address", "auto")
    assert code == 2
    assert "--ray-address needs --engine ray" in out


def test_resume_is_for_the_local_engine(binary_model, data_dir, tmp_path):
    args = [str(binary_model), "--data", str(data_dir), "-o", str(tmp_path / "r.html")]
    code, out = check(*args, "--engine", "ray", "--resume")
    assert code == 2
    assert "--resume is for the local engine" in out


def test_bad_data_fails_before_ray_starts(binary_model, tmp_path):
    code, out = check(str(binary_model), "--data", str(tmp_path / "nope"), "--engine", "ray")
    assert code == 2
    assert "data path not found" in out


def test_a_broken_model_fails_before_ray_starts(data_dir, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    code, out = check(str(broken), "--data", str(data_dir), "--engine", "ray")
    assert code == 2
    assert out.startswith("auditor: error: ") and str(broken) in out


# --- a private local Ray ----------------------------------------------------------------


@pytest.mark.ray
def test_ray_engine_gives_the_local_engines_results(ray_installed, sample_config, local_results):
    results = run_audit_ray(sample_config)
    assert comparable(results) == local_results
    ray_env = results.environment["ray"]
    assert ray_env["nodes"] == 1
    assert ray_env["shards"] > 1  # really split, not one shard


@pytest.mark.ray
@pytest.mark.usefixtures("running_ray")
class TestOnASharedRay:
    """Failures on the actors, on one Ray started for both tests."""

    def test_a_dead_actor_has_its_shard_rerun(self, sample_config, local_results, tmp_path):
        flag = tmp_path / "crash-once"
        flag.write_text("the first attempt of shard 1 kills its actor")
        marker = str(flag)

        class CrashOnce(ShardWorker):
            """Kills its own process on the first attempt at shard 1 (the flag is removed)."""

            def audit(self, shard: int):  # type: ignore[no-untyped-def]
                if shard == 1 and os.path.exists(marker):
                    os.remove(marker)
                    os._exit(1)
                return super().audit(shard)

        results = run_audit_ray(sample_config, worker=CrashOnce)
        assert not flag.exists(), "the actor never crashed"
        assert comparable(results) == local_results

    def test_the_private_ray_listens_on_loopback_only(self):
        import ray

        host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
        outward = _outward_address()
        if outward is None or outward.startswith("127."):
            pytest.skip("this machine has no outward address to try")
        with pytest.raises(OSError):  # refused: nothing listens there
            socket.create_connection((outward, int(port)), timeout=5).close()

    def test_an_error_on_an_actor_is_reported_as_ours(self, sample_config):
        class Refuses(ShardWorker):
            def audit(self, shard: int):  # type: ignore[no-untyped-def]
                raise DataError(f"shard {shard}: the data moved away")

        with pytest.raises(DataError, match=r"^shard \d+: the data moved away$"):
            run_audit_ray(sample_config, worker=Refuses)

    def test_progress_total_is_the_units_done_when_a_search_is_planned(self, sample_config):
        """A search adds no tensor rows: the total counts a sample's clean and sampled rows."""
        specs = ("square_linf:eps=4/255,16/255", "gaussian_noise")
        config = replace(sample_config, perturbations=specs, queries=4, limit=12)
        seen: list[tuple[int, int]] = []
        results = run_audit_ray(config, lambda done, total: seen.append((done, total)))
        units = 12 * (1 + 5)  # clean + gaussian_noise's 5 levels; not square_linf's 2
        assert {total for _, total in seen} == {units}
        assert seen[-1][0] == units
        assert results.progress == {"done": units, "total": units}
        assert results.adversarial["perturbations"]["square_linf"][1]["flip"]["n"] == 12


def _outward_address() -> str | None:
    """The address this machine would send from (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: never reached
            return str(probe.getsockname()[0])
    except OSError:
        return None


# --- a head and a worker node on loopback -----------------------------------------------


@pytest.fixture
def loopback_cluster(ray_installed, tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """`ray start` a head and a worker on 127.0.0.2; `ray stop` afterwards, always.

    Ray maps 127.0.0.1 to the machine's outward address as soon as a second node may
    join, so the cluster uses another loopback address. In that mode Ray's servers
    listen on every interface; a token of this test's own guards them.
    """
    token = tmp_path / "token"
    token.write_text(os.urandom(16).hex())
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    host = "127.0.0.2"
    address = f"{host}:{_free_port(host)}"
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    common = ["--node-ip-address", host, "--num-cpus", "1", "--disable-usage-stats"]
    temp = tempfile.mkdtemp(prefix="auditor-ray-")  # short: Ray's socket paths must fit
    try:
        head = ["--head", "--port", address.split(":")[1], "--include-dashboard", "false"]
        _run([*ray_cli, "start", *head, *common, "--temp-dir", temp], env)
        _run([*ray_cli, "start", "--address", address, *common], env)
        yield address, env
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.ray
def test_audit_through_a_two_node_cluster(loopback_cluster, sample_config, local_results, tmp_path):
    address, env = loopback_cluster
    out = tmp_path / "report.html"
    command = [sys.executable, "-m", "auditor", "check", str(sample_config.model_path)]
    command += ["--data", str(sample_config.data_path), "--limit", "60", "-o", str(out)]
    command += ["-p", "gaussian_noise", "-p", "jpeg_compression:quality=50,10"]
    command += ["--engine", "ray", "--ray-address", address]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # stdout stays clean for machine output
    written = json.loads(out.with_suffix(".json").read_text())
    assert written["environment"]["ray"]["nodes"] == 2
    assert written["environment"]["ray"]["actors"] == 2
    # One actor per node; on a loaded machine Ray Data may still give every shard to the
    # actor that is ready first, so shards on both nodes are not guaranteed.
    assert 1 <= written["environment"]["ray"]["nodes_used"] <= 2
    expected = dict(local_results, config=dict(local_results["config"]))
    expected["config"]["command_line"] = written["config"]["command_line"]
    # check issues the results with their findings, computed from the figures compared here
    assert written.pop("findings") == findings_of(load_json(out.with_suffix(".json")))
    assert comparable(written) == expected
