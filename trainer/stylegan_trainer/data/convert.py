"""``stylegan dataset``: turning a folder of images into a dataset zip.

Separate from :mod:`stylegan_trainer.data.dataset` because it writes datasets rather than
reading them: it refuses, file by file and with the reason, what training could not use
(unreadable, not square, of another size), resizes when asked, carries the labels over, and
records the resolution in the zip's ``dataset.json`` so that opening it skips the size scan.

The zip is reproducible: entries in sorted order, each stamped with ``ENTRY_TIME`` rather
than the clock, so converting the same folder twice gives the same bytes (and the same
checksum, which is what the gs:// dataset cache keys on).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import PIL.Image

from stylegan_common.errors import ConfigError, DatasetError
from stylegan_trainer.data.dataset import (
    IMAGE_SUFFIXES,
    LABELS_FILE,
    check_resolution,
    is_power_of_two,
    to_rgb_array,
)

ENTRY_TIME = (1980, 1, 1, 0, 0, 0)
"""The timestamp of every entry: the zip format's earliest, as reproducible builds use."""

# ----------------------------------------------------------------------------------------------
# `stylegan dataset`: folder -> zip


class NothingUsable(DatasetError):
    """``convert_folder`` found no usable image; ``report`` says why for each file."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ConversionReport:
    """What ``convert_folder`` wrote, and every file it refused with the reason."""

    written: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    resolution: int | None = None


def _scan_folder(src: Path, report: ConversionReport) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        name = path.relative_to(src).as_posix()
        if name == LABELS_FILE:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.refused[name] = f"not an image ({path.suffix or 'no suffix'})"
            continue
        try:
            with PIL.Image.open(path) as image:
                image.verify()
            with PIL.Image.open(path) as image:
                sizes[name] = image.size
        except Exception as exc:  # PIL raises many types for broken files
            report.refused[name] = f"unreadable ({type(exc).__name__}: {exc})"
    return sizes


def _pick_resolution(
    sizes: dict[str, tuple[int, int]], resolution: int | None, report: ConversionReport
) -> int | None:
    square = {n: s for n, s in sizes.items() if s[0] == s[1]}
    for name, (w, h) in sizes.items():
        if w != h:
            report.refused[name] = f"not square ({w}x{h})"
    if resolution is not None or not square:
        return resolution
    common, _ = Counter(s[0] for s in square.values()).most_common(1)[0]
    if not is_power_of_two(common) or common < 4:
        for name in square:
            report.refused[name] = f"{common}x{common} is not a power of two; pass --resolution"
        return None
    for name, (w, _) in square.items():
        if w != common:
            report.refused[name] = (
                f"size {w}x{w} differs from the dataset's {common}x{common} "
                "(pass --resolution to resize)"
            )
    return common


def convert_folder(
    src: str | os.PathLike[str], dest: str | os.PathLike[str], resolution: int | None = None
) -> ConversionReport:
    """Write the usable images of folder ``src`` as PNGs into the zip ``dest``.

    Refuses (by file name, with the reason) what is unreadable, not square, or of another size
    than the majority when no ``resolution`` is given (with one, square images are resized).
    Labels in ``src/dataset.json`` are carried over. Raises ``DatasetError`` when ``src`` is
    missing, ``NothingUsable`` (with the report) when nothing usable remains; the zip is then
    not written.
    """
    src_path, dest_path = Path(src), Path(dest)
    if resolution is not None:
        check_resolution(resolution)
    if not src_path.is_dir():
        raise DatasetError(f"dataset: source folder {src_path} does not exist")
    if dest_path.suffix.lower() != ".zip":
        raise ConfigError(f"dataset: destination {dest_path} must end in .zip")
    report = ConversionReport()
    sizes = _scan_folder(src_path, report)
    report.resolution = _pick_resolution(sizes, resolution, report)
    taken: dict[str, str] = {}
    for name in sorted(n for n in sizes if n not in report.refused):
        out_name = str(PurePosixPath(name).with_suffix(".png"))
        if out_name in taken:
            report.refused[name] = f"becomes {out_name}, like {taken[out_name]}"
        else:
            taken[out_name] = name
    usable = sorted(taken.values())
    if not usable or report.resolution is None:
        raise NothingUsable(
            f"dataset: nothing usable in {src_path} ({len(report.refused)} files refused)", report
        )
    labels_out: list[list[Any]] | None = None
    labels_path = src_path / LABELS_FILE
    if labels_path.is_file():
        try:
            raw = json.loads(labels_path.read_text(encoding="utf-8")).get("labels")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"dataset: cannot read {labels_path}: {exc}") from exc
        table = {str(n): v for n, v in (raw or [])}
        labels_out = [] if raw is not None else None
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest_path.name + ".", suffix=".tmp", dir=dest_path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in usable:
                with PIL.Image.open(src_path / name) as image:
                    pixels = to_rgb_array(image, report.resolution)
                out_name = str(PurePosixPath(name).with_suffix(".png"))
                buffer = io.BytesIO()
                PIL.Image.fromarray(pixels.transpose(1, 2, 0)).save(buffer, format="PNG")
                archive.writestr(zipfile.ZipInfo(out_name, ENTRY_TIME), buffer.getvalue())
                report.written.append(out_name)
                if labels_out is not None:
                    if name not in table:
                        raise DatasetError(f"dataset: {labels_path} has no label for {name}")
                    labels_out.append([out_name, table[name]])
            meta = {"labels": labels_out, "resolution": report.resolution}
            archive.writestr(zipfile.ZipInfo(LABELS_FILE, ENTRY_TIME), json.dumps(meta))
        os.replace(tmp, dest_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report
