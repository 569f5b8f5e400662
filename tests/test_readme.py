"""The README's commands exist: every `fishleg-tune` line in its shell blocks resolves through
the command's own parser (subcommands, flags and `KEY=VALUE` overrides), every `make` target
is in the Makefile, every script and module it runs exists, every page it links to exists,
its Python blocks are Python, and those that build FishLeg run and step. (That the training
function and `tuning.search` run is tested where they are exercised:
tests/tuning/integration/test_own_package.py, tests/examples/test_charlm.py.)"""

import ast
import re
import shlex

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fishleg
from tests.conftest import ROOT
from tuning.cli import build_parser, main, parse

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```([a-z]*)\n(.*?)```", README, re.S)


def shell_commands() -> list[list[str]]:
    """Each command of the README's bash blocks, comments and line continuations removed."""
    commands = []
    for lang, body in BLOCKS:
        if lang != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


COMMANDS = shell_commands()


def test_the_readme_is_a_short_guide():
    assert len(README.splitlines()) <= 250
    assert len(COMMANDS) > 20


@pytest.mark.parametrize(
    "argv", [c[1:] for c in COMMANDS if c[0] == "fishleg-tune"], ids=lambda argv: " ".join(argv)[:60]
)
def test_every_fishleg_tune_command_resolves(argv, capsys):
    try:
        args = parse(build_parser(), argv)
    except SystemExit as exc:  # --version exits 0 after printing
        assert argv == ["--version"] and exc.code == 0, capsys.readouterr().err
        return
    first = next(word for word in argv if not word.startswith("-"))
    assert args.command == first and args.func.__name__ == {"list": "list_sweeps"}.get(first, first).replace("-", "_")


@pytest.mark.parametrize("argv", [c[1:] for c in COMMANDS if c[0] == "fishleg-tune" and "--dry-run" in c], ids=" ".join)
def test_every_dry_run_the_readme_shows_succeeds(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main([*argv, "--storage-path", str(tmp_path)]) == 0, capsys.readouterr().err


def test_every_make_target_script_module_and_link_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    for words in COMMANDS:
        if words[0] == "make":
            assert words[1] in targets, words
        for module in (words[i + 1] for i, word in enumerate(words[:-1]) if word == "-m"):  # python -m, torchrun -m
            if module.startswith("examples."):
                assert (ROOT / (module.replace(".", "/") + ".py")).exists(), words
        if words[0] in ("python", "python3") and words[1].endswith(".py"):
            assert (ROOT / words[1]).exists(), words
        for word in words:
            if word.endswith(".yaml") and word.startswith(("search_spaces/", "examples/", "configs/")):
                assert (ROOT / word).exists(), words
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:  # links and images, from each page's folder
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not link.startswith("http"):
                assert (page.parent / link).exists(), f"{page.name}: {link}"


def test_the_python_blocks_that_build_fishleg_run_and_step(tmp_path, monkeypatch):
    """The blocks that build the optimizer run as written (keywords, config loading), on the
    names they assume (a model, a loader, train_inputs, a sweep's best config), and step."""
    blocks = [body for lang, body in BLOCKS if lang == "python"]
    assert len(blocks) >= 3
    for body in blocks:
        ast.parse(body)
    monkeypatch.chdir(tmp_path)
    best = tmp_path / "fishleg-runs" / "quickstart" / "best_config.yaml"
    best.parent.mkdir(parents=True)
    best.write_text("optimizer: {name: fishleg, lr: 0.05, aux_lr: 0.001, damping: 0.1, update_aux_every: 1}\n")
    x, y = torch.randn(64, 8), torch.randint(3, (64,))
    building = [body for body in blocks if "opt = fishleg.FishLeg" in body]
    assert len(building) == 2
    for body in building:
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
        names = {"fishleg": fishleg, "model": model, "train_inputs": x, "loader": DataLoader(TensorDataset(x, y), 16)}
        exec(body, names)
        opt = names["opt"]
        assert isinstance(opt, fishleg.FishLeg)
        before = [p.detach().clone() for p in model.parameters()]
        opt.zero_grad()
        opt.likelihood.nll(model(x), y).backward()
        opt.step()
        assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
