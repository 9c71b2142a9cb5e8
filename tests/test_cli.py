"""The command line: contract files, refusing finished runs, resuming, bad input."""

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import gan_lessons  # noqa: F401
from gan_lessons import callbacks, checks, data, gan, metrics, recipes, runs
from gan_lessons.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished_gan(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gan"
    assert main(["train", "gan", "--out", str(out), "--quick", "--epochs", "2"]) == 0
    return out


def test_train_writes_the_contract_files(finished_gan):
    out = finished_gan
    for name in ("generator.keras", "samples.png", "history.json", "run.json"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and len(history["seconds"]) == 2
    assert len(history["d_loss"]) == 2 and len(history["g_loss"]) == 2
    # single_input: Keras 3.10 (Colab) lists a loaded model's one input and warns on a bare array.
    generator = metrics.single_input(keras.saving.load_model(out / "generator.keras", compile=False))
    images = np.asarray(generator(np.zeros((3, generator.input_shape[-1]), "float32")))
    assert images.shape == (3, 28, 28, 1) and images.min() >= -1 and images.max() <= 1


def test_a_finished_run_is_refused_and_left_intact(finished_gan, capsys):
    before = _digest(finished_gan)
    assert main(["train", "gan", "--out", str(finished_gan), "--quick", "--epochs", "2"]) == 2
    assert "finished" in capsys.readouterr().err
    assert _digest(finished_gan) == before


def test_bad_input_gives_one_sentence_and_exit_2(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["train", "gan", "--out", str(a_file), "--quick"]) == 2
    assert "is a file" in capsys.readouterr().err and a_file.read_text() == "keep me"

    out = tmp_path / "big-batch"
    assert main(["train", "gan", "--out", str(out), "--quick", "--batch-size", "100000"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and "at most" in err
    assert not out.exists()

    stranger = tmp_path / "other"
    stranger.mkdir()
    (stranger / "data.csv").write_text("1,2")
    assert main(["train", "gan", "--out", str(stranger), "--quick"]) == 2
    assert "holds no gan_lessons run" in capsys.readouterr().err
    assert (stranger / "data.csv").read_text() == "1,2"


@pytest.mark.parametrize("args, words", [
    (["train", "vae", "--out", "x"], "argument MODEL: invalid choice: 'vae'"),
    (["train", "gan", "--out", "x", "--epochs", "0"], "--epochs must be a positive integer"),
    (["train", "gan", "--out", "x", "--batch-size", "-4"], "--batch-size must be a positive integer"),
    (["train", "gan", "--out", "x", "--seed", "-1"], "--seed must be a non-negative integer"),
])
def test_argument_errors(args, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert stop.value.code == 0
    for option in ("--out", "--epochs", "--batch-size", "--seed", "--quick", "MODEL", "dcgan", " cgan "):
        assert option in text


def test_ctrl_c_then_the_same_command_resumes(tmp_path):
    out, epochs = tmp_path / "gan", 30  # the MLP GAN: quick epochs, enough of them that Ctrl-C arrives mid-run
    args = [sys.executable, "-m", "gan_lessons", "train", "gan", "--out", str(out), "--quick", "--epochs", str(epochs)]
    env = {**os.environ, "GAN_LESSONS_QUICK": "1", "PYTHONUNBUFFERED": "1"}
    # Restore the default Ctrl-C handling in the child: a shell that starts this test in the
    # background hands its children SIGINT ignored, and Python then keeps ignoring it.
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    history = out / "history.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if history.is_file() and len(json.loads(history.read_text() or "{}").get("epoch", [])) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout
    assert "run the same command again" in stdout.lower()
    done = json.loads(history.read_text())["epoch"]
    assert 2 <= len(done) < epochs
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "generator.keras").exists()

    resumed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {len(done)} of {epochs}" in resumed.stdout
    final = json.loads(history.read_text())
    assert final["epoch"] == list(range(1, epochs + 1))  # each epoch once: continued, not restarted
    assert (out / "generator.keras").is_file()


def test_evaluate_prints_json(finished_gan, capsys):
    assert main(["evaluate", str(finished_gan), "--n", "200"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed[printed.index("{"):])
    assert metrics["model"] == "gan"
    for key in ("fid", "fid_floor", "classes_covered", "inception_score", "kid", "kid_std", "precision", "recall",
                "density", "coverage", "copying_ratio", "near_copies"):
        assert isinstance(metrics[key], (int, float)), key
    assert 1 <= metrics["inception_score"] <= 10 and 0 <= metrics["coverage"] <= 1


def test_evaluate_refuses_a_folder_without_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no run.json" in capsys.readouterr().err


def test_evaluate_refuses_an_unfinished_run(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"model": "gan", "epochs": 3, "batch_size": 64, "seed": 0,
                                                   "quick": True, "status": "running"}))
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds an unfinished run; finish it with the same 'train' command before you evaluate it." in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("record, words", [
    ("[1, 2]", "not a gan_lessons run record (bad or missing: model, epochs"),
    ('{"model": "gan", "epochs": 3}', "bad or missing: batch_size, seed, quick, status"),
    ('{"model": "gan", "epochs": true, "batch_size": 64, "seed": 0, "quick": true, "status": "running"}',
     "bad or missing: epochs"),
    ('{"model": "vae", "epochs": 3, "batch_size": 64, "seed": 0, "quick": true, "status": "running"}',
     "bad or missing: model"),
    ("{not json", "is not readable JSON"),
])
def test_a_broken_run_record_gets_one_sentence(tmp_path, capsys, record, words):
    (tmp_path / "run.json").write_text(record)
    for args in (["train", "gan", "--out", str(tmp_path), "--quick"], ["evaluate", str(tmp_path)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_resuming_with_other_options_is_refused(tmp_path, capsys):
    out = tmp_path / "gan"
    run = {"model": "gan", "epochs": 3, "batch_size": 64, "seed": 0, "quick": True, "status": "running"}
    out.mkdir()
    (out / "run.json").write_text(json.dumps(run))
    cases = [(["--epochs", "4"], "--epochs 4 differs"), (["--batch-size", "32"], "--batch-size 32 differs"),
             (["--seed", "1"], "--seed 1 differs")]
    for extra, words in cases:
        assert main(["train", "gan", "--out", str(out), "--quick", *extra]) == 2
        assert words in capsys.readouterr().err
    assert main(["train", "dcgan", "--out", str(out), "--quick"]) == 2
    assert "holds an unfinished gan run, not dcgan" in capsys.readouterr().err
    (out / "run.json").write_text(json.dumps({**run, "quick": False}))
    assert main(["train", "gan", "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "--quick (or GAN_LESSONS_QUICK=1) is given, but the unfinished run in" in err and "is a full run" in err
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # left as it was


def test_a_generator_keras_cannot_load_gets_one_sentence(finished_gan, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("run.json", "history.json"):
        (broken / name).write_text((finished_gan / name).read_text())
    (broken / "generator.keras").write_text("not a zip file")
    assert main(["evaluate", str(broken), "--n", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken / 'generator.keras'} could not be loaded: ")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("model", ["dcgan", "cgan"])
def test_dcgan_and_cgan_save_the_averaged_generator(tmp_path, monkeypatch, model):
    built, recipe = [], recipes.RECIPES[model]
    monkeypatch.setitem(recipes.RECIPES, model, dataclasses.replace(
        recipe, build=lambda *args: built.append(recipe.build(*args)) or built[-1]))
    assert main(["train", model, "--out", str(tmp_path / "dc"), "--quick", "--epochs", "1"]) == 0
    trainer, extra = built[0]
    assert [type(c) for c in extra] == [callbacks.GeneratorAverage]
    saved = keras.saving.load_model(tmp_path / "dc" / "generator.keras", compile=False).get_weights()
    assert all(np.array_equal(s, a) for s, a in zip(saved, trainer.generator_average.get_weights()))
    assert any(not np.allclose(s, r) for s, r in zip(saved, trainer.generator.get_weights()))



def test_evaluate_refuses_a_failed_run_and_says_what_to_do(tmp_path, capsys):
    record = {"model": "gan", "epochs": 3, "batch_size": 64, "seed": 0, "quick": True, "status": "failed",
              "failure": "Training stopped at step 4: d_loss became nan."}
    (tmp_path / "run.json").write_text(json.dumps(record))
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "failed (Training stopped at step 4: d_loss became nan.)" in err and "in another folder" in err


def test_evaluate_needs_ten_samples(finished_gan, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", str(finished_gan), "--n", "5"])
    assert "--n must be an integer >= 10; got 5." in capsys.readouterr().err


def test_a_run_keeps_the_mnist_it_started_with(finished_gan, tmp_path, capsys, monkeypatch):
    # The run records the MNIST it trained on: "bundled" offline, "full" where Keras reaches it.
    assert json.loads((finished_gan / "run.json").read_text())["source"] == data.mnist_source()
    out = tmp_path / "started-online"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"model": "gan", "epochs": 2, "batch_size": 64, "seed": 0,
                                              "quick": True, "source": "full", "status": "running"}))

    def offline():
        raise Exception("URL fetch failure")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    assert main(["train", "gan", "--out", str(out), "--quick"]) == 2  # not silently resumed on other digits
    err = capsys.readouterr().err
    assert "full MNIST could not be downloaded" in err and err.count("\n") == 1
    assert json.loads((out / "run.json").read_text())["status"] == "running"


# ------------------------------------------------------------------ bad input: one sentence, exit 2, nothing written


def _one_sentence(capsys):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _copy_run(source, target, names=("run.json", "history.json")):
    target.mkdir()
    for name in names:
        (target / name).write_bytes((source / name).read_bytes())
    return target


def test_a_generator_of_another_architecture_is_refused(finished_gan, tmp_path, capsys):
    folder = _copy_run(finished_gan, tmp_path / "swapped")
    gan.mlp_discriminator().save(folder / "generator.keras")  # a network, but not a generator
    before = _digest(folder)
    assert main(["evaluate", str(folder), "--n", "20"]) == 2
    err = _one_sentence(capsys)
    assert f"{folder / 'generator.keras'} holds a network from inputs of shape (28, 28, 1) to outputs of shape" in err
    assert _digest(folder) == before


@pytest.mark.filterwarnings("ignore:Skipping")  # Keras's warnings on the mismatched backup, before it is refused
def test_a_backup_of_other_networks_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "gan"
    out.mkdir()
    record = {"model": "gan", "epochs": 2, "batch_size": 64, "seed": 0, "quick": True, "source": "bundled",
              "status": "running"}
    (out / "run.json").write_text(json.dumps(record))
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 2), "float32")
    other.fit(x, x[:, :1], epochs=1, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False)])
    before = _digest(out / "backup")
    assert main(["train", "gan", "--out", str(out), "--quick"]) == 2
    err = _one_sentence(capsys)
    assert f"The backup in {out / 'backup'} does not fit this model" in err
    assert _digest(out / "backup") == before and sorted(p.name for p in out.iterdir()) == ["backup", "run.json"]
    assert json.loads((out / "run.json").read_text()) == record


def test_an_autoencoder_of_another_architecture_is_refused(tmp_path, capsys):
    out = tmp_path / "diffusion"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"model": "diffusion", "epochs": 1, "batch_size": 128, "seed": 0,
                                              "quick": True, "source": "bundled", "status": "running"}))
    for name in ("encoder.keras", "decoder.keras"):
        keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]).save(out / name)
    before = _digest(out)
    assert main(["train", "diffusion", "--out", str(out), "--quick"]) == 2
    assert "encoder.keras holds a network from inputs of shape (28, 28, 1) to outputs of shape (3,)" in _one_sentence(
        capsys)
    assert _digest(out) == before


def test_a_folder_that_cannot_be_made_is_refused(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["train", "gan", "--out", str(a_file / "run"), "--quick"]) == 2
    assert "cannot be made" in _one_sentence(capsys) and a_file.read_text() == "keep me"
    assert main(["evaluate", str(a_file)]) == 2
    assert "holds no gan_lessons run" in _one_sentence(capsys)


def test_the_library_calls_refuse_in_one_sentence(tmp_path):
    with pytest.raises(checks.BadArgument, match=r"^model must be one of 'gan', .*; got 'vae'\.$"):
        runs.train("vae", tmp_path / "vae")
    with pytest.raises(checks.BadArgument, match=r"^epochs must be a positive integer; got 0\.$"):
        runs.train("gan", tmp_path / "gan", epochs=0)
    assert list(tmp_path.iterdir()) == []


def test_sample_refuses_a_gan_run_and_writes_nothing(finished_gan, tmp_path, capsys):
    assert main(["sample", str(finished_gan), "--out", str(tmp_path / "x.npz")]) == 2
    assert "'sample' draws from a diffusion run" in _one_sentence(capsys)
    assert list(tmp_path.iterdir()) == []
