"""Zoo downloads against hostile or broken servers on 127.0.0.1: stalls, trickles, cut
transfers without Content-Length, HTML pages, other URL schemes, planted links, damaged cached
files and two processes fetching one name."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from collapse_probe.errors import DownloadError
from collapse_probe.output import is_temp_name
from collapse_probe.checkpoints.files import check_torch_file
from collapse_probe.zoo import ZooEntry, cached_path, fetch
from layouts import planted_prototypes, write_dino
from zoo_server import PATH, ZooServer, server  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parent.parent



@pytest.fixture(scope="module")
def body(tmp_path_factory) -> bytes:
    prototypes = planted_prototypes(8, 2, 16, seed=5)[0]
    return write_dino(tmp_path_factory.mktemp("src") / "c.pth", prototypes=prototypes,
                      form="plain").read_bytes()


def _registry(server: ZooServer, body: bytes, mode: str = "ok", **changes: object) -> dict[str, ZooEntry]:
    """An entry without a recorded size or checksum, as 28 of the 29 real ones."""
    server.routes[PATH] = (body, mode)
    entry = ZooEntry(name="tiny_dino", family="dino", arch="ViT-T/16", dataset="ImageNet-1K",
                     num_prototypes=16, dim=16, url=server.url())
    return {"tiny_dino": replace(entry, **changes)}


def _files(cache: Path) -> list[str]:
    folder = cache / "zoo"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _no_final_and_no_temp(cache: Path) -> None:
    names = _files(cache)
    assert "tiny_dino.pth" not in names
    assert not [n for n in names if is_temp_name(n)]


def test_a_stalled_server_ends_with_a_clear_message(tmp_path, server, body):
    registry = _registry(server, body, "stall")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stalled") as exc:
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry, stall_s=0.5)
    assert "\n" not in str(exc.value) and time.monotonic() - started < 20
    _no_final_and_no_temp(tmp_path)


def test_a_trickle_ends_at_the_stall_deadline(tmp_path, server, body):
    registry = _registry(server, body, "drip")
    with pytest.raises(DownloadError, match=r"stalled: under 64 KiB in the last 1 s"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry, stall_s=1.0)
    _no_final_and_no_temp(tmp_path)


def test_headers_that_trickle_end_at_the_stall_deadline(tmp_path, server, body):
    registry = _registry(server, body, "drip-headers")  # every byte well within the timeout
    with pytest.raises(DownloadError, match="stalled") as exc:
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry, stall_s=1.0)
    assert "\n" not in str(exc.value)
    _no_final_and_no_temp(tmp_path)


def test_a_cut_transfer_without_content_length_is_caught(tmp_path, server, body):
    registry = _registry(server, body, "unsized-short")
    with pytest.raises(DownloadError, match="not a complete PyTorch checkpoint"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    _no_final_and_no_temp(tmp_path)


def test_an_html_page_is_not_cached(tmp_path, server):
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    registry = _registry(server, page)
    with pytest.raises(DownloadError, match="HTML or XML page"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    _no_final_and_no_temp(tmp_path)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:application/octet-stream;base64,UEsDBA==",
                                 "ftp://127.0.0.1/c.pth", "/etc/passwd"])
def test_only_http_and_https_are_fetched(tmp_path, url):
    entry = ZooEntry(name="tiny_dino", family="dino", arch="-", dataset="-", num_prototypes=16,
                     dim=16, url=url)
    with pytest.raises(DownloadError, match="only http:// and https://"):
        fetch("tiny_dino", cache_dir=tmp_path, registry={"tiny_dino": entry})
    assert _files(tmp_path) == []


def test_a_redirect_to_ftp_is_refused(tmp_path, server, body):
    registry = _registry(server, body, "redirect-ftp")
    with pytest.raises(DownloadError, match="non-HTTP URL"):
        fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    _no_final_and_no_temp(tmp_path)


def test_a_planted_part_symlink_is_not_written_through(tmp_path, server, body):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "tiny_dino.part").symlink_to(victim)
    (folder / "tiny_dino.pth.part").symlink_to(victim)
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=_registry(server, body))
    assert victim.read_text() == "precious"
    assert path.read_bytes() == body and not path.is_symlink()


def test_a_damaged_cached_file_is_detected_and_fetched_again(tmp_path, server, body):
    registry = _registry(server, body)
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    assert fetch("tiny_dino", cache_dir=tmp_path, registry=registry) == path
    assert server.hits[PATH] == 1
    path.write_bytes(body[: len(body) - 100])  # damaged in place: no size on record to compare
    assert cached_path("tiny_dino", cache_dir=tmp_path, registry=registry) is None
    assert fetch("tiny_dino", cache_dir=tmp_path, registry=registry).read_bytes() == body
    assert server.hits[PATH] == 2


def test_a_damaged_cached_file_with_a_checksum_on_record_is_fetched_again(tmp_path, server, body):
    registry = _registry(server, body, size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
    path = fetch("tiny_dino", cache_dir=tmp_path, registry=registry)
    damaged = bytearray(body)
    damaged[len(body) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(damaged))
    assert fetch("tiny_dino", cache_dir=tmp_path, registry=registry).read_bytes() == body
    assert server.hits[PATH] == 2


def test_downloads_get_the_umask_mode(tmp_path, server, body):
    old = os.umask(0o022)
    try:
        path = fetch("tiny_dino", cache_dir=tmp_path, registry=_registry(server, body))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


_FETCHER = textwrap.dedent("""
    import sys
    from collapse_probe.zoo import ZooEntry, fetch

    url, cache = sys.argv[1], sys.argv[2]
    entry = ZooEntry(name="tiny_dino", family="dino", arch="-", dataset="-", num_prototypes=16,
                     dim=16, url=url)
    print(fetch("tiny_dino", cache_dir=cache, registry={"tiny_dino": entry}))
""")


def test_two_processes_fetching_one_name(tmp_path, server, body):
    _registry(server, body, "slow")  # about 0.8 s per transfer, so the two overlap
    env = {**os.environ, "PYTHONPATH": str(ROOT), "no_proxy": "127.0.0.1,localhost"}
    children = [subprocess.Popen([sys.executable, "-c", _FETCHER, server.url(), str(tmp_path)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    final = tmp_path / "zoo" / "tiny_dino.pth"
    assert {out.strip() for out, _ in results} == {str(final)}
    assert final.read_bytes() == body and check_torch_file(final) == ""
    assert server.hits[PATH] == 1  # the second waited for the first and used its file
    assert not [n for n in _files(tmp_path) if is_temp_name(n)]
