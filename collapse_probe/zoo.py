"""The public checkpoints that ship their prototype heads, as typed data; download, verify, cache.

Only releases *with* heads are listed (DINO's ``*_full_checkpoint.pth``, iBOT's ``checkpoint.pth``,
MSN's ``.pth.tar``, EsViT's checkpoints); backbone-only files hold no prototypes.
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ._version import __version__
from .cache import cache_dir as _cache_root
from .errors import DownloadError, InputError
from .hashing import file_sha256

__all__ = ["ZooEntry", "ZOO_ENTRIES", "ZOO", "ZOO_NAMES", "get_entry", "zoo_dir", "cached_path", "fetch"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # 1 MiB per read: progress updates often enough, syscalls stay few
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ZooEntry:
    """One public checkpoint with prototype heads.

    Attributes:
        name: the zoo name users type (``dino_vits16``).
        family: its checkpoint format (``dino``, ``ibot``, ``msn``, ``esvit``).
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
_ESVIT_URL = ("the file needs the signed URL printed in the microsoft/esvit README: pass it with "
              "--url (url=)")


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


def cached_path(name: str, *, cache_dir: Path | str | None = None,
                registry: Mapping[str, ZooEntry] | None = None) -> Path | None:
    """The cached file of ``name`` if it is there with the recorded size, else None."""
    entry = get_entry(name, registry=registry)
    path = zoo_dir(cache_dir) / entry.filename
    if not path.is_file():
        return None
    if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        return None
    return path


def fetch(name: str, *, cache_dir: Path | str | None = None, url: str | None = None,
          progress: bool = True, registry: Mapping[str, ZooEntry] | None = None) -> Path:
    """Download zoo checkpoint ``name`` into the cache (once) and return its path.

    The file is streamed to ``<name>.part``, its size and checksum (when recorded) are
    verified, and only then is it renamed to its final name: a failed or cut download never
    leaves a file under the final name.

    Args:
        name: a zoo name (see :data:`ZOO`).
        cache_dir: override the cache folder.
        url: download from here instead of the entry's URL (EsViT's signed URLs; mirrors).
        progress: show a progress bar when stderr is a terminal.
        registry: the entries to look ``name`` up in (default :data:`ZOO`).

    Raises:
        InputError: unknown name.
        DownloadError: no URL, network failure (the message says how to download by hand),
            HTTP error, cut transfer, size or checksum mismatch.
    """
    entry = get_entry(name, registry=registry)
    cached = cached_path(name, cache_dir=cache_dir, registry=registry)
    if cached is not None:
        log.info("%s: using cached %s", name, cached)
        return cached
    source = url or entry.url
    if source is None:
        raise DownloadError(f"{name} has no public download URL: {entry.notes or 'pass --url'}.")
    folder = zoo_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / entry.filename
    part = folder / f"{name}.part"
    try:
        _download(source, part, name=name, filename=entry.filename,
                  show=progress and sys.stderr.isatty())
        _verify(part, entry)
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return final


def _download(url: str, target: Path, *, name: str, filename: str, show: bool) -> int:
    request = urllib.request.Request(url, headers={"User-Agent": f"collapse-probe/{__version__}"})
    manual = (f"download it by hand (e.g. `curl -L -o {filename} '{_redact(url)}'`) and pass "
              "the file's path instead of the zoo name")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.isdigit() else None
            received = _stream(response, target, total=total, name=name, show=show)
    except urllib.error.HTTPError as exc:
        hint = " (a signed URL may have expired: get a fresh one)" if exc.code in (401, 403) else ""
        raise DownloadError(f"downloading {name} failed: HTTP {exc.code} {exc.reason} from "
                            f"{_redact(url)}{hint}.") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"cannot reach {urllib.parse.urlparse(url).netloc or url} to download "
                            f"{name} ({exc.reason}): you appear to be offline; {manual}.") from None
    except http.client.HTTPException as exc:  # IncompleteRead: the server closed early
        raise DownloadError(f"downloading {name} was cut short ({type(exc).__name__}): try "
                            f"again, or {manual}.") from None
    except OSError as exc:  # socket-level: timeouts, resets
        raise DownloadError(f"downloading {name} was interrupted ({exc}): try again, or {manual}.") from None
    if total is not None and received != total:
        raise DownloadError(f"downloading {name} was cut short: got {received} of {total} bytes; "
                            f"try again, or {manual}.")
    return received


def _stream(response: object, target: Path, *, total: int | None, name: str, show: bool) -> int:
    received = 0
    advance: Callable[[int], None] = lambda n: None  # noqa: E731
    bar = None
    if show:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        bar = Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                       transient=True)
        task = bar.add_task(f"fetching {name}", total=total)
        bar.start()
        advance = lambda n: bar.advance(task, n)  # noqa: E731
    try:
        with open(target, "wb") as handle:
            while chunk := response.read(_CHUNK):  # type: ignore[attr-defined]
                handle.write(chunk)
                received += len(chunk)
                advance(len(chunk))
    finally:
        if bar is not None:
            bar.stop()
    return received


def _verify(path: Path, entry: ZooEntry) -> None:
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


def _redact(url: str) -> str:
    """``url`` without its query string (signed URLs carry credentials there)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + (
        "?<signature>" if parts.query else "")
