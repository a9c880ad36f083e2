"""The public checkpoints that ship their prototype heads, as typed data; download, verify, cache.

Only releases *with* heads are listed (DINO's ``*_full_checkpoint.pth``, iBOT's ``checkpoint.pth``,
MSN's ``.pth.tar``, EsViT's checkpoints); backbone-only files hold no prototypes.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._version import __version__
from .cache import cache_dir as _cache_root
from .errors import CollapseProbeError, DownloadError, InputError, option
from .hashing import file_sha256
from .output import open_output, output_error
from .checkpoints.files import check_torch_file

__all__ = ["ZooEntry", "ZOO_ENTRIES", "ZOO", "ZOO_NAMES", "get_entry", "zoo_dir", "cached_path", "fetch",
           "verify_download", "STALL_S"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # at most 1 MiB per read: progress updates often enough, syscalls stay few
#: A download that receives less than 64 KiB in this many seconds is abandoned (s).
STALL_S = 60.0
_STALL_BYTES = 64 * 1024


@dataclass(frozen=True)
class ZooEntry:
    """One public checkpoint with prototype heads.

    Attributes:
        name: the zoo name users type (``dino_vits16``).
        family: its checkpoint family (a :data:`collapse_probe.families.FAMILIES` name).
        arch: backbone (``ViT-S/16``).
        dataset: pretraining data.
        num_prototypes: K of its main head.
        dim: D, the prototype dimension.
        url: where to download it; None when the host needs a per-user signed URL (EsViT).
        size_bytes: the file size when known (verified after download).
        sha256: the full SHA-256 when known (verified after download).
        paper_unique: unique prototypes reported by the prototype-collapse paper, if published.
        notes: anything a user should know (unverified facts, how to get the URL).
        sha256_prefix: the leading hex digits of the SHA-256 when only those are published.
    """

    name: str
    family: str
    arch: str
    dataset: str
    num_prototypes: int
    dim: int
    url: str | None
    size_bytes: int | None = None
    sha256: str | None = None
    paper_unique: int | None = None
    notes: str = ""
    sha256_prefix: str | None = None

    def __post_init__(self) -> None:
        from .families import family

        family(self.family)  # a zoo entry names one of the checkpoint families

    @property
    def verification(self) -> str:
        """How a download is checked: ``sha256`` (full checksum recorded), ``size`` (size and/or
        a published checksum prefix), or ``structure`` (only that it is a
        complete PyTorch file). Every download gets the structure check as well."""
        if self.sha256:
            return "sha256"
        if self.size_bytes is not None or self.sha256_prefix:
            return "size"
        return "structure"

    @property
    def filename(self) -> str:
        """The cached file's name: the zoo name plus the URL's suffix (``.pth``, ``.pth.tar``)."""
        suffix = ".pth"
        if self.url is not None:
            base = Path(urllib.parse.urlparse(self.url).path).name
            suffix = ".pth.tar" if base.endswith(".pth.tar") else (Path(base).suffix or ".pth")
        return f"{self.name}{suffix}"


_DINO = "https://dl.fbaipublicfiles.com/dino/{0}/{0}_full_checkpoint.pth"
_IBOT = "https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/{0}/checkpoint.pth"
_MSN = "https://dl.fbaipublicfiles.com/msn/{0}.pth.tar"
_IN1K, _IN22K = "ImageNet-1K", "ImageNet-22K"
_UNVERIFIED_FORM = "last-layer storage form unverified (every form is handled)"
_ESVIT_URL = "the file needs the signed URL printed in the microsoft/esvit README"


def _dino(name: str, release: str, arch: str, **kwargs: object) -> ZooEntry:
    return ZooEntry(name=name, family="dino", arch=arch, dataset=_IN1K,
                    num_prototypes=int(kwargs.pop("num_prototypes", 65536)), dim=256,
                    url=_DINO.format(release), **kwargs)  # type: ignore[arg-type]


def _ibot(name: str, folder: str, arch: str, dataset: str = _IN1K, **kwargs: object) -> ZooEntry:
    return ZooEntry(name=name, family="ibot", arch=arch, dataset=dataset, num_prototypes=8192,
                    dim=256, url=_IBOT.format(folder),
                    notes=kwargs.pop("notes", "shared [CLS]/patch head: reported once"),  # type: ignore[arg-type]
                    **kwargs)  # type: ignore[arg-type]


def _msn(name: str, release: str, arch: str) -> ZooEntry:
    return ZooEntry(name=name, family="msn", arch=arch, dataset=_IN1K, num_prototypes=1024, dim=256,
                    url=_MSN.format(release), notes="top-level prototypes shared by both networks")


def _esvit(name: str, arch: str, **kwargs: object) -> ZooEntry:
    return ZooEntry(name=name, family="esvit", arch=arch, dataset=_IN1K, num_prototypes=65536,
                    dim=256, url=None, notes=_ESVIT_URL, **kwargs)  # type: ignore[arg-type]


#: Every entry, in display order.
ZOO_ENTRIES: tuple[ZooEntry, ...] = (
    _dino("dino_vits16", "dino_deitsmall16_pretrain", "ViT-S/16", paper_unique=1078,
          notes="weight-norm last layer"),
    _dino("dino_vits8", "dino_deitsmall8_pretrain", "ViT-S/8", notes=_UNVERIFIED_FORM),
    _dino("dino_vitb16", "dino_vitbase16_pretrain", "ViT-B/16", size_bytes=871_077_689,
          sha256_prefix="491ec620", notes="plain last layer"),
    _dino("dino_vitb8", "dino_vitbase8_pretrain", "ViT-B/8", notes=_UNVERIFIED_FORM),
    _dino("dino_resnet50", "dino_resnet50_pretrain", "ResNet-50", num_prototypes=60000,
          paper_unique=984, notes="plain last layer; teacher keys carry module."),
    _dino("dino_xcit_small_12_p16", "dino_xcit_small_12_p16_pretrain", "XCiT-S12/16",
          notes=_UNVERIFIED_FORM),
    _dino("dino_xcit_small_12_p8", "dino_xcit_small_12_p8_pretrain", "XCiT-S12/8",
          notes=_UNVERIFIED_FORM),
    _dino("dino_xcit_medium_24_p16", "dino_xcit_medium_24_p16_pretrain", "XCiT-M24/16",
          notes=_UNVERIFIED_FORM),
    _dino("dino_xcit_medium_24_p8", "dino_xcit_medium_24_p8_pretrain", "XCiT-M24/8",
          notes=_UNVERIFIED_FORM),
    _ibot("ibot_vits16", "vits_16", "ViT-S/16"),
    _ibot("ibot_vitb16", "vitb_16", "ViT-B/16"),
    _ibot("ibot_vitl16", "vitl_16", "ViT-L/16"),
    _ibot("ibot_vitb16_in22k", "vitb_16_pt22k", "ViT-B/16", dataset=_IN22K),
    _ibot("ibot_vitl16_in22k", "vitl_16_pt22k", "ViT-L/16", dataset=_IN22K, paper_unique=969),
    _ibot("ibot_swint7", "swint_7", "Swin-T/7"),
    _ibot("ibot_swint14", "swint_14", "Swin-T/14"),
    _ibot("ibot_vitb16_rand_mask", "vitb_16_rand_mask", "ViT-B/16",
          notes="random masking variant; shared head reported once"),
    _ibot("ibot_vitl16_rand_mask", "vitl_16_rand_mask", "ViT-L/16",
          notes="random masking variant; shared head reported once"),
    _msn("msn_vits16", "vits16_800ep", "ViT-S/16"),
    _msn("msn_vitb16", "vitb16_600ep", "ViT-B/16"),
    _msn("msn_vitl16", "vitl16_600ep", "ViT-L/16"),
    _msn("msn_vitb4", "vitb4_300ep", "ViT-B/4"),
    _msn("msn_vitl7", "vitl7_200ep", "ViT-L/7"),
    _esvit("esvit_swint7", "Swin-T/7", paper_unique=1157),
    _esvit("esvit_swint14", "Swin-T/14"),
    _esvit("esvit_swins7", "Swin-S/7"),
    _esvit("esvit_swins14", "Swin-S/14"),
    _esvit("esvit_swinb7", "Swin-B/7"),
    _esvit("esvit_swinb14", "Swin-B/14"),
)
#: name -> entry.
ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in ZOO_ENTRIES}
ZOO_NAMES: tuple[str, ...] = tuple(ZOO)


def get_entry(name: str, *, registry: Mapping[str, ZooEntry] | None = None) -> ZooEntry:
    """The entry called ``name``; :class:`InputError` listing close names otherwise."""
    entries = ZOO if registry is None else registry
    entry = entries.get(name)
    if entry is None:
        import difflib

        close = difflib.get_close_matches(name, list(entries), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown zoo name {name!r}.{hint} See `collapse-probe zoo list`.")
    return entry


def zoo_dir(cache_dir: Path | str | None = None) -> Path:
    """Where zoo downloads live: ``<cache>/zoo`` (``$COLLAPSE_PROBE_CACHE``, else
    ``$XDG_CACHE_HOME/collapse-probe``, else ``~/.cache/collapse-probe``)."""
    return _cache_root(cache_dir) / "zoo"


def _lock_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.lock")


def _stamp_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.verified")


def _fingerprint(info: os.stat_result) -> dict[str, int]:
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "inode": info.st_ino}


def _stamped(final: Path, info: os.stat_result, entry: ZooEntry) -> bool:
    """Whether ``final`` was verified before and has not changed since (size, mtime, inode)."""
    import json

    try:
        stamp = json.loads(_stamp_path(final).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(stamp, dict) and stamp.get("file") == _fingerprint(info)
            and stamp.get("sha256") == (entry.sha256 or entry.sha256_prefix))


def _stamp(final: Path, entry: ZooEntry) -> None:
    import json

    from .output import write_text

    try:
        record = {"file": _fingerprint(os.stat(final)), "sha256": entry.sha256 or entry.sha256_prefix}
        write_text(_stamp_path(final), json.dumps(record) + "\n")
    except (OSError, CollapseProbeError) as exc:  # only a cache of the check: it is redone
        log.debug("cannot record the verification of %s: %s", final, exc)


def _verified(final: Path, entry: ZooEntry) -> bool:
    """Whether the cached ``final`` is a complete, correct copy (re-checked when it changed)."""
    try:
        info = os.stat(final)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if entry.size_bytes is not None and info.st_size != entry.size_bytes:
        log.warning("%s: cached %s has %d bytes, expected %d: fetching it again", entry.name,
                    final, info.st_size, entry.size_bytes)
        return False
    if _stamped(final, info, entry):
        return True
    try:
        verify_download(final, entry)
    except DownloadError as exc:
        log.warning("%s: cached %s is damaged (%s): fetching it again", entry.name, final, exc)
        return False
    _stamp(final, entry)
    return True


def cached_path(name: str, *, cache_dir: Path | str | None = None,
                registry: Mapping[str, ZooEntry] | None = None) -> Path | None:
    """The cached file of ``name`` if it is there and verifies (recorded size and SHA-256, else
    a complete PyTorch file), else None. A file verified once is re-checked only when changed."""
    entry = get_entry(name, registry=registry)
    path = zoo_dir(cache_dir) / entry.filename
    return path if _verified(path, entry) else None


@contextlib.contextmanager
def _download_lock(lock: Path, name: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock``: one process downloads a name, the others wait
    for it and then use its file."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise output_error(exc, lock) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another process is downloading it; waiting", name)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def fetch(name: str, *, cache_dir: Path | str | None = None, url: str | None = None,
          progress: Callable[[int, int | None], None] | None = None,
          registry: Mapping[str, ZooEntry] | None = None,
          stall_s: float = STALL_S) -> Path:
    """Download zoo checkpoint ``name`` into the cache (once) and return its path.

    The file is streamed to a temporary file of this process (created new, never through a
    link) under a per-name lock, so concurrent fetches of one name download it once. It is
    verified - the declared Content-Length, the recorded size and SHA-256 when known, and in
    every case that it is a complete PyTorch file (zip directory and every record present, or
    a whole legacy file) - and only then renamed to its final name. A cached file is verified
    the same way (once, and again whenever it changes) and fetched again when damaged.

    Args:
        name: a zoo name (see :data:`ZOO`).
        cache_dir: override the cache folder.
        url: download from here instead of the entry's URL (EsViT's signed URLs; mirrors);
            only ``http`` and ``https``.
        progress: called as ``progress(bytes received, bytes expected or None)`` while the
            file arrives (the command line draws its bar from it).
        registry: the entries to look ``name`` up in (default :data:`ZOO`).
        stall_s: give up when less than 64 KiB arrived in this many seconds (s).

    Raises:
        InputError: unknown name.
        DownloadError: no URL, not http(s), network failure (the message says how to download
            by hand), HTTP error, stall, cut transfer, not a PyTorch file, size or checksum
            mismatch.
        OutputError: the cache folder cannot be written.
    """
    entry = get_entry(name, registry=registry)
    folder = zoo_dir(cache_dir)
    final = folder / entry.filename
    if _verified(final, entry):
        log.info("%s: using cached %s", name, final)
        return final
    source = url or entry.url
    if source is None:
        raise DownloadError(f"{name} has no public download URL: {entry.notes or 'none is recorded'}; "
                            f"pass one with {option('url', '<url>')}.")
    _check_scheme(source, name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, folder) from None
    with _download_lock(_lock_path(final), name):
        if _verified(final, entry):  # another process fetched it while we waited
            return final
        with open_output(final, check=lambda tmp: verify_download(tmp, entry)) as handle:
            _download(source, handle, name=name, filename=entry.filename, progress=progress,
                      stall_s=stall_s)
        _stamp(final, entry)
    return final


def _check_scheme(url: str, name: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"cannot download {name} from a {scheme or 'schemeless'}: URL: only "
                            "http:// and https:// are fetched; for a local file pass its path "
                            "instead of the zoo name.")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib would also follow one to ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201, PLR0913
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise DownloadError(f"the server redirected to a non-HTTP URL "
                                f"({urllib.parse.urlsplit(newurl).scheme}:); refusing to follow it.")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, handle: BinaryIO, *, name: str, filename: str,
              progress: Callable[[int, int | None], None] | None, stall_s: float) -> int:
    # Not torch.hub.download_url_to_file: it opens the URL with no timeout (a stalled server
    # waits forever), follows a redirect to ftp:, opens its `<dst>.<uuid>.partial` without
    # O_EXCL/O_NOFOLLOW (not a name the next run recognises and removes after a kill -9),
    # ignores a short Content-Length and checks only a hash prefix. This streams into
    # collapse_probe.output's temporary file, verified before it is renamed into place.
    request = urllib.request.Request(url, headers={"User-Agent": f"collapse-probe/{__version__}"})
    manual = (f"download it by hand (e.g. `curl -L -o {filename} '{_redact(url)}'`) and pass "
              "the file's path instead of the zoo name")
    connections: list[http.client.HTTPConnection] = []
    opener = urllib.request.build_opener(_HttpOnlyRedirects, *_watched_handlers(connections))
    # The socket timeout bounds each wait for data; the watchdog bounds the status line and
    # headers as a whole (one byte every few seconds never times out); _stream bounds a slow
    # trickle of the body.
    fired = threading.Event()
    watchdog = threading.Timer(stall_s, _cut, args=(connections, fired))
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            response = opener.open(request, timeout=stall_s)
        finally:
            watchdog.cancel()
            if fired.is_set():
                raise DownloadError(f"downloading {name} stalled: no complete answer from "
                                    f"{urllib.parse.urlsplit(url).netloc} in {stall_s:g} s; try "
                                    f"again later, or {manual}.") from None
        with response:
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.strip().isdigit() else None
            received = _stream(response, handle, total=total, name=name, progress=progress,
                               stall_s=stall_s, manual=manual)
    except urllib.error.HTTPError as exc:
        hint = " (a signed URL may have expired: get a fresh one)" if exc.code in (401, 403) else ""
        raise DownloadError(f"downloading {name} failed: HTTP {exc.code} {exc.reason} from "
                            f"{_redact(url)}{hint}.") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise DownloadError(f"downloading {name} stalled: no answer from "
                                f"{urllib.parse.urlsplit(url).netloc} in {stall_s:g} s; try "
                                f"again later, or {manual}.") from None
        raise DownloadError(f"cannot reach {urllib.parse.urlparse(url).netloc or url} to download "
                            f"{name} ({exc.reason}): you appear to be offline; {manual}.") from None
    except http.client.HTTPException as exc:  # IncompleteRead: the server closed early
        raise DownloadError(f"downloading {name} was cut short ({type(exc).__name__}): try "
                            f"again, or {manual}.") from None
    except (TimeoutError, socket.timeout):
        raise DownloadError(f"downloading {name} stalled: nothing arrived in {stall_s:g} s; try "
                            f"again later, or {manual}.") from None
    except ConnectionError as exc:  # socket-level: resets
        raise DownloadError(f"downloading {name} was interrupted ({exc}): try again, or {manual}.") from None
    if total is not None and received != total:
        raise DownloadError(f"downloading {name} was cut short: got {received} of {total} bytes; "
                            f"try again, or {manual}.")
    return received


def _watched_handlers(connections: list[http.client.HTTPConnection]) -> tuple[object, object]:
    """HTTP and HTTPS handlers whose connections are appended to ``connections`` (for _cut)."""

    def factory(cls: type[http.client.HTTPConnection]):  # noqa: ANN202
        def make(*args: object, **kwargs: object) -> http.client.HTTPConnection:
            connection = cls(*args, **kwargs)  # type: ignore[arg-type]
            connections.append(connection)
            return connection
        return make

    class Http(urllib.request.HTTPHandler):
        def do_open(self, http_class, req, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return super().do_open(factory(http_class), req, **kwargs)

    class Https(urllib.request.HTTPSHandler):
        def do_open(self, http_class, req, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return super().do_open(factory(http_class), req, **kwargs)

    return Http(), Https()


def _cut(connections: list[http.client.HTTPConnection], fired: threading.Event) -> None:
    """The watchdog: shut the connections down, so a read waiting on them returns."""
    fired.set()
    for connection in list(connections):
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _stream(response: object, handle: BinaryIO, *, total: int | None, name: str,
            progress: Callable[[int, int | None], None] | None, stall_s: float, manual: str) -> int:
    received = 0
    # read1 returns what has arrived (read(n) would wait for all n bytes), so a trickle is seen.
    read = getattr(response, "read1", None) or response.read  # type: ignore[attr-defined]
    mark_time, mark_bytes = time.monotonic(), 0
    while chunk := read(_CHUNK):
        handle.write(chunk)
        received += len(chunk)
        if progress is not None:
            progress(received, total)
        now = time.monotonic()
        if received - mark_bytes >= _STALL_BYTES:
            mark_time, mark_bytes = now, received
        elif now - mark_time > stall_s:
            raise DownloadError(f"downloading {name} stalled: under {_STALL_BYTES // 1024} KiB "
                                f"in the last {stall_s:g} s ({received} bytes so far); try "
                                f"again later, or {manual}.")
    return received


def verify_download(path: Path | str, entry: ZooEntry) -> None:
    """Check a downloaded or cached file of ``entry``; :class:`DownloadError` when it is not the
    release: recorded size and SHA-256 (or its published prefix), and that it is a complete
    PyTorch file (:func:`check_torch_file`)."""
    path = Path(path)
    size = path.stat().st_size
    if entry.size_bytes is not None and size != entry.size_bytes:
        raise DownloadError(f"downloaded {entry.name} has {size} bytes, expected "
                            f"{entry.size_bytes}: the file is incomplete or not the release; "
                            "it was deleted, try again.")
    expected = entry.sha256 or entry.sha256_prefix
    if expected:
        digest = file_sha256(path)
        if not digest.startswith(expected.lower()):
            raise DownloadError(f"downloaded {entry.name} has SHA-256 {digest[:16]}..., expected "
                                f"{expected[:16]}...: the file is corrupt or not the release; it "
                                "was deleted, try again.")
    problem = check_torch_file(path, crc=not entry.sha256)
    if problem:
        raise DownloadError(f"downloaded {entry.name} is not a complete PyTorch checkpoint "
                            f"({problem}); it was deleted, try again or check the URL.")


def _redact(url: str) -> str:
    """``url`` without its query string (signed URLs carry credentials there)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + (
        "?<signature>" if parts.query else "")
