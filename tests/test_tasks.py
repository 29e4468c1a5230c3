"""Protocol tasks (issue 24): their metadata, the generators' declarations, `bench run --task/--target` refusals,
the success-rate metric on a hand-made distribution, and the record schema's task block."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.generator import Generator, GeneratorSpec
from harness.hookspecs import hookimpl
from harness.metrics.optimisation import best_per_start, property_thresholds, success_rates, success_rates_at
from harness.protocol import METRIC_KEYS, PROTOCOL_VERSION
from harness.records import RecordError, schema, validate
from harness.registry import RegistryError, build_registry, set_registry
from harness.tasks import (
    CONDITION_PROPERTIES,
    OPTIMISED_PROPERTIES,
    TASKS,
    OptimisationRequest,
    PropertyTarget,
    TaskError,
    cdvae_decode_steps,
    parse_target,
    record_task,
    resolve_request,
    task,
)

RESULTS = Path(__file__).resolve().parents[1] / "results"


# --- task metadata -------------------------------------------------------------------------------------------------


def test_the_three_tasks_fix_what_the_papers_fix():
    assert list(TASKS) == ["unconditional", "conditional", "optimise"]
    unconditional, conditional, optimise = TASKS.values()
    assert unconditional.version == PROTOCOL_VERSION and unconditional.metric_keys == METRIC_KEYS
    assert unconditional.run_path and conditional.run_path and optimise.run_path

    settings = conditional.settings
    assert settings["property"] == "formation_energy_per_atom" and settings["targets"] == (-0.5, -2.8, -4.0)
    assert settings["n_samples_per_target"] == settings["n_relax_per_target"] == 1_000
    assert (settings["relaxer"], settings["hull"]) == ("chgnet", "mp")
    assert (settings["labels"], settings["evaluation"]) == ("dataset_dft", "chgnet_relaxed_mp_references")
    assert conditional.datasets == ("mp20",) and conditional.method == "sample_conditional"
    assert conditional.metric_keys == ("stable_rate", "metastable_rate", "n_relaxed", "n_stable", "n_metastable")

    settings = optimise.settings
    assert (settings["starts"]["split"], settings["starts"]["n"]) == ("test", 100)
    assert (settings["gradient_steps"], settings["learning_rate"], settings["sr_percents"]) == (5_000, 1e-3, (5, 10, 15))
    assert optimise.metric_keys == ("sr5", "sr10", "sr15", "n_starts", "n_failed")
    assert set(optimise.datasets) == {"mp20", "perov5", "carbon24"}
    assert all(p.better == "lower" for p in OPTIMISED_PROPERTIES.values())
    for spec in TASKS.values():  # what a record's task block carries is plain JSON
        assert json.loads(json.dumps(spec.as_record()))["name"] == spec.name


def test_cdvae_decodes_eleven_times_along_5000_steps():
    # interval = 5000 // 9 = 555: steps 0, 555, ..., 4995, and the last one, 4999 (CDVAE's evaluate.py)
    steps = cdvae_decode_steps(5_000, 10)
    assert steps == (*range(0, 5_000, 555), 4_999) and len(steps) == 11
    assert OptimisationRequest("heat_ref", "lower").decode_steps == steps


def test_cdvae_thresholds_are_the_training_splits_linear_percentiles():
    """CDVAE pins its SR thresholds; Perov-5's train split reproduces them (the definition, checked on real data)."""
    path = Path(os.environ.get("XTALBENCH_DATA", "")) / "perov5" / "train.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    import pandas as pd

    heat = pd.read_csv(path, usecols=["heat_ref"])["heat_ref"].to_numpy()
    computed = property_thresholds(heat, "lower")
    assert list(computed.values()) == pytest.approx(OPTIMISED_PROPERTIES["perov5"].thresholds, abs=5e-9)


# --- targets and requests ------------------------------------------------------------------------------------------


def test_a_target_parses_to_a_property_and_a_value():
    target = parse_target(" formation_energy_per_atom = -2.8 ")
    assert target == PropertyTarget("formation_energy_per_atom", -2.8) and target.unit == "eV/atom"
    assert str(target) == "formation_energy_per_atom=-2.8"
    assert set(CONDITION_PROPERTIES) == {"formation_energy_per_atom"}


@pytest.mark.parametrize(("text", "message"), [
    ("formation_energy_per_atom", "is not PROPERTY=VALUE"),
    ("=-2.8", "is not PROPERTY=VALUE"),
    ("formation_energy_per_atom=", "is not PROPERTY=VALUE"),
    ("formation_energy=-2.8", "unknown property 'formation_energy'; did you mean 'formation_energy_per_atom'"),
    ("band_gap=1.0", "unknown property 'band_gap'"),
    ("formation_energy_per_atom=low", "'low' is not a number"),
    ("formation_energy_per_atom=inf", "must be finite"),
])
def test_malformed_or_unknown_targets_are_refused(text, message):
    with pytest.raises(TaskError, match=message):
        parse_target(text)


ALL_TASKS = ("unconditional", "conditional", "optimise")


def test_a_request_is_checked_against_the_task_the_generator_and_the_dataset():
    request = resolve_request("conditional", [], plugin="g", declared=ALL_TASKS, dataset="mp20")
    assert [t.value for t in request.targets] == [-0.5, -2.8, -4.0]  # the protocol's three by default
    request = resolve_request("conditional", ["formation_energy_per_atom=-2.8"], plugin="g", declared=ALL_TASKS,
                              dataset="mp20")
    assert request.task is TASKS["conditional"] and request.targets == (PropertyTarget("formation_energy_per_atom", -2.8),)
    assert resolve_request("optimise", [], plugin="g", declared=ALL_TASKS, dataset="perov5").targets == ()
    with pytest.raises(TaskError, match="unknown task 'optimize'; did you mean 'optimise'"):
        task("optimize")
    with pytest.raises(TaskError, match="goes with --task conditional, not 'optimise'"):
        resolve_request("optimise", ["formation_energy_per_atom=-2.8"], plugin="g", declared=ALL_TASKS, dataset="mp20")
    with pytest.raises(TaskError, match="given twice"):
        resolve_request("conditional", ["formation_energy_per_atom=-2.8"] * 2, plugin="g", declared=ALL_TASKS,
                        dataset="mp20")
    with pytest.raises(TaskError, match="plugin 'g' does not support task 'optimise' \\(it declares: unconditional\\)"):
        resolve_request("optimise", [], plugin="g", declared=("unconditional",), dataset="mp20")
    with pytest.raises(TaskError, match="task 'conditional' is defined on mp20, not 'perov5'"):
        resolve_request("conditional", [], plugin="g", declared=ALL_TASKS, dataset="perov5")


# --- generators declare tasks --------------------------------------------------------------------------------------


class Plain(Generator):
    name = "plain"

    def train(self, dataset, config, out_dir, seed):
        raise NotImplementedError

    def load(self, checkpoint, device):
        pass

    def sample(self, n, seed, batch_size):
        return [None] * n


def test_the_base_class_names_the_generator_and_the_task_it_does_not_implement():
    generator = Plain("mp20")
    with pytest.raises(NotImplementedError, match="generator 'plain' does not implement task 'conditional'"):
        generator.sample_conditional(2, PropertyTarget("formation_energy_per_atom", -2.8), seed=0, batch_size=2)
    with pytest.raises(NotImplementedError, match="generator 'plain' does not implement task 'optimise'"):
        generator.optimise([], OptimisationRequest("formation_energy_per_atom", "lower"), seed=0)


def _plugin(*specs: GeneratorSpec):
    class Plugin:
        @hookimpl
        def xtalbench_register_generators(self, register):
            for spec in specs:
                register(spec)

    return Plugin()


# Targets that cannot be imported: a refusal that loaded a model would fail with ImportError instead.
UNCONDITIONAL_ONLY = GeneratorSpec(name="uncond-only", version="1", target="no_such_module:Nope")
DECLARES_ALL = GeneratorSpec(name="declares-all", version="1", target="no_such_module:Nope", tasks=ALL_TASKS)


def test_specs_default_to_unconditional_and_a_misspelt_task_fails_loudly():
    assert GeneratorSpec(name="x", version="1", target="m:C").tasks == ("unconditional",)
    registry = build_registry(extra_plugins=[_plugin(DECLARES_ALL)], load_entry_points=False)
    assert registry.generator_spec("declares-all").tasks == ALL_TASKS
    typo = GeneratorSpec(name="typo", version="1", target="m:C", tasks=("unconditional", "optimize"))
    with pytest.raises(RegistryError, match="generator 'typo' declares unknown task 'optimize'; did you mean 'optimise'"):
        build_registry(extra_plugins=[_plugin(typo)], load_entry_points=False)


def test_no_shipped_generator_declares_a_task_it_has_not_implemented():
    for spec in build_registry().generators.values():
        for name in spec.tasks:
            method = TASKS[name].method
            assert getattr(spec.load_class(), method) is not getattr(Generator, method), (spec.name, name)


# --- the CLI -------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(isolated, monkeypatch):
    """`bench` with two generators of unimportable classes, an empty data folder and a runner that must not run."""
    from harness import runner
    from harness.cli.main import main

    set_registry(build_registry(extra_plugins=[_plugin(UNCONDITIONAL_ONLY, DECLARES_ALL)], load_entry_points=False))

    def must_not_run(request):
        raise AssertionError("the runner was reached")

    monkeypatch.setattr(runner, "run", must_not_run)
    return main


def _refusal(capsys, main, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bench: error: ")
    return err


@pytest.mark.parametrize("args", [["--task", "conditional", "--target", "formation_energy_per_atom=-2.8"],
                                  ["--task", "optimise"]])
def test_bench_run_refuses_an_undeclared_task_by_name_before_loading_anything(cli, capsys, args):
    err = _refusal(capsys, cli, ["run", "--plugin", "uncond-only", "--dataset", "mp20", *args])
    assert f"plugin 'uncond-only' does not support task '{args[1]}' (it declares: unconditional)" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "optimize"], "unknown task 'optimize'; did you mean 'optimise'?"),
    (["--task", "conditional", "--target", "formation_energy_per_atom:-2.8"], "is not PROPERTY=VALUE"),
    (["--task", "conditional", "--target", "e_form=-2.8"], "unknown property 'e_form'"),
    (["--target", "formation_energy_per_atom=-2.8"], "it goes with --task conditional, not 'unconditional'"),
    (["--task", "optimise", "--target", "formation_energy_per_atom=-2.8"], "it goes with --task conditional"),
])
def test_bench_run_refuses_unknown_tasks_and_bad_targets(cli, capsys, args, message):
    assert message in _refusal(capsys, cli, ["run", "--plugin", "declares-all", "--dataset", "mp20", *args])


@pytest.mark.parametrize("args", [["--task", "optimise"]])
def test_a_declared_task_without_a_run_path_says_it_is_not_yet_implemented(cli, capsys, monkeypatch, args):
    import dataclasses
    from types import MappingProxyType

    from harness import tasks

    # every task of this version runs; a task defined ahead of its run path is refused by name
    monkeypatch.setattr(tasks, "TASKS", MappingProxyType(
        {**tasks.TASKS, "optimise": dataclasses.replace(tasks.TASKS["optimise"], run_path=False)}))
    err = _refusal(capsys, cli, ["run", "--plugin", "declares-all", "--dataset", "mp20", *args])
    assert f"task '{args[1]}' is not yet implemented in this version of xtalbench" in err


def test_bench_plugins_lists_each_generators_tasks(cli, capsys):
    assert cli(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "tasks" in lines[0].split()
    assert "unconditional, conditional, optimise" in next(line for line in lines if line.startswith("declares-all"))
    only = next(line for line in lines if line.startswith("uncond-only"))
    assert "unconditional" in only and "conditional," not in only


# --- success rates -------------------------------------------------------------------------------------------------

# 21 reference values, so numpy's linear percentile at 5, 10 and 15 % falls exactly on the 2nd, 3rd and 4th smallest
# (position (21 - 1) * p / 100 = 1, 2, 3): thresholds -4, -4 (a tie in the reference) and -3.
REFERENCE = [-5, -4, -4, -3, -2, -2, -1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6]
# ten starts: three at or below -4 (one exactly on it), five at or below -3 (one exactly on it), three failures
VALUES = [-6.0, -4.0, -4.5, -3.5, -3.0, -2.9, float("nan"), None, float("inf"), 7.0]


def test_success_rates_on_a_hand_made_distribution():
    shuffled = np.random.default_rng(0).permutation(REFERENCE)  # order never matters
    result = success_rates(VALUES, shuffled, better="lower")
    assert result.thresholds == {"sr5": -4.0, "sr10": -4.0, "sr15": -3.0}
    assert result.rates == {"sr5": 0.3, "sr10": 0.3, "sr15": 0.5}  # failures stay in the denominator
    assert (result.n_starts, result.n_failed, result.failed) == (10, 3, (6, 7, 8))
    assert result.metrics() == {"sr5": 0.3, "sr10": 0.3, "sr15": 0.5, "n_starts": 10, "n_failed": 3}


def test_higher_is_better_mirrors_lower():
    mirrored = [None if v is None else -v for v in VALUES]
    result = success_rates(mirrored, [-r for r in REFERENCE], better="higher")
    assert result.thresholds == {"sr5": 4.0, "sr10": 4.0, "sr15": 3.0}
    assert result.rates == {"sr5": 0.3, "sr10": 0.3, "sr15": 0.5} and result.n_failed == 3


def test_ties_between_threshold_and_reference():
    # every reference value equal: the best p % of it is that value, and a sample equal to it succeeds
    result = success_rates([0.0, -1.0, 1.0, 0.0], [0.0] * 7)
    assert result.rates == {"sr5": 0.75, "sr10": 0.75, "sr15": 0.75}
    # between two order statistics the threshold interpolates: 11 values 0..10 -> 5 % at 0.5
    assert property_thresholds(range(11), percents=(5,)) == {"sr5": 0.5}
    assert success_rates([0.5, 0.5000001], range(11), percents=(5,)).rates == {"sr5": 0.5}


def test_a_start_counts_its_best_decode_and_fails_only_when_none_is_scored():
    decodes = [[float("nan"), -5.0, 2.0], [0.0, None, float("nan")], [None, None, None], [-3.0, -4.0, -3.5]]
    assert best_per_start(decodes).tolist()[:2] == [-5.0, 0.0] and np.isnan(best_per_start(decodes)[2])
    result = success_rates(decodes, REFERENCE)
    assert result.rates == {"sr5": 0.5, "sr10": 0.5, "sr15": 0.5} and result.failed == (2,)
    assert best_per_start([[1.0, 3.0]], "higher").tolist() == [3.0]


def test_pinned_thresholds_and_bad_inputs():
    thresholds = dict(zip(("sr5", "sr10", "sr15"), OPTIMISED_PROPERTIES["mp20"].thresholds, strict=True))
    result = success_rates_at([-3.2, -2.9, -2.6, -1.0], thresholds)
    assert result.rates == {"sr5": 0.25, "sr10": 0.5, "sr15": 0.75}
    with pytest.raises(ValueError, match="not finite"):
        success_rates([0.0], [0.0, float("nan")])
    with pytest.raises(ValueError, match="empty"):
        success_rates([0.0], [])
    with pytest.raises(ValueError, match="no starts"):
        success_rates([], REFERENCE)
    with pytest.raises(ValueError, match="better"):
        success_rates([0.0], REFERENCE, better="min")


# --- the record schema ---------------------------------------------------------------------------------------------


def _committed_record() -> dict:
    path = next(p for p in sorted(RESULTS.rglob("record.json")) if "external" not in str(p))
    return json.loads(path.read_text())


CONDITIONAL_BLOCK = {
    **TASKS["conditional"].as_record(),
    "conditional": {
        "property": "formation_energy_per_atom", "unit": "eV/atom", "labels": "dataset_dft",
        "evaluation": "chgnet_relaxed_mp_references",
        "targets": [{"value": v, "n_samples": 1000, "seed": 0,
                     "metrics": {"stable_rate": 0.1, "metastable_rate": 0.4, "n_relaxed": 1000, "n_stable": 100,
                                 "n_metastable": 400}} for v in (-0.5, -2.8, -4.0)],
    },
}
OPTIMISE_BLOCK = {
    **TASKS["optimise"].as_record(),
    "optimise": {
        "property": "formation_energy_per_atom", "better": "lower",
        "oracle": {"name": "chgnet_relaxed_mp_references", "version": "1", "description": "CHGNet, MP references"},
        "reference": {"source": "cdvae_percentiles", "percents": [5, 10, 15],
                      "thresholds": list(OPTIMISED_PROPERTIES["mp20"].thresholds)},
        "starts": {"split": "test", "n": 100},
        "metrics": {"sr5": 0.3, "sr10": 0.3, "sr15": 0.5, "n_starts": 100, "n_failed": 3},
    },
}


def test_old_records_stay_valid_and_mean_unconditional():
    record = _committed_record()
    assert "task" not in record
    validate(record)
    assert record_task(record) == "unconditional"
    validate({**record, "task": TASKS["unconditional"].as_record()})


@pytest.mark.parametrize("block", [CONDITIONAL_BLOCK, OPTIMISE_BLOCK])
def test_the_schema_accepts_a_task_block(block):
    record = {**_committed_record(), "task": block}
    validate(record)
    assert record_task(record) == block["name"]


def _broken(block, change):
    block = copy.deepcopy(block)
    change(block)
    return block


@pytest.mark.parametrize(("block", "where"), [
    ({"name": "inverse_design", "version": "1"}, "task/name"),
    ({"name": "conditional", "version": "1.0"}, "task"),  # a conditional record without its results
    ({**OPTIMISE_BLOCK, "name": "unconditional"}, "task"),
    (_broken(CONDITIONAL_BLOCK, lambda b: b["conditional"]["targets"][0]["metrics"].update(made_up=1)), "metrics"),
    (_broken(CONDITIONAL_BLOCK, lambda b: b["conditional"].update(property="band_gap")), "property"),
    (_broken(OPTIMISE_BLOCK, lambda b: b["optimise"]["metrics"].update(sr5=1.5)), "sr5"),
    (_broken(OPTIMISE_BLOCK, lambda b: b["optimise"].pop("oracle")), "oracle"),
])
def test_the_schema_refuses_a_malformed_task_block(block, where):
    with pytest.raises(RecordError, match=where):
        validate({**_committed_record(), "task": block})


def test_the_schema_lists_the_tasks_and_their_metric_keys():
    record_schema = schema()
    assert record_schema["properties"]["task"]["properties"]["name"]["enum"] == list(TASKS)
    conditional = record_schema["$defs"]["conditional_task"]["properties"]
    assert conditional["property"]["enum"] == list(CONDITION_PROPERTIES)
    metrics = conditional["targets"]["items"]["properties"]["metrics"]
    assert metrics["required"] == list(metrics["properties"]) == list(TASKS["conditional"].metric_keys)
    metrics = record_schema["$defs"]["optimise_task"]["properties"]["metrics"]
    assert metrics["required"] == list(metrics["properties"]) == list(TASKS["optimise"].metric_keys)
