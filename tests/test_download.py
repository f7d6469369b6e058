"""Pretrained weights by name: download with resume, verification, conversion, and the CLI.

Every download here is served by a loopback HTTP server the test starts on 127.0.0.1 (no network).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from i3d_train.errors import ConfigError
from i3d_train.features.run import load_i3d
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.inception_v1 import InceptionV1
from i3d_train.resources import kinetics400_classes
from i3d_train.train.transfer import ProtocolError
from i3d_train.weights import registry
from i3d_train.weights.download import ChecksumError, DownloadError, fetch, file_hash
from i3d_train.weights.imagenet import init_from_imagenet
from i3d_train.weights.loading import load_init_state_dict
from i3d_train.weights.pretrained import WeightsError, install
from tests.test_inflate import torchvision_googlenet_state_dict

ROOT = Path(__file__).resolve().parents[1]


def blob_sha1(data: bytes) -> str:
    """Git's blob id, computed here from its definition (independently of the code under test)."""
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\x00" + data).hexdigest()


class Server:
    """A loopback HTTP server for ``files`` (name -> bytes) that honours ``Range: bytes=N-`` (unless
    ``ranges=False``) and, with ``drop_after=K``, sends only K bytes of a file's first response before
    closing the connection. ``requests`` records ``(path, Range header)``. Stops on leaving ``with``."""

    def __init__(self, files: dict[str, bytes], drop_after: int | None = None, ranges: bool = True) -> None:
        self.files, self.drop_after, self.ranges = files, drop_after, ranges
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                first = all(p != self.path for p, _ in server.requests)
                server.requests.append((self.path, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                m = re.fullmatch(r"bytes=(\d+)-", rng or "") if server.ranges else None
                start = int(m[1]) if m else 0
                if m and start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if m else 200)
                if m:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if first and server.drop_after is not None:
                    self.wfile.write(body[: server.drop_after])  # then the connection drops
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def port_checkpoint_bytes(num_classes: int, in_channels: int, seed: int) -> tuple[bytes, InceptionI3d]:
    """A state dict as the PyTorch port's files hold it: its exact key names (the module names of its
    ``InceptionI3d``), no ``num_batches_tracked`` (saved before those existed), serialised by torch.save."""
    torch.manual_seed(seed)
    ref = InceptionI3d(num_classes, in_channels=in_channels)
    with torch.no_grad():
        for k, v in ref.state_dict().items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 2.0)
    port = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert "Mixed_4b.b1b.conv3d.weight" in port and "logits.conv3d.bias" in port  # the port's names
    assert "Conv3d_1a_7x7.bn.running_mean" in port and port["Conv3d_1a_7x7.conv3d.weight"].shape[1] == in_channels
    buf = io.BytesIO()
    torch.save(port, buf)
    return buf.getvalue(), ref


@pytest.fixture(scope="module")
def flow_port():
    return port_checkpoint_bytes(400, 2, seed=7)


def run_weights(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "i3d_train.weights", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hashes_are_git_blob_ids_and_sha256(tmp_path):
    data = np.random.default_rng(0).bytes(300_001)
    (tmp_path / "f.bin").write_bytes(data)
    assert file_hash(tmp_path / "f.bin", registry.GIT_BLOB_SHA1) == blob_sha1(data)
    assert file_hash(tmp_path / "f.bin", registry.SHA256) == hashlib.sha256(data).hexdigest()
    if shutil.which("git"):  # the id GitHub lists for a file is what `git hash-object` prints
        out = subprocess.run(["git", "hash-object", str(tmp_path / "f.bin")], capture_output=True, text=True)
        assert file_hash(tmp_path / "f.bin", registry.GIT_BLOB_SHA1) == out.stdout.strip()


def test_fetch_verifies_then_renames_and_a_mismatch_is_kept_aside(tmp_path):
    data = np.random.default_rng(1).bytes(2_500_000)
    with Server({"a.bin": data}) as srv:
        dest = fetch(f"{srv.url}/a.bin", tmp_path / "a.bin", registry.GIT_BLOB_SHA1, blob_sha1(data), progress=False)
        assert dest.read_bytes() == data and not (tmp_path / "a.bin.part").exists()
        # a SHA-256 prefix (as torchvision's file names carry) is checked as a prefix
        prefix = hashlib.sha256(data).hexdigest()[:8]
        fetch(f"{srv.url}/a.bin", tmp_path / "b.bin", registry.SHA256, prefix, progress=False)
        wrong = "0" * 40 if not blob_sha1(data).startswith("0") else "1" * 40
        with pytest.raises(ChecksumError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/a\.bin") as e:
            fetch(f"{srv.url}/a.bin", tmp_path / "c.bin", registry.GIT_BLOB_SHA1, wrong, progress=False)
        assert "\n" not in str(e.value) and blob_sha1(data) in str(e.value)
    assert not (tmp_path / "c.bin").exists() and not (tmp_path / "c.bin.part").exists()
    assert (tmp_path / "c.bin.bad").read_bytes() == data  # kept aside, not lost, not used


def test_resume_after_the_connection_drops_mid_file(tmp_path):
    data = np.random.default_rng(2).bytes(3_000_000)
    k = 1_234_567
    with Server({"w.pt": data}, drop_after=k) as srv:
        fetch(f"{srv.url}/w.pt", tmp_path / "w.pt", registry.GIT_BLOB_SHA1, blob_sha1(data), progress=False)
    assert srv.requests == [("/w.pt", None), ("/w.pt", f"bytes={k}-")]
    assert (tmp_path / "w.pt").read_bytes() == data

    # without retries the partial file stays, and the next run resumes it
    with Server({"w.pt": data}, drop_after=k) as srv:
        with pytest.raises(DownloadError, match=f"connection lost.*{k:,} bytes kept"):
            fetch(f"{srv.url}/w.pt", tmp_path / "x.pt", registry.GIT_BLOB_SHA1, blob_sha1(data), retries=0)
        assert (tmp_path / "x.pt.part").stat().st_size == k and not (tmp_path / "x.pt").exists()
        fetch(f"{srv.url}/w.pt", tmp_path / "x.pt", registry.GIT_BLOB_SHA1, blob_sha1(data), progress=False)
    assert srv.requests[-1] == ("/w.pt", f"bytes={k}-") and (tmp_path / "x.pt").read_bytes() == data

    # a server that ignores Range sends the whole file: the stale .part is replaced, not appended to
    (tmp_path / "y.pt.part").write_bytes(b"stale bytes")
    with Server({"w.pt": data}, ranges=False) as srv:
        fetch(f"{srv.url}/w.pt", tmp_path / "y.pt", registry.GIT_BLOB_SHA1, blob_sha1(data), progress=False)
    assert srv.requests == [("/w.pt", "bytes=11-")] and (tmp_path / "y.pt").read_bytes() == data


def test_unreachable_server_and_missing_file_are_one_line_errors(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = registry.get("flow-imagenet")
    with pytest.raises(WeightsError) as e:
        install(entry, tmp_path / "w", base_url=f"http://127.0.0.1:{port}", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and f"cannot reach http://127.0.0.1:{port}/flow_imagenet.pt" in msg
    assert f"convert pytorch-i3d --src <file> --out {tmp_path / 'w' / 'i3d_kinetics400_flow.pt'}" in msg
    with Server({}) as srv, pytest.raises(WeightsError, match=r"/flow_imagenet\.pt: HTTP 404"):
        install(entry, tmp_path / "w", base_url=srv.url, progress=False)
    assert not any((tmp_path / "w").glob("*.pt"))


def test_a_verified_file_that_does_not_convert_writes_nothing(tmp_path):
    junk = b"not a checkpoint" * 100
    with Server({"rgb_charades.pt": junk, "googlenet-1378be20.pth": junk}) as srv:
        with pytest.raises(
            WeightsError, match=r"verified, but not convertible: .*rgb_charades\.pt: not a PyTorch checkpoint"
        ):
            install(registry.get("rgb-charades"), tmp_path, base_url=srv.url, expected_hash=blob_sha1(junk))
        prefix = hashlib.sha256(junk).hexdigest()[:8]
        with pytest.raises(WeightsError, match="not convertible"):
            install(registry.get("googlenet-imagenet"), tmp_path, base_url=srv.url, expected_hash=prefix)
    assert (tmp_path / "rgb_charades.pt").read_bytes() == junk and not (tmp_path / "i3d_charades_rgb.pt").exists()


def test_download_converts_a_served_port_flow_checkpoint(tmp_path, flow_port):
    data, ref = flow_port
    out = tmp_path / "weights"
    entry = registry.get("flow-imagenet")
    with Server({"flow_imagenet.pt": data}) as srv:
        # the registry's hash is the real file's: this one is refused, kept aside, not converted
        with pytest.raises(WeightsError, match="checksum mismatch"):
            install(entry, out, base_url=srv.url, progress=False)
        assert (out / "flow_imagenet.pt.bad").read_bytes() == data and not (out / "i3d_kinetics400_flow.pt").exists()
        result = install(entry, out, base_url=srv.url, expected_hash=blob_sha1(data), progress=False)
    assert result.target == out / "i3d_kinetics400_flow.pt"
    model = InceptionI3d(400, in_channels=2)
    model.load_state_dict(torch.load(out / "i3d_kinetics400_flow.pt", weights_only=True), strict=True)
    for k, v in ref.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[k], v), k
    assert (out / "i3d_kinetics400_flow.pt.labels.txt").read_text().splitlines() == kinetics400_classes()
    assert (out / "flow_imagenet.pt").read_bytes() == data  # the verified original is kept
    # it is what the flow stream of the transfer protocols and of feature extraction read
    assert load_i3d(out / "i3d_kinetics400_flow.pt", "flow").Mixed_5c.b3b.conv3d.weight.shape[1] == 832
    again = install(entry, out, base_url="http://127.0.0.1:9/unused", progress=False)
    assert again.skipped and "exists, not replaced" in again.lines[0]


def test_googlenet_is_verified_by_sha256_prefix_and_inflates(tmp_path):
    torch.manual_seed(3)
    net2d = InceptionV1(1000)
    buf = io.BytesIO()
    torch.save(torchvision_googlenet_state_dict(net2d), buf)
    data = buf.getvalue()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    entry = registry.get("googlenet-imagenet")
    with Server({"googlenet-1378be20.pth": data}) as srv:
        result = install(entry, tmp_path / "w", base_url=srv.url, expected_hash=prefix, progress=False)
    path = tmp_path / "w" / "googlenet-1378be20.pth"
    assert result.target == path and path.read_bytes() == data and "loads into InceptionV1" in result.lines[-1]
    net3d = InceptionI3d(5)
    assert init_from_imagenet(net3d, path) == [""]  # model.imagenet_weights=weights/googlenet-1378be20.pth
    assert torch.allclose(net3d.Mixed_4c.b1b.conv3d.weight.sum(2), net2d.Mixed_4c.b1b.conv2d.weight, atol=1e-6)


def test_missing_weights_name_the_download_command(tmp_path):
    flow = tmp_path / "weights" / "i3d_kinetics400_flow.pt"
    make = f"`python -m i3d_train.weights download flow-imagenet --out {tmp_path / 'weights'}`"
    with pytest.raises(ProtocolError, match=re.escape(make)):
        load_init_state_dict(flow)
    with pytest.raises(ConfigError, match=re.escape(make)):  # extract.py's weights.flow
        load_i3d(flow, "flow")
    with pytest.raises(ProtocolError, match=re.escape("python -m i3d_train.weights list")):
        load_init_state_dict(tmp_path / "mine.pt")


@pytest.mark.slow
def test_extract_py_without_the_flow_weights_names_the_download_command(tmp_path):
    (tmp_path / "weights").mkdir()
    torch.save(InceptionI3d(400).state_dict(), tmp_path / "weights" / "i3d_kinetics400_rgb.pt")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "extract.py"), "input=videos/", "modalities=[rgb,flow]"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: initial weights weights/i3d_kinetics400_flow.pt not found "
        "(make it: `python -m i3d_train.weights download flow-imagenet --out weights`)"
    )


def test_defaults_of_the_configs_are_the_names_download_writes():
    from omegaconf import OmegaConf

    def raw(name: str) -> dict:
        return OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / name), resolve=False)

    weights = raw("extract.yaml")["weights"]
    assert weights["rgb"] == "${paths.root_dir}/weights/" + registry.get("rgb-imagenet").target
    assert weights["flow"] == "${paths.root_dir}/weights/" + registry.get("flow-imagenet").target
    for p in ("fixed", "full_ft"):  # the protocols start from each model's own Kinetics weights
        assert raw(f"protocol/{p}.yaml")["init_weights"] == "${model.kinetics_weights}"
    for model in ("i3d", "i3d_two_stream"):
        init = raw(f"model/{model}.yaml")["kinetics_weights"]
        assert init.replace("{modality}", "flow") == weights["flow"]
        assert registry.download_command(init.replace("{modality}", "rgb")) == (
            "python -m i3d_train.weights download rgb-imagenet --out ${paths.root_dir}/weights"
        )


def test_list_command(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "i3d_charades_rgb.pt").write_bytes(b"x")
    proc = run_weights(["list"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for e in registry.ENTRIES:
        assert e.name in proc.stdout and e.target in proc.stdout
    assert "git-blob-sha1 ef0e7c282a102f76b14b52643574b80acba4e475" in proc.stdout
    assert "sha256 1378be20" in proc.stdout
    assert re.search(r"rgb-charades: .*\[present\]", proc.stdout) and re.search(
        r"rgb-imagenet: .*\[missing\]", proc.stdout
    )
    bad = run_weights(["download", "rgb-imagenet-v2"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "expected one of rgb-imagenet" in bad.stderr


def test_download_command_against_a_loopback_server(tmp_path, flow_port):
    data, ref = flow_port
    with Server({"flow_imagenet.pt": data, "rgb_charades.pt": b"not a checkpoint"}) as srv:
        # the mirror from the environment, the registry's hash: a served file that is not the real one is refused
        proc = run_weights(["download", "rgb-charades"], tmp_path, I3D_TRAIN_WEIGHTS_URL=srv.url)
        assert proc.returncode == 1 and proc.stderr.startswith("error: checksum mismatch for ")
        assert proc.stderr.count("\n") == 1 and f"{srv.url}/rgb_charades.pt" in proc.stderr
        assert (tmp_path / "weights" / "rgb_charades.pt.bad").exists()
        assert not (tmp_path / "weights" / "i3d_charades_rgb.pt").exists()
        # --base-url with --hash: downloaded, verified, converted
        args = ["download", "flow-imagenet", "--out", "weights", "--base-url", srv.url, "--hash", blob_sha1(data)]
        proc = run_weights(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"downloaded {srv.url}/flow_imagenet.pt -> weights/flow_imagenet.pt" in proc.stdout
    assert "wrote weights/i3d_kinetics400_flow.pt (" in proc.stdout and "400 classes, 2 input channels" in proc.stdout
    sd = torch.load(tmp_path / "weights" / "i3d_kinetics400_flow.pt", weights_only=True)
    assert torch.equal(sd["Mixed_3c.b2b.conv3d.weight"], ref.Mixed_3c.b2b.conv3d.weight)


@pytest.mark.slow
def test_readme_quick_path_two_stream_features(tmp_path):
    """README: download rgb-imagenet and flow-imagenet (here from a loopback mirror), then
    `python extract.py modalities=[rgb,flow]` with the default weights paths."""
    from i3d_train.data.synthetic import SyntheticConfig, render_video
    from i3d_train.video.writer import write_video

    rgb, _ = port_checkpoint_bytes(400, 3, seed=8)
    flow, _ = port_checkpoint_bytes(400, 2, seed=9)
    with Server({"rgb_imagenet.pt": rgb, "flow_imagenet.pt": flow}) as srv:
        for name, data in (("rgb-imagenet", rgb), ("flow-imagenet", flow)):
            proc = run_weights(["download", name, "--base-url", srv.url, "--hash", blob_sha1(data)], tmp_path)
            assert proc.returncode == 0, proc.stderr[-2000:]
    write_video(tmp_path / "v.mp4", render_video(SyntheticConfig(num_frames=20, height=64, width=80), 1, 1), 25)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["input=v.mp4", "modalities=[rgb,flow]", "flow.method=farneback", "short_side=64", "crop_size=56"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "extract.py"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "features" / "v.json").read_text())
    assert manifest["modalities"] == ["rgb", "flow"]
    assert manifest["weights"] == {
        "rgb": "./weights/i3d_kinetics400_rgb.pt",
        "flow": "./weights/i3d_kinetics400_flow.pt",
    }
    assert np.load(tmp_path / "features" / "v_rgb.npy").shape == np.load(tmp_path / "features" / "v_flow.npy").shape
