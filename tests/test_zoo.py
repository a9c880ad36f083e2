"""The zoo: registry entries as data, and downloads against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import re
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from layouts import planted_prototypes, write_dino
from zoo_server import ZooServer, server  # noqa: F401 - the fixture

from collapse_probe.checkpoints import read_checkpoint
from collapse_probe.families import FORMATS
from collapse_probe.errors import DownloadError, InputError
from collapse_probe.zoo import ZOO, ZOO_ENTRIES, ZooEntry, cached_path, fetch, get_entry, zoo_dir

IBOT_FOLDERS = {"vits_16", "vitb_16", "vitl_16", "vitb_16_pt22k", "vitl_16_pt22k", "swint_7",
                "swint_14", "vitb_16_rand_mask", "vitl_16_rand_mask"}
DINO_RELEASES = {"dino_deitsmall16_pretrain", "dino_deitsmall8_pretrain", "dino_vitbase16_pretrain",
                 "dino_vitbase8_pretrain", "dino_resnet50_pretrain", "dino_xcit_small_12_p16_pretrain",
                 "dino_xcit_small_12_p8_pretrain", "dino_xcit_medium_24_p16_pretrain",
                 "dino_xcit_medium_24_p8_pretrain"}
MSN_RELEASES = {"vits16_800ep", "vitb16_600ep", "vitl16_600ep", "vitb4_300ep", "vitl7_200ep"}


# --------------------------------------------------------------------------- registry

def test_names_are_unique_and_keyed():
    names = [entry.name for entry in ZOO_ENTRIES]
    assert len(names) == len(set(names)) == len(ZOO)
    assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in names)


@pytest.mark.parametrize("entry", ZOO_ENTRIES, ids=lambda e: e.name)
def test_entry_fields(entry: ZooEntry):
    assert entry.family in FORMATS and entry.name.startswith(entry.family)
    assert entry.num_prototypes >= 1024 and entry.dim == 256
    assert entry.dataset in ("ImageNet-1K", "ImageNet-22K")
    assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert entry.sha256_prefix is None or re.fullmatch(r"[0-9a-f]{4,64}", entry.sha256_prefix)
    assert entry.size_bytes is None or entry.size_bytes > 0
    assert entry.paper_unique is None or 0 < entry.paper_unique < entry.num_prototypes
    if entry.family == "dino":
        match = re.fullmatch(r"https://dl\.fbaipublicfiles\.com/dino/(\w+)/(\w+)_full_checkpoint\.pth",
                             entry.url or "")
        assert match and match.group(1) == match.group(2) and match.group(1) in DINO_RELEASES
    elif entry.family == "ibot":
        match = re.fullmatch(r"https://lf3-nlp-opensource\.bytetos\.com/obj/nlp-opensource/archive/"
                             r"2022/ibot/(\w+)/checkpoint\.pth", entry.url or "")
        assert match and match.group(1) in IBOT_FOLDERS and entry.num_prototypes == 8192
    elif entry.family == "msn":
        match = re.fullmatch(r"https://dl\.fbaipublicfiles\.com/msn/(\w+)\.pth\.tar", entry.url or "")
        assert match and match.group(1) in MSN_RELEASES and entry.num_prototypes == 1024
        assert entry.filename == f"{entry.name}.pth.tar"
    else:
        assert entry.family == "esvit" and entry.url is None and "signed URL" in entry.notes


def test_every_release_is_listed_once():
    urls = [e.url for e in ZOO_ENTRIES if e.url]
    assert len(urls) == len(set(urls))
    assert {u.split("/")[4] for u in urls if "/dino/" in u} == DINO_RELEASES
    assert {u.split("/")[-2] for u in urls if "/ibot/" in u} == IBOT_FOLDERS
    assert {u.split("/")[-1].removesuffix(".pth.tar") for u in urls if "/msn/" in u} == MSN_RELEASES


def test_published_facts():
    assert ZOO["dino_vits16"].url.endswith("dino_deitsmall16_pretrain_full_checkpoint.pth")
    assert ZOO["dino_vitb16"].size_bytes == 871_077_689
    assert ZOO["dino_resnet50"].num_prototypes == 60000
    unique = {name: e.paper_unique for name, e in ZOO.items() if e.paper_unique is not None}
    assert unique == {"dino_vits16": 1078, "dino_resnet50": 984, "ibot_vitl16_in22k": 969,
                      "esvit_swint7": 1157}


def test_unknown_name_suggests_close_ones():
    with pytest.raises(InputError, match="unknown zoo name 'dino_vits61'.*dino_vits16"):
        get_entry("dino_vits61")


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("COLLAPSE_PROBE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo_dir() == tmp_path / "xdg" / "collapse-probe" / "zoo"
    monkeypatch.setenv("COLLAPSE_PROBE_CACHE", str(tmp_path / "mine"))
    assert zoo_dir() == tmp_path / "mine" / "zoo"
    assert zoo_dir(tmp_path / "arg") == tmp_path / "arg" / "zoo"


# --------------------------------------------------------------------------- downloads

@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    prototypes = planted_prototypes(8, 2, 16, seed=4)[0]
    return write_dino(tmp_path_factory.mktemp("src") / "c.pth", prototypes=prototypes,
                      form="plain").read_bytes()


def _entry(server: ZooServer, body: bytes, **changes: object) -> dict[str, ZooEntry]:
    server.routes["/tiny/checkpoint.pth"] = (body, "ok")
    entry = ZooEntry(name="tiny_dino", family="dino", arch="ViT-T/16", dataset="ImageNet-1K",
                     num_prototypes=16, dim=16, url=server.url("/tiny/checkpoint.pth"),
                     size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
    entry = replace(entry, **changes)
    return {entry.name: entry}


def _leftovers(cache: Path) -> list[str]:
    """What a fetch left in the cache, less its per-name lock and verification record."""
    folder = cache / "zoo"
    return sorted(p.name for p in folder.iterdir()
                  if not p.name.endswith((".lock", ".verified"))) if folder.exists() else []


def test_fetch_downloads_verifies_and_reuses_the_cache(tmp_path, server, checkpoint_bytes):
    registry = _entry(server, checkpoint_bytes)
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    assert path == tmp_path / "zoo" / "tiny_dino.pth"
    assert path.read_bytes() == checkpoint_bytes
    assert read_checkpoint(path).heads[0].num_prototypes == 16
    assert fetch("tiny_dino", cache_dir=tmp_path, registry=registry) == path
    assert server.hits == {"/tiny/checkpoint.pth": 1}
    assert cached_path("tiny_dino", cache_dir=tmp_path, registry=registry) == path
    assert _leftovers(tmp_path) == ["tiny_dino.pth"]


def test_progress_reports_the_bytes_received(tmp_path, server, checkpoint_bytes):
    seen = []
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=_entry(server, checkpoint_bytes),
                 progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == checkpoint_bytes
    assert seen and seen[-1] == (len(checkpoint_bytes), len(checkpoint_bytes))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_cached_file_of_the_wrong_size_is_downloaded_again(tmp_path, server, checkpoint_bytes):
    registry = _entry(server, checkpoint_bytes)
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "tiny_dino.pth").write_bytes(checkpoint_bytes[:100])
    assert cached_path("tiny_dino", cache_dir=tmp_path, registry=registry) is None
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    assert path.read_bytes() == checkpoint_bytes and server.hits["/tiny/checkpoint.pth"] == 1


@pytest.mark.parametrize("changes,phrase", [
    ({"size_bytes": 10}, "bytes, expected 10"),
    ({"sha256": "0" * 64}, "SHA-256"),
    ({"sha256": None, "sha256_prefix": "ffff0000"}, "SHA-256"),
])
def test_verification_failures_leave_no_file(tmp_path, server, checkpoint_bytes, changes, phrase):
    registry = _entry(server, checkpoint_bytes, **changes)
    with pytest.raises(DownloadError, match=phrase):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    assert _leftovers(tmp_path) == []


def test_truncated_transfer(tmp_path, server, checkpoint_bytes):
    registry = _entry(server, checkpoint_bytes, size_bytes=None, sha256=None)
    server.routes["/tiny/checkpoint.pth"] = (checkpoint_bytes, "short")
    with pytest.raises(DownloadError, match="cut short"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    assert _leftovers(tmp_path) == []


def test_http_404(tmp_path, server, checkpoint_bytes):
    registry = _entry(server, checkpoint_bytes, url=server.url("/gone.pth"))
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    assert _leftovers(tmp_path) == []


def test_connection_refused_reads_as_offline(tmp_path, checkpoint_bytes, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    entry = ZooEntry(name="tiny_dino", family="dino", arch="-", dataset="ImageNet-1K",
                     num_prototypes=16, dim=16, url=f"http://127.0.0.1:{port}/c.pth")
    with pytest.raises(DownloadError, match="appear to be offline") as exc:
        fetch("tiny_dino", cache_dir=tmp_path, registry={"tiny_dino": entry})
    message = str(exc.value)
    assert "curl -L -o tiny_dino.pth" in message and "pass the file's path" in message
    assert "\n" not in message
    assert _leftovers(tmp_path) == []


def test_entry_without_url_needs_one(tmp_path, server, checkpoint_bytes):
    registry = _entry(server, checkpoint_bytes, url=None, notes="pass the signed URL with --url")
    with pytest.raises(DownloadError, match="no public download URL: pass the signed URL"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=registry,
                 url=server.url("/tiny/checkpoint.pth") + "?sv=2020&sig=secret")
    assert path.read_bytes() == checkpoint_bytes


def test_signed_url_query_is_not_echoed_in_errors(tmp_path, server, checkpoint_bytes):
    registry = _entry(server, checkpoint_bytes, url=None)
    with pytest.raises(DownloadError, match="HTTP 404") as exc:
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry,
              url=server.url("/nope.pth") + "?sig=secret")
    assert "secret" not in str(exc.value) and "?<signature>" in str(exc.value)


def test_real_registry_entry_needs_a_url_for_esvit(tmp_path):
    with pytest.raises(DownloadError, match="esvit_swint7 has no public download URL.*url=<url>"):
        fetch("esvit_swint7", cache_dir=tmp_path)
    assert np.all([e.url is None for e in ZOO_ENTRIES if e.family == "esvit"])
