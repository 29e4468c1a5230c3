"""Relaxers as plugins: the hook, the registry, the batched FIRE driving any relaxer, SevenNet-0, records and boards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from harness import leaderboard, stability
from harness.evaluation_types import Sample
from harness.hookspecs import hookimpl
from harness.registry import RegistryError, build_registry, set_registry
from harness.relaxer import PROTOCOL_RELAXER, Relaxer, RelaxerSpec
from harness.stability.agreement import relaxer_agreement
from harness.stability.hull import ReferenceHull
from harness.stability.relax import RelaxSettings, load_relaxer, relax_batched
from tests.conftest import perovskite, protocol_relaxer_predictions, rocksalt

try:
    from test_leaderboard_records import make_record, write_run
except ImportError:  # tests/ imported as a package
    from tests.test_leaderboard_records import make_record, write_run

EV_PER_A3_IN_GPA = 160.21766208


class EmtRelaxer(Relaxer):
    """ASE's EMT (Cu, Au, ...) as a third-party relaxer: a potential with no learnt weights, exact and fast."""

    label = "EMT"

    def prepare(self, structure):
        from ase.calculators.emt import parameters
        from pymatgen.io.ase import AseAtomsAdaptor

        unknown = sorted({s.specie.symbol for s in structure} - set(parameters))
        if unknown:
            raise ValueError(f"EMT has no parameters for {', '.join(unknown)}")
        return AseAtomsAdaptor().get_atoms(structure)

    def compute(self, prepared, task):
        from ase.calculators.emt import EMT

        out = []
        for atoms in prepared:
            atoms = atoms.copy()
            atoms.calc = EMT()
            pred = {"e": atoms.get_potential_energy() / len(atoms)}
            if task == "efs":
                pred["f"] = atoms.get_forces()
                pred["s"] = atoms.get_stress(voigt=False) * EV_PER_A3_IN_GPA
            out.append(pred)
        return out

    def weights_path(self) -> Path:
        import ase.calculators.emt

        return Path(ase.calculators.emt.__file__)


EMT_SPEC = RelaxerSpec(name="emt-test", version="1", target="tests.test_relaxers:EmtRelaxer", package="ase",
                       model="emt", description="ASE's EMT, for tests")


class EmtPlugin:
    @hookimpl
    def xtalbench_register_relaxers(self, register):
        register(EMT_SPEC)


@pytest.fixture
def emt_registry():
    set_registry(build_registry(extra_plugins=[EmtPlugin()]))
    yield
    set_registry(None)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XTALBENCH_CACHE", str(tmp_path / "cache"))


def fcc(a: float, species=("Cu", "Cu", "Cu", "Cu")) -> Structure:
    return Structure(Lattice.cubic(a), list(species), [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def rattled(structure: Structure, seed: int, scale: float = 0.08) -> Structure:
    out = structure.copy()
    for i, shift in enumerate(np.random.default_rng(seed).normal(0.0, scale, (len(out), 3))):
        out.translate_sites([i], shift, frac_coords=False)
    return out


# ---- registry and CLI ---------------------------------------------------------------------------------------


def test_builtin_relaxers_come_through_the_hook_and_chgnet_is_the_protocols():
    registry = build_registry(load_entry_points=False)  # built-ins need no entry point
    assert {"chgnet", "sevennet"} <= set(registry.relaxers)
    assert PROTOCOL_RELAXER == "chgnet" and registry.relaxer("chgnet").model == "0.3.0"
    assert registry.relaxer("sevennet").package == "sevenn"


def test_third_party_relaxer_registers_and_duplicates_fail_loudly():
    registry = build_registry(extra_plugins=[EmtPlugin()])
    assert registry.relaxer("emt-test").target.endswith(":EmtRelaxer")

    class Dup:
        @hookimpl
        def xtalbench_register_relaxers(self, register):
            register(RelaxerSpec(name="chgnet", version="9", target="x:Y", package="x", model="m"))

    with pytest.raises(RegistryError, match="relaxer 'chgnet' registered twice"):
        build_registry(extra_plugins=[Dup()])

    class Wrong:
        @hookimpl
        def xtalbench_register_relaxers(self, register):
            register("chgnet")

    with pytest.raises(RegistryError, match="RelaxerSpec"):
        build_registry(extra_plugins=[Wrong()])
    with pytest.raises(RegistryError, match="did you mean 'sevennet'"):
        registry.relaxer("sevenet")


def test_bench_plugins_lists_relaxers_and_an_unknown_relaxer_is_refused_by_name(capsys, tmp_path):
    from harness.cli import evaluate as evaluate_cli
    from harness.cli import plugins as plugins_cli

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    plugins_cli.register(subparsers)
    evaluate_cli.register(subparsers)
    args = parser.parse_args(["plugins"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    relaxers = out[out.index("relaxer "):]
    assert "chgnet" in relaxers and "protocol" in relaxers and "sevennet" in relaxers and "7net-0" in relaxers
    samples = tmp_path / "s.cif"
    samples.write_text(rocksalt().to(fmt="cif"))
    args = parser.parse_args(["evaluate", str(samples), "--dataset", "mp20", "--stability", "--relaxer", "sevenet"])
    with pytest.raises(SystemExit):
        args.func(args)
    assert "unknown relaxer 'sevenet'; did you mean 'sevennet'" in capsys.readouterr().err


def test_protocol_settings_keep_their_identity_and_others_name_their_relaxer():
    settings = RelaxSettings()
    assert "relaxer" not in settings.as_dict()  # relaxation folders and shipped caches keep their hashes
    assert RelaxSettings(**settings.as_dict()) == settings
    other = RelaxSettings.for_relaxer("sevennet")
    assert other.as_dict()["relaxer"] == "sevennet" and other.model == "7net-0"
    assert RelaxSettings(**other.as_dict()) == other


def test_run_ids_of_other_relaxers_never_collide_with_protocol_runs():
    from harness.runner import run_id_for

    assert run_id_for("quick", 0, "ab" * 32) == "quick-seed0-abababab" + "ab"
    assert run_id_for("quick", 0, "ab" * 32, "sevennet") == run_id_for("quick", 0, "ab" * 32) + "-sevennet"


# ---- the batched FIRE drives any relaxer ----------------------------------------------------------------------


def test_batched_fire_with_a_plugin_relaxer_equals_ases_own_optimiser(emt_registry):
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    starts = [rattled(fcc(3.75), 0), rattled(fcc(3.95, ("Au", "Cu", "Cu", "Cu")), 1)]
    settings = RelaxSettings.for_relaxer("emt-test", max_steps=300)
    results = relax_batched(starts, settings)
    for start, result in zip(starts, results):
        atoms = AseAtomsAdaptor().get_atoms(start)
        atoms.calc = EMT()
        optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
        assert optimizer.run(fmax=settings.fmax, steps=settings.max_steps)
        assert result.error is None and result.converged and result.steps > 3
        assert result.energy_per_atom == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-6)
        assert abs(result.steps - optimizer.nsteps) <= 1
    # a structure the potential cannot take is a failure with its reason, never a crash
    (bad,) = relax_batched([rocksalt()], settings)
    assert bad.energy_per_atom is None and "EMT has no parameters for Cl, Na" in bad.error


def test_stability_records_name_the_relaxer_and_refuse_the_chgnet_dataset_hull(emt_registry, tmp_path):
    from harness.datasets import Split

    entries = [("element:Cu", "Cu", 0.0), ("element:Au", "Au", 0.0), ("ref:AuCu3", "Au1 Cu3", -0.05)]
    hull = ReferenceHull("tiny-emt", "test", entries, {"Cu": {"energy_per_atom": 0.0}, "Au": {"energy_per_atom": 0.0}})
    hull_path = tmp_path / "hull.json"
    hull_path.write_text(json.dumps(hull.to_json()))
    samples = [Sample(0, rattled(fcc(3.75), 0)), Sample(1, rattled(fcc(3.9, ("Au", "Cu", "Cu", "Cu")), 2))]
    train = Split("tiny", "train", [fcc(3.6)], ["t0"], "0" * 64)
    result = stability.evaluate(samples, dataset="tiny", train=train, n_relax=10, seed=0, hull=hull_path,
                                work_dir=tmp_path / "work", progress=False, relaxer="emt-test")
    relaxer = result.info["relaxer"]
    assert relaxer["name"] == "emt-test" and relaxer["protocol"] is False and relaxer["model"] == "emt"
    assert len(relaxer["weights_sha256"]) == 64 and result.info["relax"]["relaxer"] == "emt-test"
    table = result.table
    assert table["relaxed_energy_per_atom"].notna().all()
    assert table.loc[1, "e_hull"] == pytest.approx(table.loc[1, "relaxed_energy_per_atom"] + 0.05, abs=1e-9)
    assert list((tmp_path / "work").glob("relax-*"))  # its own relaxation folder, apart from CHGNet's
    with pytest.raises(ValueError, match="--hull dataset holds CHGNet energies"):
        stability.evaluate(samples, dataset="tiny", train=train, n_relax=10, seed=0, hull="dataset",
                           work_dir=tmp_path / "w2", progress=False, relaxer="emt-test")


# ---- SevenNet-0 -----------------------------------------------------------------------------------------------


def test_sevennet_batched_predictions_equal_its_own_ase_calculator():
    pytest.importorskip("sevenn")
    from pymatgen.io.ase import AseAtomsAdaptor
    from sevenn.calculator import SevenNetCalculator

    structures = [rattled(rocksalt(5.5), 3), rattled(perovskite(3.95), 4)]
    preds = load_relaxer("sevennet").predict(structures, "efs", 32)
    calculator = SevenNetCalculator("7net-0", device="cpu")
    for structure, pred in zip(structures, preds):
        atoms = AseAtomsAdaptor().get_atoms(structure)
        atoms.calc = calculator
        assert float(pred["e"]) == pytest.approx(atoms.get_potential_energy() / len(atoms), abs=1e-5)
        assert np.abs(atoms.get_forces()).max() > 0.05  # the comparison is not of zeros
        np.testing.assert_allclose(pred["f"], atoms.get_forces(), atol=1e-4)
        np.testing.assert_allclose(pred["s"], atoms.get_stress(voigt=False) * EV_PER_A3_IN_GPA, atol=1e-3)
    (failed,) = load_relaxer("sevennet").predict([Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]])], "efs", 32)
    assert failed == "ValueError: SevenNet 7net-0 has no parameters for Og"


def test_sevennet_energies_get_mp2020_corrections_chgnets_do_not():
    pytest.importorskip("sevenn")
    from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

    oxide, metal = perovskite(3.9), fcc(3.6)
    sevennet, chgnet = load_relaxer("sevennet"), load_relaxer("chgnet")
    oxygen = MaterialsProject2020Compatibility(check_potcar=False).comp_correction["oxide"]
    assert sevennet.mp_compatible_energy(oxide, -7.0) == pytest.approx(-7.0 + oxygen * 3 / 5, abs=1e-9)
    assert sevennet.mp_compatible_energy(metal, -3.0) == pytest.approx(-3.0)
    assert chgnet.mp_compatible_energy(oxide, -7.0) == -7.0
    assert "MP2020" in sevennet.describe()["energy_scale"] and sevennet.describe()["protocol"] is False


# ---- agreement, boards -----------------------------------------------------------------------------------------


def stability_table(e_hull: list[float | None], converged: list[bool] | None = None, index=None) -> pd.DataFrame:
    converged = converged or [True] * len(e_hull)
    stable = [e is not None and c and e <= 0 for e, c in zip(e_hull, converged)]
    return pd.DataFrame({"formula": "X", "relaxed_energy_per_atom": [None if e is None else e - 1 for e in e_hull],
                         "e_hull": e_hull, "stable": stable, "stability_error": None},
                        index=pd.Index(index or range(len(e_hull)), name="index"))


def test_agreement_counts_on_samples_both_scored():
    a = stability_table([-0.1, 0.05, 0.2, -0.02, None, 0.3], index=[0, 1, 2, 3, 4, 5])
    b = stability_table([-0.05, -0.01, 0.25, 0.04, -0.3, 0.1], index=[0, 1, 2, 3, 4, 6])
    summary, rows = relaxer_agreement(a, b, ("chgnet", "sevennet"))
    assert summary["n_common"] == 5 and summary["n_scored_by_both"] == 4  # 5, 6 in one subset; 4 failed in a
    assert summary["stable_by_both"] == 1 and summary["stable_by_chgnet_only"] == 1
    assert summary["stable_by_sevennet_only"] == 1 and summary["stable_by_neither"] == 1
    assert summary["agreement_rate"] == pytest.approx(0.5)
    assert summary["e_hull_mae"] == pytest.approx(np.mean([0.05, 0.06, 0.05, 0.06]))
    assert list(rows["agree"]) == [True, False, True, False, None]
    with pytest.raises(ValueError, match="same relaxer"):
        relaxer_agreement(a, b, ("chgnet", "chgnet"))


def _with_relaxer(record, name, model):
    record["details"] = {"stability": {"relaxer": {"name": name, "model": model, "protocol": name == "chgnet"}}}
    return record


def test_other_relaxers_get_their_own_section_and_never_replace_the_protocol_row(tmp_path):
    results = tmp_path / "results"
    write_run(results, make_record("m", run_id="quick-a", metrics={"valid": 0.8, "stable_rate": 0.05}))
    # newer and with the same validity: by the row rule it would win, were it ranked with protocol rows
    write_run(results, _with_relaxer(make_record("m", run_id="quick-a-sevennet", created="2026-12-01T00:00:00+00:00",
                                                 metrics={"valid": 0.8, "stable_rate": 0.09}), "sevennet", "7net-0"))
    mp20 = leaderboard.render_all(results, tmp_path / "lb")[tmp_path / "lb" / "mp20.md"]
    main, _, others = mp20.partition("## Stability by other relaxers (not ranked)")
    assert "quick-a/record.json" in main and "sevennet" not in main
    assert "m *(relaxed by sevennet 7net-0)*" in others and "quick-a-sevennet/record.json" in others
    assert "**" not in others.split("\n\n", 2)[2]  # never bold: nothing there is ranked


def test_report_compares_the_relaxers_of_the_same_samples(tmp_path):
    from harness.report import write_report
    from harness.report_relaxers import relaxer_siblings

    results = tmp_path / "results"
    base = {"valid": 0.8, "n_relaxed": 4, "stable_rate": 0.25}
    chgnet = make_record("m", run_id="quick-a", metrics=base)
    sevennet = _with_relaxer(make_record("m", run_id="quick-a-sevennet", metrics=base), "sevennet", "7net-0")
    unrelated = make_record("m", run_id="quick-b", metrics=base)
    for record, digest in ((chgnet, "a"), (sevennet, "a"), (unrelated, "b")):
        record["data"]["samples_sha256"] = digest * 64
        record["details"] = {**record.get("details", {}),
                             "stability": {**record.get("details", {}).get("stability", {}), "model": "x"}}
    table = pd.concat([pd.DataFrame({"valid": [True] * 4, "density": 3.0, "num_elems": 2, "spacegroup": 225},
                                    index=pd.Index(range(4), name="index")),
                       stability_table([-0.1, 0.2, 0.3, -0.01])], axis=1)
    other = table.copy()
    other["e_hull"], other["stable"] = [-0.2, -0.05, 0.4, 0.02], [True, True, False, False]
    path = write_run(results, chgnet, table)
    write_run(results, sevennet, other)
    write_run(results, unrelated, table)
    siblings = relaxer_siblings(path)
    assert [p.parent.name for p in siblings] == ["quick-a-sevennet"]
    report = write_report(path, None, None, tuple(siblings))
    text = report.markdown.read_text()
    assert "## Relaxers compared: chgnet and sevennet" in text
    assert "agreement on stable / not stable: 0.5000" in text
    disagreements = text.split("Samples the two disagree on:")[1].split("![")[0]
    rows = [line.split("|")[1:-1] for line in disagreements.strip().splitlines()[2:]]
    assert [[c.strip() for c in row] for row in rows] == [["1", "X", "0.2000", "-0.0500", "sevennet"],
                                                          ["3", "X", "-0.0100", "0.0200", "chgnet"]]
    side_by_side = pd.read_csv(path.parent / "relaxers_chgnet_vs_sevennet.csv", index_col="index")
    assert list(side_by_side["agree"]) == [True, False, True, False]
    assert (path.parent / "relaxers_chgnet_vs_sevennet.png").stat().st_size > 1000


# ---- bench relax: a sibling record of the same samples ---------------------------------------------------------


def test_relax_again_writes_a_sibling_of_the_same_samples_with_only_stability_new(tiny_dataset, tmp_path, capsys,
                                                                                  monkeypatch):
    from harness.cli.main import main
    from harness.evaluation import EvaluationRequest
    from harness.records import load_record
    from harness.report_relaxers import relaxer_siblings
    from harness.runner import RunRequest, run
    from tests.conftest import TinyDatasetPlugin

    set_registry(build_registry(extra_plugins=[TinyDatasetPlugin(), EmtPlugin()]))
    evaluation = EvaluationRequest(dataset="tiny", stability=True, workers=1, progress=False)
    source = run(RunRequest(plugin="trainset", dataset="tiny", n_samples=8, n_relax=8, batch_size=4,
                            out=tmp_path / "results" / "tiny" / "trainset" / "custom-seed0", evaluation=evaluation))
    assert main(["relax", str(source.parent), "--relaxer", "emt-test", "--no-progress"]) == 0
    sibling_path = source.parent.with_name("custom-seed0-emt-test") / "record.json"
    assert str(sibling_path) in capsys.readouterr().out
    record, sibling = load_record(source), load_record(sibling_path)
    stability_keys = {"stable_rate", "metastable_rate", "unique_rate", "novel_rate", "sun_rate", "n_relaxed",
                      "n_stable", "n_sun", "seconds_per_stable", "seconds_per_sun"}
    assert {k: v for k, v in record["metrics"].items() if k not in stability_keys} == \
        {k: v for k, v in sibling["metrics"].items() if k not in stability_keys}
    assert sibling["details"]["stability"]["relaxer"]["name"] == "emt-test"
    assert sibling["details"]["stability"]["relaxed_again_from"]["run_id"] == "custom-seed0"
    assert sibling["data"]["samples_sha256"] == record["data"]["samples_sha256"]
    assert (sibling_path.parent / "samples.extxyz.gz").read_bytes() == (source.parent / "samples.extxyz.gz").read_bytes()
    table = pd.read_parquet(sibling_path.parent / "per_sample.parquet")
    gold = table["formula"].isin(["Cu", "Au"])
    assert gold.any() and table.loc[gold, "e_hull"].notna().all()  # EMT relaxes the metals ...
    assert table.loc[~gold, "stability_error"].str.contains("EMT has no parameters").all()  # ... and no salt
    assert relaxer_siblings(source) == [sibling_path]
    # done already: the same command gives the same record; a sibling is not relaxed again
    assert main(["relax", str(source.parent), "--relaxer", "emt-test", "--no-progress"]) == 0
    assert main(["relax", str(sibling_path.parent), "--relaxer", "chgnet", "--no-progress"]) == 2
    assert "relaxed by emt-test; relax the protocol record instead" in capsys.readouterr().err

    # The same samples as an external set's record, which names its posted file (no copy): bench relax reads the file
    # back through the manifest, and the sibling names the same file.
    import shutil

    from harness import external
    from harness.io import sha256_file
    from harness.records import write_record
    from harness.samples import read_run_samples
    from tests.conftest import write_cif_csv

    posted = tmp_path / "external-samples" / "toy_tiny.csv.gz"  # beside the data folder
    write_cif_csv(posted, [s.structure for s in read_run_samples(source.parent / "samples.extxyz.gz", 8)])
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "toy.json").write_text(json.dumps({
        "schema_version": 1, "name": "toy", "model": "Toy", "paper": "Toy et al.", "dataset": "tiny",
        "trained_on": "train", "file": posted.name, "sha256": sha256_file(posted), "n_rows": 8,
        "source": "owner/repo@abc/toy.csv", "status": "raw", "caveats": []}))
    monkeypatch.setattr(external, "MANIFEST_DIR", tmp_path / "manifests")
    manifest = external.get_manifest("toy")
    run_dir = tmp_path / "results" / "tiny" / "external-toy" / "custom-seed0"
    shutil.copytree(source.parent, run_dir, ignore=shutil.ignore_patterns("samples.extxyz.gz"))
    write_record(run_dir, {**record, "kind": "external", "external": {**manifest.record_fields(), "manifest": "toy"},
                           "files": {"samples": None, "per_sample": "per_sample.parquet",
                                     "posted_samples": manifest.posted_samples()}})
    assert main(["relax", str(run_dir), "--relaxer", "emt-test", "--no-progress"]) == 0
    external_sibling = run_dir.with_name("custom-seed0-emt-test")
    assert load_record(external_sibling / "record.json")["files"]["posted_samples"] == manifest.posted_samples()
    assert not list(external_sibling.glob("samples.*"))
    again = pd.read_parquet(external_sibling / "per_sample.parquet")
    # the same samples, in the same order (the CIF round trip moves atoms by ~1e-9 Å), relaxed the same way
    assert np.allclose(again["e_hull"], table["e_hull"], atol=1e-6, equal_nan=True)
    posted.unlink()
    shutil.rmtree(external_sibling)
    assert main(["relax", str(run_dir), "--relaxer", "emt-test", "--no-progress"]) == 2
    assert "toy_tiny.csv.gz: missing" in capsys.readouterr().err


# ---- subnormal floats flushed in the model calls --------------------------------------------------------------

def _flushing() -> bool:
    """Whether this thread flushes subnormal floats now: 1e-39 is subnormal in float32."""
    import torch

    return float(torch.tensor([1e-39], dtype=torch.float32)[0] * 2.0) == 0.0


class ProbeRelaxer(EmtRelaxer):
    """EMT, noting in each prediction whether the model call ran with subnormals flushed; fails on gold."""

    def compute(self, prepared, task):
        if any("Au" in atoms.get_chemical_symbols() for atoms in prepared):
            raise RuntimeError("no gold")
        return [{**pred, "flushing": np.array(_flushing())} for pred in super().compute(prepared, task)]


def test_model_calls_flush_subnormals_and_leave_the_thread_as_they_found_it():
    import torch

    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormal floats")
    torch.set_flush_denormal(False)
    relaxer = ProbeRelaxer(EMT_SPEC)
    good, gold = fcc(3.8), fcc(3.9, ("Au", "Cu", "Cu", "Cu"))
    assert not _flushing()
    preds = relaxer.predict([good, gold, good], "efs", batch_size=8)
    assert preds[0]["flushing"] and preds[2]["flushing"]  # the batch failed, so each went alone: flushed too
    assert preds[1] == "RuntimeError: no gold"
    assert not _flushing()  # cleared after the calls, the failing one included
    relaxer.flush_denormals = False
    (pred,) = relaxer.predict([good], "efs", batch_size=8)
    assert not pred["flushing"] and not _flushing()


def test_chgnet_forces_and_stresses_are_the_same_with_subnormals_flushed():
    structures = [rattled(perovskite(), seed) for seed in range(3)]
    flushed = protocol_relaxer_predictions(structures)
    exact = protocol_relaxer_predictions(structures, flush_denormals=False)
    for a, b in zip(flushed, exact):
        assert a["e"] == pytest.approx(b["e"], abs=1e-7)
        np.testing.assert_allclose(a["f"], b["f"], atol=1e-6)
        np.testing.assert_allclose(a["s"], b["s"], atol=1e-5)


class BlasProbeRelaxer(EmtRelaxer):
    """EMT, noting the BLAS thread counts each model call ran under."""

    seen: list[list[int]] = []

    def compute(self, prepared, task):
        from threadpoolctl import threadpool_info

        BlasProbeRelaxer.seen.append([lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"])
        return super().compute(prepared, task)


class BlasProbePlugin:
    @hookimpl
    def xtalbench_register_relaxers(self, register):
        register(RelaxerSpec(name="emt-blas-probe", version="1", target="tests.test_relaxers:BlasProbeRelaxer",
                             package="ase", model="emt"))


def test_relaxations_run_blas_on_one_thread_and_give_the_pool_back():
    from threadpoolctl import threadpool_info, threadpool_limits

    set_registry(build_registry(extra_plugins=[BlasProbePlugin()]))
    try:
        seen = type(load_relaxer("emt-blas-probe")).seen  # the class as the registry imported it
        seen.clear()
        with threadpool_limits(limits=2, user_api="blas"):
            (result,) = relax_batched([rattled(fcc(3.75), 0)], RelaxSettings.for_relaxer("emt-blas-probe"))
            assert result.converged and len(seen) == result.steps + 1
            assert all(counts and set(counts) == {1} for counts in seen)
            assert {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"} == {2}
    finally:
        set_registry(None)
