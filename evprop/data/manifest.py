"""Recordings listed in a manifest, and the train / validation / test splits of them.

A manifest is either
  - a CSV file with a header naming the columns `path,label[,speaker][,take]` (any order, extra columns ignored).
    Paths are relative to the CSV's folder unless absolute; labels and speakers are integers or names (names are
    numbered in sorted order; integers keep their value); take is an integer >= 0 (the FSDD convention numbers
    the repetitions of a word by one speaker); or
  - a folder with one sub-folder per class: <folder>/<class name>/**/*.wav (class names = sorted folder names,
    every clip of speaker 0, take = position in the sorted folder).

Every problem is one ValueError line naming the file (and line) and what was expected. Like tonic's
`SHD(train=...)` and snnTorch's keyword-spotting examples, the class order is fixed by the names, so a train and a
test manifest with the same class names get the same label numbers (`align`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class Manifest:
    """Clips of one manifest. labels / speakers index class_names / speaker_names; takes are -1 when absent."""

    source: str
    paths: tuple
    labels: np.ndarray
    speakers: np.ndarray
    takes: np.ndarray
    class_names: tuple
    speaker_names: tuple

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> "Manifest":
        indices = np.asarray(indices, dtype=np.int64)
        return Manifest(self.source, tuple(self.paths[i] for i in indices), self.labels[indices],
                        self.speakers[indices], self.takes[indices], self.class_names, self.speaker_names)


def _is_int(text: str) -> bool:
    return text.isdigit()


def _numbering(values, what: str, where) -> tuple:
    """(ids, names): integers keep their value (names '0'..'max'); otherwise names are numbered in sorted order."""
    if all(_is_int(v) for v in values):
        ids = np.array([int(v) for v in values], dtype=np.int64)
        names = tuple(str(i) for i in range(int(ids.max()) + 1)) if len(ids) else ()
        return ids, names
    mixed = [(line, v) for line, v in zip(where, values) if _is_int(v)]
    if mixed and len(mixed) < len(values):
        line, value = mixed[0]
        raise ValueError(f"{line}: {what} '{value}' is an integer but other {what}s are names; use one kind")
    names = tuple(sorted(set(values)))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[v] for v in values], dtype=np.int64), names


def read_csv_manifest(path) -> Manifest:
    """A CSV manifest; a bad row is a ValueError '<file>: line <n>: ...'."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the manifest ({err})") from None
    if not rows:
        raise ValueError(f"{path}: empty manifest; expected a header 'path,label[,speaker][,take]' and rows")
    header = [h.strip().lower() for h in rows[0]]
    if "path" not in header or "label" not in header:
        raise ValueError(f"{path}: line 1: header {rows[0]} must name the columns 'path' and 'label' "
                         f"(optional: 'speaker', 'take')")
    column = {name: header.index(name) for name in ("path", "label", "speaker", "take") if name in header}
    files, labels, speakers, takes, where = [], [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue                                   # blank line
        if len(row) < len(header):
            raise ValueError(f"{path}: line {line}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
        cell = {name: row[i].strip() for name, i in column.items()}
        if not cell["path"]:
            raise ValueError(f"{path}: line {line}: empty path")
        if not cell["label"]:
            raise ValueError(f"{path}: line {line}: empty label")
        if "speaker" in cell and not cell["speaker"]:
            raise ValueError(f"{path}: line {line}: empty speaker")
        take = cell.get("take", "-1") or ""
        if take != "-1" and not _is_int(take):
            raise ValueError(f"{path}: line {line}: take '{take}' is not an integer >= 0")
        clip = Path(cell["path"]).expanduser()
        files.append(str(clip if clip.is_absolute() else path.parent / clip))
        labels.append(cell["label"])
        speakers.append(cell.get("speaker", "0"))
        takes.append(int(take))
        where.append(f"{path}: line {line}")
    if not files:
        raise ValueError(f"{path}: no rows below the header")
    label_ids, class_names = _numbering(labels, "label", where)
    speaker_ids, speaker_names = _numbering(speakers, "speaker", where)
    return Manifest(str(path), tuple(files), label_ids, speaker_ids, np.array(takes, dtype=np.int64), class_names,
                    speaker_names)


def read_folder_manifest(folder) -> Manifest:
    """<folder>/<class>/**/*.wav: class names = sorted sub-folder names, speaker 0, take = index in the folder."""
    folder = Path(folder)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files, labels, takes = [], [], []
    for label, name in enumerate(classes):
        for take, wav in enumerate(sorted((folder / name).rglob("*.wav"))):
            files.append(str(wav))
            labels.append(label)
            takes.append(take)
    if not files:
        raise ValueError(f"{folder}: no <class>/*.wav files (expected one sub-folder per class, or a CSV manifest)")
    return Manifest(str(folder), tuple(files), np.array(labels, dtype=np.int64), np.zeros(len(files), np.int64),
                    np.array(takes, dtype=np.int64), tuple(classes), ("0",))


def read_manifest(source) -> Manifest:
    """A CSV manifest or a folder of class sub-folders."""
    source = Path(source).expanduser()
    if source.is_dir():
        return read_folder_manifest(source)
    if source.is_file():
        return read_csv_manifest(source)
    raise ValueError(f"{source}: manifest not found (expected a CSV file path,label[,speaker][,take] or a folder "
                     f"of class sub-folders)")


def align(reference: Manifest, other: Manifest) -> Manifest:
    """`other` with labels numbered like `reference` (same class names) and speakers in a common numbering;
    a class of `other` the reference lacks is a ValueError."""
    unknown = sorted(set(other.class_names[i] for i in np.unique(other.labels)) - set(reference.class_names))
    if unknown:
        raise ValueError(f"{other.source}: classes {unknown[:5]} do not occur in {reference.source} "
                         f"(classes {list(reference.class_names)[:10]})")
    labels = np.array([reference.class_names.index(other.class_names[i]) for i in other.labels], dtype=np.int64)
    names = tuple(reference.speaker_names) + tuple(n for n in other.speaker_names if n not in reference.speaker_names)
    speakers = np.array([names.index(other.speaker_names[i]) for i in other.speakers], dtype=np.int64)
    return Manifest(other.source, other.paths, labels, speakers, other.takes, reference.class_names, names)


# ------------------------------------------------------------------------------------------------ splits

def speaker_ids(manifest: Manifest, speakers, what: str) -> np.ndarray:
    """Speaker names or integers (as in the manifest) -> speaker indices; an unknown one is a ValueError."""
    ids = []
    for speaker in speakers:
        name = str(speaker)
        if name not in manifest.speaker_names:
            raise ValueError(f"{what}: speaker {speaker!r} does not occur in {manifest.source} "
                             f"(speakers {list(manifest.speaker_names)})")
        ids.append(manifest.speaker_names.index(name))
    return np.array(ids, dtype=np.int64)


def split_by_speakers(manifest: Manifest, speakers, what: str):
    """(rest, held-out) index arrays: the held-out part holds every clip of `speakers`, the rest none of them."""
    held = np.isin(manifest.speakers, speaker_ids(manifest, speakers, what))
    if held.all() or not held.any():
        raise ValueError(f"{what}: speakers {list(speakers)} leave {int((~held).sum())} clips on one side and "
                         f"{int(held.sum())} on the other of {manifest.source}; both must be non-empty")
    return np.flatnonzero(~held), np.flatnonzero(held)


def split_by_takes(manifest: Manifest, takes, what: str):
    """(rest, held-out) index arrays: held out are the clips whose take is in `takes` (FSDD: takes 0-4 = test)."""
    if np.all(manifest.takes < 0):
        raise ValueError(f"{what}: {manifest.source} has no 'take' column")
    held = np.isin(manifest.takes, np.asarray(list(takes), dtype=np.int64))
    if held.all() or not held.any():
        raise ValueError(f"{what}: takes {list(takes)} select {int(held.sum())} of {len(manifest)} clips of "
                         f"{manifest.source}; both sides must be non-empty")
    return np.flatnonzero(~held), np.flatnonzero(held)


def split_random(n: int, n_held: int, seed: int, what: str):
    """(rest, held-out) sorted index arrays: a seeded random hold-out of n_held of n clips."""
    if not 0 <= n_held < n:
        raise ValueError(f"{what}: cannot hold out {n_held} of {n} clips")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def split_random_speakers(speakers, n_held: int, seed: int, what: str):
    """(rest, held-out) index arrays: whole speakers, drawn in a seeded random order until at least n_held clips
    are held out (a speaker-disjoint validation set); at least one speaker stays on each side.

    >>> [a.tolist() for a in split_random_speakers([0, 0, 1, 2, 2], 1, 0, "x")]
    [[0, 1, 2], [3, 4]]
    """
    speakers = np.asarray(speakers)
    present = np.unique(speakers)
    if len(present) < 2:
        raise ValueError(f"{what}: a speaker-disjoint split needs at least 2 speakers, found {len(present)}")
    chosen = []
    for speaker in np.random.default_rng(seed).permutation(present)[:-1]:
        chosen.append(speaker)
        if np.isin(speakers, chosen).sum() >= n_held:
            break
    held = np.isin(speakers, chosen)
    return np.flatnonzero(~held), np.flatnonzero(held)
