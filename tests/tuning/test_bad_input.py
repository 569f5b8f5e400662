"""A catalogue of bad input across every subcommand: each exits 2 with one paragraph that
names the file or option and the key, without a traceback, and leaves nothing behind
(no storage folder, no output folder; the files of an existing sweep folder unchanged).

Cases that need a Ray cluster (resources no node has) are in integration/test_sweep.py."""

import hashlib
import json
import shutil

import pytest
import yaml

from tuning.cli import main
from tuning.data import cifar10

from .conftest import free_port

GOOD = {
    "name": "bad",
    "workload": {"name": "digits_classifier", "hidden": [8]},
    "optimizer": {"name": "fishleg"},
    "training": {"epochs": 2, "device": "cpu"},
    "metric": {"name": "val_loss", "mode": "min"},
    "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True}},
    "search": {"num_samples": 2},
}
TRAIN = {"workload": {"name": "digits_classifier", "hidden": [8]}, "training": {"epochs": 1, "device": "cpu"}}


def merged(base, **sections):
    """`base` with sections replaced; training, search, scheduler, resources and metric merged."""
    out = json.loads(json.dumps(base))
    for key, value in sections.items():
        keep = key in ("training", "search", "scheduler", "resources", "metric")
        out[key] = {**out.get(key, {}), **value} if keep else value
    return out


def run(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, capsys.readouterr().err


def one_paragraph(err):
    text = err.strip()
    return text and "Traceback" not in text and "\n\n" not in text


# (name, sweep file content (None: GOOD), extra command-line arguments, fragments of the error)
SEARCH_CASES = [
    ("num-samples negative", None, ["--num-samples", "-1"], ["--num-samples", "greater than 0"]),
    ("num-samples zero", None, ["--num-samples", "0"], ["--num-samples", "greater than 0"]),
    ("max-concurrent negative", None, ["--max-concurrent", "-1"], ["--max-concurrent", "greater than 0"]),
    ("max-concurrent zero", None, ["--max-concurrent", "0"], ["--max-concurrent"]),
    ("num-samples not a number", None, ["--num-samples", "many"], ["--num-samples", "invalid int"]),
    ("name escapes", None, ["--name", "../escaped"], ["--name '../escaped'", "one folder name"]),
    ("name absolute", None, ["--name", "/etc/x"], ["--name '/etc/x'", "one folder name"]),
    ("name dot-dot", None, ["--name", ".."], ["one folder name"]),
    ("name in the file escapes", merged(GOOD, name="a/b"), [], ["name 'a/b'", "one folder name"]),
    ("name too long", None, ["--name", "n" * 300], ["--name: a sweep name of 300 characters is too long"]),
    ("name in the file too long", merged(GOOD, name="n" * 300), [], ["name: a sweep name of 300 characters"]),
    (
        "key typo in the file",
        merged(GOOD, training={"epoch": 2}),
        [],
        ["Did you mean training.epochs (for training.epoch)?"],
    ),
    (
        "trainable options nested",
        {**{k: v for k, v in GOOD.items() if k != "workload"}, "trainable": {"name": "m:f", "options": {"h": 1}}},
        ["--dry-run"],
        ["trainable: give the function's options beside its name, not under `options:`"],
    ),
    ("more CPUs than this machine has", None, ["resources.cpu=4096"], ["no node has 4096 CPU", "this machine"]),
    ("more GPUs than this machine has", None, ["resources.gpu=64"], ["no node has 64 GPU"]),
    ("more workers than fit here", None, ["resources.workers=64"], ["resources.workers: a trial asks for 64"]),
    ("sampler seed negative", None, ["search.seed=-1", "--dry-run"], ["search.seed", "greater than or equal to 0"]),
    ("epochs a boolean", None, ["training.epochs=true", "--dry-run"], ["epochs: expected a number, got true"]),
    ("lr a boolean", merged(GOOD, optimizer={"name": "fishleg", "damping": True}), [], ["damping: expected a number"]),
    (
        "mlflow sqlite store unwritable",
        None,
        ["mlflow.tracking_uri=sqlite:////proc/fishleg/mlflow.db", "--dry-run"],
        ["cannot write the sqlite store there", "/proc"],
    ),
    ("mlflow uri garbage", None, ["--mlflow-uri", "garbage"], ["--mlflow-uri garbage", "sqlite://"]),
    ("mlflow uri file scheme", None, ["--mlflow-uri", "file:///tmp/x"], ["--mlflow-uri file:///tmp/x"]),
    ("robust-top negative", None, ["--robust-top", "-1"], ["--robust-top", "must be >= 0"]),
    ("seeds zero", None, ["--seeds", "0"], ["--seeds", "must be >= 1"]),
    ("seeds past the bound", None, ["--seeds", "1000000000000"], ["--seeds 1000000000000", "selection.seeds", "64"]),
    ("robust_top in the file negative", merged(GOOD, selection={"robust_top": -2}), [], ["selection.robust_top"]),
    ("yaml is a list", [1, 2], [], ["expected a mapping"]),
    ("python tag", "!!python/object/apply:os.system ['true']\n", [], ["malformed YAML"]),
    (
        "malformed number",
        merged(GOOD, space={"optimizer.lr": {"type": "float", "low": "0.1.2", "high": 1}}),
        [],
        ["space.optimizer.lr", "low"],
    ),
    ("unknown param type", merged(GOOD, space={"optimizer.lr": {"type": "bool"}}), [], ["space.optimizer.lr.type"]),
    (
        "float with choices",
        merged(GOOD, space={"optimizer.lr": {"type": "float", "low": 0.1, "high": 1, "choices": [1]}}),
        [],
        ["space.optimizer.lr", "not 'choices'"],
    ),
    (
        "int bounds not whole",
        merged(GOOD, space={"optimizer.update_aux_every": {"type": "int", "low": 1.5, "high": 4}}),
        [],
        ["space.optimizer.update_aux_every", "whole numbers"],
    ),
    (
        "log with step",
        merged(GOOD, space={"optimizer.lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}}),
        [],
        ["'log' and 'step'"],
    ),
    ("mode unknown", merged(GOOD, metric={"mode": "maximize"}), [], ["metric.mode", "'min'"]),
    ("grace period zero", merged(GOOD, scheduler={"grace_period": 0}), [], ["scheduler.grace_period"]),
    ("reduction factor one", merged(GOOD, scheduler={"reduction_factor": 1}), [], ["scheduler.reduction_factor"]),
    ("cpu zero", merged(GOOD, resources={"cpu": 0}), [], ["resources.cpu", "greater than 0"]),
    ("gpu negative", merged(GOOD, resources={"gpu": -1}), [], ["resources.gpu"]),
    ("device unknown", merged(GOOD, training={"device": "tpu"}), [], ["training.device", "'auto'"]),
    ("cuda device without gpus", merged(GOOD, training={"device": "cuda"}), [], ["training.device", "resources.gpu"]),
    ("epochs zero", merged(GOOD, training={"epochs": 0}), [], ["training.epochs", "greater than 0"]),
    (
        "plugin is not a builder",
        merged(GOOD, workload={"name": "os:system"}),
        [],
        ["workload.name", "'os:system'", "not a workload builder"],
    ),
    ("plugin not callable", merged(GOOD, workload={"name": "os:sep"}), [], ["'os:sep' is not callable"]),
    (
        "plugin module missing",
        merged(GOOD, workload={"name": "no_such_mod:f"}),
        [],
        ["workload.name", "cannot load 'no_such_mod:f'"],
    ),
    (
        "both workload and trainable",
        merged(GOOD, trainable="tests.tuning.plugins:fit_quadratic"),
        [],
        ["give exactly one of workload:", "trainable:"],
    ),
    (
        "trainable module missing",
        {**{k: v for k, v in GOOD.items() if k != "workload"}, "trainable": "no_such_mod:fit"},
        [],
        ["trainable.name", "cannot load 'no_such_mod:fit'"],
    ),
    (
        "trainable not a training function",
        {**{k: v for k, v in GOOD.items() if k != "workload"}, "trainable": "tests.tuning.plugins:not_a_fit"},
        [],
        ["trainable.name", "not a training function", "(config: RunConfig, context: FitContext)"],
    ),
    (
        "cifar missing offline",
        merged(GOOD, workload={"name": "cifar10_resnet", "download": False, "data_dir": "DATA"}),
        [],
        ["CIFAR-10 is not in", "download: true"],
    ),
    (
        "mnist missing offline",
        merged(
            GOOD,
            workload={"name": "mnist_autoencoder", "download": False, "data_dir": "DATA"},
            metric={"name": "val_loss"},
        ),
        [],
        ["MNIST file", "is not in"],
    ),
    (
        "space value refused at an end",
        merged(GOOD, space={"optimizer.damping": {"type": "float", "low": 0, "high": 1}}),
        [],
        ["space.optimizer.damping at its low 0.0", "greater than 0"],
    ),
    (
        "point names an unknown key",
        merged(GOOD, search={"points_to_evaluate": [{"optimizer.lrr": 0.1}]}),
        [],
        ["points_to_evaluate[0]", "optimizer.lrr"],
    ),
]


@pytest.mark.parametrize(("case", "content", "extra", "fragments"), SEARCH_CASES, ids=[c[0] for c in SEARCH_CASES])
def test_search_refuses(tmp_path, capsys, case, content, extra, fragments):
    path = tmp_path / "sweep.yaml"
    content = GOOD if content is None else content
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path.write_text(text.replace("DATA", str(tmp_path / "data")))
    code, err = run(["search", str(path), "--storage-path", str(tmp_path / "runs"), *extra], capsys)
    assert code == 2, err
    assert one_paragraph(err), err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_search_refuses_a_data_set_it_cannot_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cifar10, "URL", f"http://127.0.0.1:{free_port()}/cifar-10-python.tar.gz")
    spec = merged(GOOD, workload={"name": "cifar10_resnet", "data_dir": str(tmp_path / "data")})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    code, err = run(["search", str(path), "--storage-path", str(tmp_path / "runs"), "--dry-run"], capsys)
    assert code == 2 and one_paragraph(err)
    assert "CIFAR-10 is not in" in err and "could not be downloaded" in err and "127.0.0.1" in err
    assert not (tmp_path / "runs").exists()


def test_search_refuses_non_utf8_files(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(b"name: \xff\xfe bad\n")
    code, err = run(["search", str(path)], capsys)
    assert code == 2 and "not UTF-8" in err and str(path) in err


TRAIN_CASES = [
    ("epochs negative", ["--epochs", "-3"], ["--epochs", "greater than 0"]),
    ("epochs zero", ["--epochs", "0"], ["--epochs", "greater than 0"]),
    ("device unknown", ["--device", "tpu"], ["--device", "'auto'"]),
    ("device this machine lacks", ["--device", "cuda:7"], ["training.device", "'cuda:7'", "CUDA device"]),
    ("mlflow uri garbage", ["--mlflow-uri", "garbage"], ["--mlflow-uri garbage"]),
    ("seed not a number", ["--seed", "x"], ["--seed", "invalid int"]),
]


@pytest.mark.parametrize(("case", "extra", "fragments"), TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses(tmp_path, capsys, case, extra, fragments):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(TRAIN))
    code, err = run(["train", str(path), "--output", str(tmp_path / "out"), *extra], capsys)
    assert code == 2, err
    assert one_paragraph(err), err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "out").exists()


def test_train_refuses_an_output_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(TRAIN))
    (tmp_path / "out").write_text("a file")
    code, err = run(["train", str(path), "--output", str(tmp_path / "out")], capsys)
    assert code == 2 and one_paragraph(err) and f"--output {tmp_path / 'out'}" in err
    assert (tmp_path / "out").read_text() == "a file"


def test_train_refuses_a_missing_file(tmp_path, capsys):
    code, err = run(["train", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml: cannot read the file" in err


@pytest.fixture
def sweep_folder(tmp_path):
    """A finished-looking sweep folder: metadata, sweep file, ledger, best config, a study."""
    import optuna

    folder = tmp_path / "runs" / "s"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump(GOOD))
    meta = {k: "x" for k in ("name", "sweep_file", "sweep_file_sha256", "experiment_id", "parent_run_id")}
    (folder / "sweep.json").write_text(json.dumps({**meta, "tune_storage": ".", "mlflow_uri": "."}))
    (folder / "trials.json").write_text(json.dumps([{"trial_id": "t1", "params": {"optimizer.lr": 0.1}}]))
    (folder / "best_config.yaml").write_text(yaml.safe_dump(TRAIN))
    optuna.create_study(study_name="s", storage=f"sqlite:///{folder / 'optuna.db'}")
    return folder


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


FOLDER_CASES = [
    ("resume: damaged sweep.json", ["resume"], "sweep.json", "{not json", ["sweep.json", "damaged"]),
    ("resume: sweep.json lacks keys", ["resume"], "sweep.json", '{"name": "s"}', ["sweep.json", "lacks"]),
    ("resume: damaged ledger", ["resume"], "trials.json", "[{", ["trials.json", "damaged", "nothing was changed"]),
    ("resume: ledger of the wrong shape", ["resume"], "trials.json", '[{"x": 1}]', ["trials.json", "damaged"]),
    ("resume: damaged sweep file", ["resume"], "sweep.yaml", "space: [", ["sweep.yaml", "malformed YAML"]),
    ("best: damaged ledger", ["best"], "trials.json", "nonsense", ["trials.json", "damaged"]),
    ("best: damaged best config", ["best"], "best_config.yaml", "workload: [", ["best_config.yaml", "malformed"]),
    ("best --json: damaged best config", ["best", "--json"], "best_config.yaml", "- 1", ["best_config.yaml"]),
    ("report: damaged study", ["report"], "optuna.db", "not sqlite", ["optuna.db", "Optuna study"]),
    ("report: damaged ledger", ["report"], "trials.json", "{", ["trials.json", "damaged"]),
]


@pytest.mark.parametrize(
    ("case", "command", "name", "content", "fragments"), FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES]
)
def test_sweep_folder_commands_refuse_damaged_files(sweep_folder, capsys, case, command, name, content, fragments):
    (sweep_folder / name).write_text(content)
    before = digest(sweep_folder)
    code, err = run([command[0], str(sweep_folder), *command[1:]], capsys)
    assert code == 2, err
    assert one_paragraph(err), err
    for fragment in fragments:
        assert fragment in err, err
    assert digest(sweep_folder) == before


@pytest.mark.parametrize("command", ["resume", "best", "report"])
def test_sweep_folder_commands_refuse_a_folder_that_is_not_a_sweep(tmp_path, capsys, command):
    code, err = run([command, str(tmp_path)], capsys)
    assert code == 2 and one_paragraph(err) and str(tmp_path) in err
    assert list(tmp_path.iterdir()) == []


def test_best_top_must_be_positive(sweep_folder, capsys):
    code, err = run(["best", str(sweep_folder), "--top", "0"], capsys)
    assert code == 2 and "--top" in err


def test_compare_refuses_bad_counts_and_unlike_files(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(GOOD))
    b.write_text(yaml.safe_dump(merged(GOOD, workload={"name": "digits_autoencoder"})))
    code, err = run(["compare", str(a), str(a), "--top-k", "0"], capsys)
    assert code == 2 and "--top-k" in err
    code, err = run(["compare", str(a), str(b), "--storage-path", str(tmp_path / "cmp")], capsys)
    assert code == 2 and one_paragraph(err) and "differ in `workload:`" in err
    a2 = tmp_path / "a2.yaml"
    shutil.copy(a, a2)
    code, err = run(
        ["compare", str(a), str(a2), "--num-samples", "-1", "--storage-path", str(tmp_path / "cmp")], capsys
    )
    assert code == 2 and "--num-samples" in err
    code, err = run(["compare", str(a), "--storage-path", str(tmp_path / "cmp")], capsys)
    assert code == 2 and one_paragraph(err) and "at least two sweep files; got 1" in err
    code, err = run(["compare", str(a), "training.epochs=1", str(a2), "--storage-path", str(tmp_path / "cmp")], capsys)
    assert code == 2 and one_paragraph(err) and "sweep files come before the KEY=VALUE overrides" in err
    code, err = run(["compare", str(a), str(a2), str(b), "--storage-path", str(tmp_path / "cmp")], capsys)
    assert code == 2 and f"{a} and {b} differ in `workload:`" in err
    code, err = run(["compare", str(a), str(a2), "training.epoch=1", "--storage-path", str(tmp_path / "cmp")], capsys)
    assert code == 2 and "did you mean training.epochs?" in err
    again = str(tmp_path / ".." / tmp_path.name / "a.yaml")  # the same file by another path
    code, err = run(["compare", str(a), again, "--storage-path", str(tmp_path / "cmp")], capsys)
    assert code == 2 and one_paragraph(err) and "is given more than once; a sweep compared with itself" in err
    for option, value, most in (("--seeds", "1000000000000", 64), ("--top-k", "21", 20)):
        code, err = run(["compare", str(a), str(a2), option, value, "--storage-path", str(tmp_path / "cmp")], capsys)
        assert code == 2 and one_paragraph(err) and f"{option} {value} is more than {most}" in err
    assert not (tmp_path / "cmp").exists()


def test_cluster_check_refuses_an_unreachable_address_and_a_bad_file(tmp_path, capsys):
    code, err = run(["cluster-check", "--address", f"127.0.0.1:{free_port()}"], capsys)
    assert code == 2 and "no Ray cluster answers" in err
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(merged(GOOD, resources={"cpu": -1})))
    code, err = run(["cluster-check", str(path)], capsys)
    assert code == 2 and "resources.cpu" in err and str(path) in err


MARKUP = "[/b][bold red]"  # rich markup: printed as markup it would raise MarkupError or restyle the text


def test_user_text_that_looks_like_markup_is_printed_as_it_is(tmp_path, capsys):
    odd = tmp_path / f"x{MARKUP}y"
    odd.mkdir(parents=True)
    spec = odd / "sweep.yaml"
    spec.write_text(yaml.safe_dump(merged(GOOD, name="odd")))
    assert main(["search", str(spec), "--storage-path", str(odd / "runs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert str(odd / "runs" / "odd") in out and "MarkupError" not in out
    cases = [
        (["search", str(odd / "missing.yaml")], str(odd / "missing.yaml")),
        (["search", str(spec), f"{MARKUP}=1", "--dry-run"], MARKUP),
        (["train", str(spec), f"optimizer.q_structure={MARKUP}"], MARKUP),
        (["best", str(odd / "nothing")], str(odd / "nothing")),
        (["report", str(odd / "nothing")], str(odd / "nothing")),
    ]
    for argv, shown in cases:
        code, err = run(argv, capsys)
        assert code == 2 and one_paragraph(err) and shown in err.replace("\n", ""), (argv, err)
    bad_choice = odd / "choice.yaml"
    space = {"optimizer.q_structure": {"type": "categorical", "choices": ["kron", MARKUP]}}
    bad_choice.write_text(yaml.safe_dump(merged(GOOD, space=space)))
    code, err = run(["search", str(bad_choice), "--dry-run"], capsys)
    assert code == 2 and one_paragraph(err) and MARKUP in err.replace("\n", "")


def test_a_training_module_that_raises_on_import_is_named_as_the_users_code(tmp_path, capsys, monkeypatch):
    package = tmp_path / "brokenpkg_at_import"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text("x = 1\nraise RuntimeError('broken at import')\n")
    spec = tmp_path / "own.yaml"
    spec.write_text(
        yaml.safe_dump(
            {**{k: v for k, v in GOOD.items() if k != "workload"}, "trainable": "brokenpkg_at_import.train:fit"}
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = run(["search", str(spec), "--dry-run"], capsys)
    assert code == 1 and one_paragraph(err) and "error in your code" in err
    assert "importing brokenpkg_at_import.train raised RuntimeError: broken at import" in err
    assert f"{package / 'train.py'}:2 in <module>" in err
