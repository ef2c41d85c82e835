"""The one place an upload becomes things to classify: files, folders and .zip archives turned into slices
(images and single DICOM files, classified one by one) and, where asked for, whole scans (NIfTI volumes and
DICOM series). The CLI, the page and the API all call `gather`; every file ends as an item, a scan, or the
one sentence saying why it could not be read.
"""
from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

from brain_tumor.errors import UserError
from brain_tumor.images import IMAGE_SUFFIXES
from brain_tumor.volumes import Volume, is_nifti_name, read_dicom_series, read_nifti

MAX_FILES = 1000
PLAIN_IMAGES = IMAGE_SUFFIXES - {".dcm", ".dicom"}  # read as one slice each, never grouped into a series
MAX_ARCHIVE_MEMBERS = 1000
MAX_ARCHIVE_BYTES = 1 << 30  # uncompressed; a zip bomb is refused from its directory, before inflating


@dataclasses.dataclass
class Item:
    """One slice to classify: `source` is what brain_tumor.load_image reads, or `error` says why there is none."""
    name: str
    source: object = None
    error: str | None = None


@dataclasses.dataclass
class Scan:
    """One whole scan, or the sentence saying why it could not be read."""
    name: str
    volume: Volume | None = None
    error: str | None = None


def _wanted(name: str) -> bool:
    parts = Path(name).parts
    return not name.endswith("/") and not any(p.startswith((".", "__MACOSX")) for p in parts) and (
        Path(name).suffix.lower() in IMAGE_SUFFIXES or not Path(name).suffix or is_nifti_name(name))


def archive_members(data: bytes, name: str) -> Iterator[tuple[str, io.BytesIO]]:
    """(archive/member, file object) for each image, volume or extension-less (DICOM) file in a zip archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UserError(f"{name} is not a readable .zip archive.") from None
    members = [m for m in archive.infolist() if _wanted(m.filename)]
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise UserError(f"{name} holds {len(members)} images, over the limit of {MAX_ARCHIVE_MEMBERS}; split it into smaller archives.")
    if sum(m.file_size for m in members) > MAX_ARCHIVE_BYTES:
        raise UserError(f"{name} would unpack to more than {MAX_ARCHIVE_BYTES >> 30} GB; split it into smaller archives.")
    for member in members:
        content = io.BytesIO(archive.read(member))
        content.name = Path(member.filename).name  # errors then name the member, not "the uploaded data"
        yield f"{name}/{member.filename}", content


def is_archive(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def find_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named outright, and inside folders (recursively, hidden ones skipped) images, archives, volumes and
    extension-less files (DICOM)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
                            and (p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() == ".zip" or not p.suffix or is_nifti_name(p.name)))
        else:
            found.append(path)
    return found


def _named(name: str, data: bytes) -> io.BytesIO:
    content = io.BytesIO(data)
    content.name = Path(name).name  # errors then name the user's file
    return content


def _contents(files: Iterable[tuple[str, Path | bytes]]) -> list[tuple[str, bytes | UserError]]:
    """(name, bytes) per file, archives expanded member by member; an unreadable file or archive: its error."""
    out: list[tuple[str, bytes | UserError]] = []
    for name, source in files:
        try:
            data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
        except OSError:
            out.append((name, UserError(f"{name} does not exist or cannot be read.")))
            continue
        if is_archive(Path(name)):
            try:
                out += [(member, content.getvalue()) for member, content in archive_members(bytes(data), name)]
            except UserError as error:
                out.append((name, error))
        else:
            out.append((name, bytes(data)))
    return out


def gather(files: Iterable[tuple[str, Path | bytes]], scans: bool = False, plane: str = "axial",
           limit: int | None = MAX_FILES) -> list[Item | Scan]:
    """Items and scans from (name, path or bytes) pairs, in order. With `scans`, NIfTI files become volumes (cut along
    `plane`) and DICOM files that share a series (or hold many frames) one scan per series; without, a NIfTI file is an
    item with a sentence pointing to the whole-scan readers, and each DICOM file a slice. Image files given as paths
    are not read here (an archive of a million JPEGs costs a list of paths); `limit` caps the files of an upload."""
    parts: list[Item | Scan] = []
    loose: list[tuple[str, bytes]] = []
    count = 0
    for name, source in files:
        if isinstance(source, Path) and source.suffix.lower() in PLAIN_IMAGES:
            contents: list = [(name, source)]
        else:
            contents = _contents([(name, source)])
        count += len(contents)
        if limit is not None and count > limit:
            raise UserError(f"The upload holds more than {limit} files; split it into smaller batches.")
        for member, data in contents:
            if isinstance(data, UserError):
                parts.append(Item(member, error=str(data)))
            elif isinstance(data, Path):
                parts.append(Item(member, source=data))
            elif is_nifti_name(member):
                parts.append(_volume(member, data, plane) if scans else
                             Item(member, error=f"{Path(member).name} is a NIfTI volume, not a slice; the Whole scan tab, the "
                                                "classify_scan API and brain-tumor-predict read whole scans."))
            elif scans and Path(member).suffix.lower() not in PLAIN_IMAGES:
                loose.append((member, data))  # DICOM files are grouped into series below, once all are known
            else:
                parts.append(Item(member, source=_named(member, data)))
    if loose:
        try:
            volumes, found = read_dicom_series(loose, _common_name(loose))
        except UserError as error:
            return parts + [Scan(_common_name(loose), error=str(error))]
        parts += [Scan(v.name, volume=v) for v in volumes]
        left = {n for n, _ in found["left_over"]} | set(found["not_dicom"])
        kinds = dict(found["non_image"])
        for name, data in loose:
            if name in kinds:
                parts.append(Item(name, error=f"{Path(name).name} is {kinds[name]}, not an image."))
            elif name in left:
                parts.append(Item(name, source=_named(name, data)))
    return parts


def _volume(name: str, data: bytes, plane: str) -> Scan:
    try:
        return Scan(name, volume=read_nifti(data, Path(name).name, plane))
    except UserError as error:
        return Scan(name, error=str(error))


def _common_name(files: list[tuple[str, bytes]]) -> str:
    """The upload a set of files came from: their shared folder or archive, else the first file's name."""
    parents = {str(Path(name).parent) for name, _ in files}
    if len(parents) == 1 and parents != {"."}:
        return parents.pop()
    return files[0][0] if len(files) == 1 else f"{len(files)} files"


def scans_of(parts: list[Item | Scan], upload: str) -> list[Scan]:
    """The scans among `parts`; a UserError naming what was found instead when there are none."""
    found = [p for p in parts if isinstance(p, Scan)]
    if found:
        return found
    errors = [p.error for p in parts if p.error]
    if not parts:
        raise UserError(f"{upload} holds no files to read.")
    if len(errors) == len(parts) == 1:
        raise UserError(errors[0])
    raise UserError(f"No whole scan (a NIfTI volume, or a DICOM series of two or more slices) in {upload}, only "
                    f"{_count(len(parts), 'file')} of other kinds; the One slice and Many slices tabs read single images.")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
