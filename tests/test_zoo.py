"""Zoo files (edgeguard/bench/zoo.py): the schema, its errors, and the learned-only rule."""
import json
from types import SimpleNamespace

import pytest

from benchmarks.scan import ZOO_DIR
from edgeguard.bench.zoo import RESEED, ZooError, load_zoo, parse_zoo, train_zoo

GOOD = {"dataset": "gaze", "epochs": 4, "models": [
    {"attack": "none", "seed": 1},
    {"attack": "none", "seed": 2, "name": "calm"},
    {"attack": "badnets", "seed": 3, "target": [0.1, -0.2], "poison_rate": 0.2, "options": {"size": 6}},
    {"attack": "badnets", "seed": 4, "target": [-0.3, 0.4], "epochs": 7},
    {"attack": "wanet", "seed": 5, "target": [0.0, 0.0], "options": {"s": 8.0}},
]}


def test_a_zoo_round_trips_through_its_file(tmp_path):
    zoo = parse_zoo(GOOD)
    assert [m.name for m in zoo.models] == ["benign-0", "calm", "badnets-0", "badnets-1", "wanet-0"]
    assert [m.index for m in zoo.models] == [0, 1, 0, 1, 0] and zoo.attacks == ["badnets", "wanet"]
    assert zoo.retry_epochs == 8 and zoo.min_learned == 0.8  # defaults: 2 x epochs, the gaze bar
    path = tmp_path / "zoo.json"
    path.write_text(json.dumps(zoo.to_dict()))
    again = load_zoo(path)
    assert again.models == zoo.models and again.to_dict() == zoo.to_dict()


def test_victim_configs_carry_each_models_settings():
    zoo = parse_zoo(GOOD)
    benign, _, patched, late, _ = zoo.models
    c = zoo.victim_config(patched)
    assert c.seed == 3 and c.train.seed == 3 and c.train.epochs == 4 and c.n_train == zoo.n_train
    assert c.attack_options == {"size": 6, "target": (0.1, -0.2), "poison_rate": 0.2}
    assert zoo.victim_config(late).train.epochs == 7
    retry = zoo.victim_config(patched, epochs=8, seed=3 + RESEED)
    assert retry.seed == 3 + RESEED and retry.train.epochs == 8 and retry.train.seed == 3 + RESEED
    assert zoo.victim_config(benign).attack == "none" and zoo.victim_config(benign).attack_options == {}
    assert c.width == 0.25  # the VictimConfig default, so a zoo without "width" keeps its cache keys
    narrow = parse_zoo({**GOOD, "width": 0.125})
    assert narrow.victim_config(narrow.models[2]).width == 0.125 and narrow.to_dict()["width"] == 0.125


def test_the_committed_zoos_load_and_meet_the_issue_sizes():
    sizes = {}
    for path in sorted(ZOO_DIR.glob("*.json")):
        zoo = load_zoo(path)
        benign = sum(m.benign for m in zoo.models)
        per_attack = {a: sum(m.attack == a for m in zoo.models) for a in zoo.attacks}
        sizes[path.stem] = (benign, per_attack)
    assert sizes["gaze_quick"][0] >= 8 and len(sizes["gaze_quick"][1]) == 4
    assert min(sizes["gaze_quick"][1].values()) >= 4
    assert sizes["signs_quick"][0] >= 5 and sizes["signs_quick"][1] == {"badnets": 5}


@pytest.mark.parametrize("change, words", [
    (lambda z: z["models"][2].pop("target"), ["models[2]", "target"]),
    (lambda z: z["models"][2].update(target=[0.1]), ["models[2].target", "pitch, yaw"]),
    (lambda z: z["models"][3].update(seed=1), ["models[3].seed", "models[0]"]),
    (lambda z: z["models"][4].update(options={"s": 8.0, "warp": 1}), ["models[4]", "warp"]),
    (lambda z: z["models"][4].update(attack="nonexistent"), ["models[4]", "unknown attack"]),
    (lambda z: z["models"][2].update(poison_rate=1.5), ["models[2].poison_rate"]),
    (lambda z: z["models"][1].update(target=[0.0, 0.0]), ["models[1]", "benign"]),
    (lambda z: z["models"][2].update(colour="red"), ["models[2]", "colour"]),
    (lambda z: z["models"][2]["options"].update(target=[0, 0]), ["models[2].options", "target"]),
    (lambda z: z["models"][1].update(name="benign-0"), ["models[1].name"]),
    (lambda z: z.update(epochs=0), ["epochs"]),
    (lambda z: z.update(width=0), ["width"]),
    (lambda z: z.update(width="narrow"), ["width"]),
    (lambda z: z.update(dataset="pose"), ["dataset"]),
    (lambda z: z.update(task="gaze"), ["dataset", "task", "not both"]),
    (lambda z: z.update(modles=[]), ["modles"]),
    (lambda z: z.update(models=[m for m in z["models"] if m["attack"] != "none"]), ["benign"]),
])
def test_a_bad_zoo_names_the_entry_and_field(change, words):
    data = json.loads(json.dumps(GOOD))
    change(data)
    with pytest.raises(ZooError) as err:
        parse_zoo(data, "my_zoo.json")
    for word in ["my_zoo.json", *words]:
        assert word in str(err.value)


def test_unreadable_zoo_files_are_refused(tmp_path):
    with pytest.raises(ZooError, match="does not exist"):
        load_zoo(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{models: ")
    with pytest.raises(ZooError, match="not valid JSON"):
        load_zoo(tmp_path / "bad.json")
    with pytest.raises(ZooError, match="'models'"):
        parse_zoo({"dataset": "gaze"})


def test_signs_targets_are_class_ids():
    zoo = parse_zoo({"dataset": "signs", "models": [{"attack": "none", "seed": 1},
                                                 {"attack": "badnets", "seed": 2, "target": 7}]})
    assert zoo.min_learned == 0.9 and zoo.victim_config(zoo.models[1]).attack_options["target"] == 7
    with pytest.raises(ZooError, match=r"models\[1\].target"):
        parse_zoo({"dataset": "signs", "models": [{"attack": "none", "seed": 1},
                                                  {"attack": "badnets", "seed": 2, "target": 43}]})


def test_only_learned_backdoors_enter_the_zoo_after_bounded_retries():
    """A fake trainer: ASR by (seed, epochs). badnets-0 learns at once, badnets-1 only with
    more epochs, wanet-0 only with another seed; one more model never learns and is dropped."""
    zoo = parse_zoo({**GOOD, "models": GOOD["models"] + [{"attack": "wanet", "seed": 6, "target": [0.0, 0.1]}]})
    asr = {(3, 4): 0.95, (4, 7): 0.3, (4, 8): 0.85, (5, 4): 0.1, (5, 8): 0.2, (5 + RESEED, 8): 0.9,
           (6, 4): 0.0, (6, 8): 0.1, (6 + RESEED, 8): 0.79}
    calls = []

    def fake_get_victim(config, progress=False):
        calls.append((config.attack, config.seed, config.train.epochs))
        metrics = {"clean_err_deg": 3.0} if config.attack == "none" else \
            {"asr_at_5deg": asr[(config.seed, config.train.epochs)]}
        return SimpleNamespace(config=config, metrics=metrics)

    members, dropped = train_zoo(zoo, get_victim=fake_get_victim)
    kept = {m.name: v.config for m, v in members}
    assert list(kept) == ["benign-0", "calm", "badnets-0", "badnets-1", "wanet-0"]
    assert (kept["badnets-1"].seed, kept["badnets-1"].train.epochs) == (4, 8)
    assert (kept["wanet-0"].seed, kept["wanet-0"].train.epochs) == (5 + RESEED, 8)
    assert [d["name"] for d in dropped] == ["wanet-1"]
    assert [t["learned"] for t in dropped[0]["tries"]] == [0.0, 0.1, 0.79]  # 0.79 < 0.8: still out
    assert len(calls) == 2 + 1 + 2 + 3 + 3  # at most three tries a model, none for benign ones


def test_a_subset_keeps_names_and_indices_and_refuses_unknown_names():
    zoo = parse_zoo(GOOD, "my_zoo.json")
    part = zoo.subset(["wanet-0", "calm"])
    assert [m.name for m in part.models] == ["calm", "wanet-0"] and part.models[1].index == 0
    with pytest.raises(ZooError, match="badnets-7"):
        zoo.subset(["badnets-7"])


def test_benchmark_jobs_map_in_worker_processes_matches_the_sequential_map():
    from benchmarks.scan import _map

    jobs = [(2, 10), (3, 4), (5, 0)]
    assert _map(pow, jobs, 2) == _map(pow, jobs, 1) == [1024, 81, 1]


def test_machine_record_names_the_cpu_and_its_vector_extensions_on_x86_and_arm():
    from benchmarks.common import cpu_and_isa

    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma bmi2\n\n" \
          "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx2 fma bmi2\n"
    assert cpu_and_isa(x86, "x86_64") == ("AMD EPYC 7B13", ["avx2", "fma"])
    orin = "processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes asimddp\nCPU part\t: 0xd42\n"
    assert cpu_and_isa(orin, "aarch64") == ("aarch64", ["asimd", "asimddp"])
    assert cpu_and_isa("", "unknown") == ("unknown", [])


def test_task_is_read_as_the_older_name_of_dataset():
    old = parse_zoo({"task": "signs", "models": [{"attack": "none", "seed": 1}]})
    assert old.dataset == "signs" and old.to_dict()["dataset"] == "signs" and "task" not in old.to_dict()
