"""The settings declaration: every field classified once, and what is derived from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from auditor.cli import check
from auditor.config import (
    AuditConfig,
    FaceOptions,
    ModelOptions,
    PreprocessOptions,
    VideoOptions,
    echo_keys,
    policy_settings,
    record_settings,
    report_rows,
    validate,
)
from auditor.errors import ConfigError
from auditor.settings import GROUP, RESULT, ROLES, Setting, from_options, setting, walk

# Parameters of `auditor check` that set no audit setting: where the outputs go, the
# policy file (its [audit] table sets settings through `policy_settings`) and identity.
# Options of `check` that are not audit settings: where the outputs go, who issues them.
NOT_SETTINGS = {
    "output",
    "json_path",
    "policy_path",
    "auditor",
    "organisation",
    "sign_key",
    "formats",
}
CONFIG = AuditConfig(model_path=Path("m.onnx"), data_path=Path("data"))
RESOLVED = {
    "perturbations": [],
    "tolerance_keys": ["0.01", "0.05", "0.1", "0.2"],
    "headline_tolerance_key": "0.1",
    "preprocess": {},
    "workers": {},
}


def unclassified(cls: Any, seen: set[type]) -> list[str]:
    """The fields of `cls`, nested dataclasses included, that carry no `Setting`."""
    seen.add(cls)
    missing = []
    for f in dataclasses.fields(cls):
        if not isinstance(f.metadata.get("setting"), Setting):
            missing.append(f"{cls.__name__}.{f.name}")
        factory = f.default_factory
        if isinstance(factory, type) and dataclasses.is_dataclass(factory):
            missing += unclassified(factory, seen)
    return missing


def test_every_field_of_the_config_is_classified():
    seen: set[type] = set()
    assert unclassified(AuditConfig, seen) == []
    assert seen == {AuditConfig, ModelOptions, PreprocessOptions, VideoOptions, FaceOptions}
    assert all(spec.role in ROLES for spec in walk(AuditConfig))


def test_a_new_field_without_a_setting_is_caught():
    @dataclasses.dataclass(frozen=True)
    class Nested:
        kept: int = setting(0, RESULT, key="kept")
        added: int = 0

    @dataclasses.dataclass(frozen=True)
    class Extended:
        inner: Nested = setting(role=GROUP, factory=Nested)

    assert unclassified(Extended, set()) == ["Nested.added"]
    with pytest.raises(TypeError, match="Nested.added is not declared"):
        list(walk(Extended))


@pytest.mark.parametrize(
    "facts, problem",
    [
        ({"role": "decisive", "key": "x"}, "role must be one of"),
        ({"role": RESULT}, "exactly one of key or via"),
        ({"role": RESULT, "key": "x", "via": "y"}, "exactly one of key or via"),
        ({"role": "local", "key": "x"}, "a local setting is not recorded"),
        ({"role": RESULT, "key": "x", "label": "X"}, "label and row go together"),
        ({"role": RESULT, "key": "x", "valid": lambda v, c: True}, "valid and message"),
    ],
)
def test_a_setting_that_contradicts_itself_is_refused(facts, problem):
    with pytest.raises(ValueError, match=problem):
        Setting(**facts)


def test_the_config_record_follows_the_declaration():
    recorded = record_settings(CONFIG, RESOLVED)
    assert list(recorded) == [
        "suite", "perturbations", "tolerances", "tolerance_keys", "headline_tolerance",
        "headline_tolerance_key", "delta_norm", "seed", "repeats", "threshold", "limit",
        "max_pixels", "scale_to_input", "preprocess", "provider", "max_model_size",
        "output_kind", "output_name", "input_name", "fail_under_ra", "fail_under_rr",
        "command_line", "video", "face", "batch_size", "workers",
    ]  # fmt: skip
    assert recorded["tolerances"] == [0.01, 0.05, 0.1, 0.2]  # JSON lists, not tuples
    assert recorded["video"] == {"frames": None, "fps": None, "aggregate": "mean"}
    # --face-crop off: its detection settings decide nothing, so they are recorded as None
    off = {"crop": None, "detector": None, "score": None, "min_size": None}
    assert recorded["face"] == off
    on = dataclasses.replace(CONFIG, face=FaceOptions(crop="sbi", score=0.7))
    assert record_settings(on, RESOLVED)["face"] == {
        "crop": "sbi", "detector": "blazeface-full", "score": 0.7, "min_size": 20.0
    }  # fmt: skip
    assert recorded["suite"] == "quick"
    assert (
        record_settings(dataclasses.replace(CONFIG, perturbations=("blur",)), RESOLVED)["suite"]
        is None
    )  # -p overrides the suite


def test_queries_are_recorded_only_when_resolved_and_stray_values_are_refused():
    assert record_settings(CONFIG, {**RESOLVED, "queries": 40})["queries"] == 40
    with pytest.raises(ValueError, match="no setting records"):
        record_settings(CONFIG, {**RESOLVED, "quries": 40})


def test_the_digest_leaves_out_only_the_echoed_settings():
    assert echo_keys() == {"command_line", "batch_size", "workers"}
    recorded = record_settings(CONFIG, RESOLVED)
    assert {"output_kind", "output_name", "input_name"} <= set(recorded) - echo_keys()


def test_the_policy_sets_suite_tolerance_and_seed():
    assert policy_settings() == [("suite", "suite"), ("tolerance", "tolerances"), ("seed", "seed")]


def test_the_report_rows_are_in_their_order():
    assert [key for _, key in report_rows()] == [
        "command_line", "suite", "seed", "repeats", "tolerances", "headline_tolerance",
        "delta_norm", "scale_to_input", "threshold", "limit", "input_name", "output_name",
        "output_kind", "batch_size",
    ]  # fmt: skip


def test_recorded_keys_options_and_rows_are_each_declared_once():
    specs = list(walk(AuditConfig))
    for attribute in ("option", "policy", "row"):
        named = [getattr(s, attribute) for s in specs if getattr(s, attribute) is not None]
        assert len(named) == len(set(named)), attribute
    keys = [k for s in specs for k in (s.key, s.companion) if k is not None]
    assert len(keys) == len(set(keys))


def test_every_option_of_check_is_a_declared_setting_and_back():
    options = {s.option for s in walk(AuditConfig) if s.option is not None}
    parameters = {p.name for p in check.params}
    assert options <= parameters
    assert parameters - options == NOT_SETTINGS


def test_from_options_builds_nested_settings_and_keeps_absent_defaults():
    options = {"model": Path("m.onnx"), "data_path": Path("d"), "seed": 4, "size": (8, 8)}
    options |= {"frames": 3, "threads": 2, "output_kind": "logits"}
    config = from_options(AuditConfig, options, command_line=("auditor", "check"))
    assert config.seed == 4 and config.video.frames == 3 and config.model.threads == 2
    assert config.model.preprocess.size == (8, 8) and config.model.output_kind == "logits"
    assert config.command_line == ("auditor", "check") and config.repeats == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tolerances": ()}, "tolerances must be numbers in [0, 1]"),
        ({"tolerances": (0.1, 1.5)}, "tolerances must be numbers in [0, 1]"),
        ({"headline_tolerance": 0.3}, "the headline tolerance 0.3 must be one of the tolerances"),
        ({"delta_norm": "l2"}, "--delta-norm must be one of ('linf', 'l1', 'true-class')"),
        ({"repeats": 0}, "--repeats must be at least 1"),
        ({"threshold": 1.5}, "--threshold must be in [0, 1]"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"max_pixels": 0}, "--max-pixels must be at least 1"),
        ({"batch_size": -1}, "--batch-size must be 0 (automatic) or more"),
        ({"workers": -1}, "--workers must be 0 (automatic) or more"),
        ({"streams": -1}, "--streams must be 0 (automatic) or more"),
        ({"model": ModelOptions(threads=-1)}, "--threads must be 0 (automatic) or more"),
    ],
)
def test_validate_refuses_each_bad_value(change, message):
    validate(CONFIG)
    with pytest.raises(ConfigError) as caught:
        validate(dataclasses.replace(CONFIG, **change))
    assert str(caught.value) == message
